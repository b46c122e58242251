"""The GPU scheduler's contract, on CPU: the tile batcher routes every output to its own caller, one
bad tile fails only its caller, cancelled callers lose their queued tiles, batches respect their
bounds; the memory budget, the admission queue and the disconnect watcher."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from models.errors import RequestCancelledError
from models.pipeline import EnhanceOptions, PipelineRequest, enhance_image
from models.sr import (
    BatchStats,
    CancelToken,
    DirectRunner,
    MemoryBudget,
    SRModel,
    TileBatcher,
    compile_network,
    network_bytes,
    run_batch,
)
from server.errors import OverloadedError
from server.service import run_with_time_limit, wait_for_disconnect
from server.worker import EnhanceWorker
from tests.conftest import stand_in_model, to_float

POISON = 0.123  # a tile whose first pixel holds this value makes the stand-in network raise


class _Upscale4x(nn.Module):
    """A stand-in network: bilinear ×4 plus a per-sample term, so every output depends on its own
    input only. It records the batch sizes it saw, can hold the first batch until released, and
    raises on a poisoned sample or on batches larger than ``oom_above``."""

    def __init__(self, oom_above: int | None = None) -> None:
        super().__init__()
        self.batch_sizes: list[int] = []
        self.started = threading.Event()
        self.release = threading.Event()
        self.release.set()
        self.oom_above = oom_above

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.batch_sizes.append(int(x.shape[0]))
        self.started.set()
        self.release.wait(10)
        if self.oom_above is not None and x.shape[0] > self.oom_above:
            raise torch.OutOfMemoryError("simulated out of memory")
        if bool((x[:, 0, 0, 0] == POISON).any()):
            raise ValueError("poisoned tile")
        out = F.interpolate(x, scale_factor=4, mode="bilinear", align_corners=False)
        return out * 0.5 + x.mean(dim=(1, 2, 3), keepdim=True) * 0.5


def _tiles(photo: np.ndarray, count: int, side: int, offset: int) -> list[torch.Tensor]:
    image = torch.from_numpy(to_float(photo)).permute(2, 0, 1)
    return [image[:, offset + 7 * i : offset + 7 * i + side, offset : offset + side].contiguous() for i in range(count)]


@pytest.fixture
def batcher_stats() -> list[BatchStats]:
    return []


def test_batcher_routes_each_output_to_its_own_caller(astronaut: np.ndarray, batcher_stats: list[BatchStats]) -> None:
    model = stand_in_model(_Upscale4x())
    batcher = TileBatcher(max_batch=8, max_wait_s=0.2, on_batch=batcher_stats.append)
    callers = [_tiles(astronaut, 3, 32, offset) for offset in (0, 100, 200, 300)]
    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            results = list(pool.map(lambda tiles: batcher.run_tiles(model, tiles), callers))
    finally:
        batcher.close()
    for tiles, result in zip(callers, results, strict=True):
        expected = [run_batch(model, tile[None])[0] for tile in tiles]
        assert len(result.outputs) == len(tiles)
        for out, want in zip(result.outputs, expected, strict=True):
            torch.testing.assert_close(out, want, atol=1e-5, rtol=0)
    # The tiles of several callers really ran together.
    assert max(stats.tiles for stats in batcher_stats) > 3
    assert sum(stats.tiles for stats in batcher_stats) == 12


def test_batcher_fails_only_the_caller_of_a_bad_tile(astronaut: np.ndarray) -> None:
    network = _Upscale4x()
    model = stand_in_model(network)
    batcher = TileBatcher(max_batch=8, max_wait_s=0.2)
    good = _tiles(astronaut, 2, 32, 0)
    bad = _tiles(astronaut, 2, 32, 200)
    bad[1][0, 0, 0] = POISON
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            good_future = pool.submit(batcher.run_tiles, model, good)
            bad_future = pool.submit(batcher.run_tiles, model, bad)
            with pytest.raises(ValueError, match="poisoned"):
                bad_future.result(20)
            outputs = good_future.result(20).outputs
    finally:
        batcher.close()
    assert network.batch_sizes[0] == 4  # all four tiles first ran as one batch
    for out, tile in zip(outputs, good, strict=True):
        torch.testing.assert_close(out, run_batch(model, tile[None])[0], atol=1e-5, rtol=0)


def test_batcher_refuses_malformed_tiles_before_queueing() -> None:
    network = _Upscale4x()
    batcher = TileBatcher(max_batch=4, max_wait_s=0.0)
    try:
        with pytest.raises(ValueError, match="float32"):
            batcher.run_tiles(stand_in_model(network), [torch.zeros(3, 16, 16, dtype=torch.float64)])
        with pytest.raises(ValueError, match=r"\(3, H, W\)"):
            batcher.run_tiles(stand_in_model(network), [torch.zeros(1, 3, 16, 16)])
    finally:
        batcher.close()
    assert network.batch_sizes == []


def test_batcher_drops_the_queued_tiles_of_a_cancelled_caller(astronaut: np.ndarray) -> None:
    network = _Upscale4x()
    network.release.clear()
    model = stand_in_model(network)
    batcher = TileBatcher(max_batch=2, max_wait_s=0.0)
    cancel = CancelToken()
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            first = pool.submit(batcher.run_tiles, model, _tiles(astronaut, 1, 32, 0))
            assert network.started.wait(10)  # the first batch holds the network
            second = pool.submit(batcher.run_tiles, model, _tiles(astronaut, 4, 32, 200), cancel)
            deadline = time.monotonic() + 10
            while batcher.queued < 4 and time.monotonic() < deadline:
                time.sleep(0.01)
            cancel.cancel()
            with pytest.raises(RequestCancelledError):
                second.result(10)
            network.release.set()
            assert len(first.result(10).outputs) == 1
    finally:
        batcher.close()
    assert network.batch_sizes == [1]  # the cancelled caller's tiles never ran
    assert batcher.queued == 0


def test_batcher_splits_a_batch_that_runs_out_of_memory(astronaut: np.ndarray) -> None:
    network = _Upscale4x(oom_above=2)
    model = stand_in_model(network)
    batcher = TileBatcher(max_batch=8, max_wait_s=0.0)
    tiles = _tiles(astronaut, 5, 32, 50)
    try:
        outputs = batcher.run_tiles(model, tiles).outputs
    finally:
        batcher.close()
    # 5 fails, split 2 + 3; 2 runs, 3 fails, split 1 + 2; both run.
    assert network.batch_sizes == [5, 2, 3, 1, 2]
    for out, tile in zip(outputs, tiles, strict=True):
        torch.testing.assert_close(out, run_batch(model, tile[None])[0], atol=1e-5, rtol=0)


def test_batch_limit_stays_within_the_workspace() -> None:
    model = stand_in_model(_Upscale4x())
    one_tile = network_bytes(model, 256 * 256)
    batcher = TileBatcher(max_batch=8, max_wait_s=0.0, workspace_bytes=3 * one_tile)
    try:
        assert batcher.batch_limit(model, 256, 256) == 3
        assert batcher.batch_limit(model, 128, 128) == 8
        assert batcher.batch_limit(model, 1024, 1024) == 1  # never zero: a lone tile still runs
    finally:
        batcher.close()


def test_concurrent_enhancements_match_their_single_request_results(
    x4plus_cpu: SRModel, astronaut: np.ndarray, coffee: np.ndarray, chelsea: np.ndarray
) -> None:
    """Different real images enhanced at once through one batcher: each equals its own result alone."""
    images = [
        to_float(astronaut[180:220, 200:240]),
        to_float(coffee[100:148, 300:348]),
        to_float(chelsea[60:104, 150:194]),
    ]
    options = EnhanceOptions(target_long_side=160, tile=64, overlap=8, tile_quantum=32, detect_faces=False)
    alone = [enhance_image(rgb, None, x4plus_cpu, options, runner=DirectRunner(1)) for rgb in images]
    stats: list[BatchStats] = []
    batcher = TileBatcher(max_batch=8, max_wait_s=0.5, on_batch=stats.append)
    try:
        with ThreadPoolExecutor(max_workers=3) as pool:
            together = list(pool.map(lambda rgb: enhance_image(rgb, None, x4plus_cpu, options, runner=batcher), images))
    finally:
        batcher.close()
    assert max(s.tiles for s in stats) > 1  # requests shared a batch (all tiles pad to 64×64)
    for single, shared in zip(alone, together, strict=True):
        a, b = single.images[0].rgb, shared.images[0].rgb
        assert a.shape == b.shape and a.dtype == np.uint8
        assert int(np.abs(a.astype(int) - b.astype(int)).max()) <= 1


def test_compiled_network_serves_warmed_shapes_and_runs_others_eagerly(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = stand_in_model(nn.Sequential(nn.Conv2d(3, 48, 3, padding=1), nn.PixelShuffle(4)).eval())
    compiled = compile_network(
        model, mode="default", tile_sides=[32], batch_limit=lambda h, w: 3, cache_dir=tmp_path, backend="eager"
    )
    assert compiled.compiled is not None
    assert compiled.compiled.batches == {(32, 32): (1, 2, 3)}
    assert compiled.compiled.batch_for(2, 32, 32) == 2
    assert compiled.compiled.batch_for(4, 32, 32) is None
    assert compiled.compiled.batch_for(1, 64, 64) is None
    batch = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(run_batch(compiled, batch), run_batch(model, batch), atol=1e-6, rtol=0)
    other = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    assert run_batch(compiled, other).shape == (1, 3, 256, 256)
    with pytest.raises(ValueError, match="unknown compile mode"):
        compile_network(model, mode="fastest", tile_sides=[32], batch_limit=lambda h, w: 1)


def test_memory_budget_grants_in_arrival_order_and_honours_cancellation() -> None:
    budget = MemoryBudget(100)
    order: list[str] = []
    held = threading.Event()
    done = threading.Event()

    def big() -> None:
        with budget.reserve(80):
            order.append("big")

    def holder() -> None:
        with budget.reserve(60):
            held.set()
            done.wait(10)

    with ThreadPoolExecutor(max_workers=3) as pool:
        first = pool.submit(holder)
        assert held.wait(10)
        waiting = pool.submit(big)
        cancel = CancelToken()
        cancelled = pool.submit(lambda: budget.reserve(10, cancel).__enter__())
        time.sleep(0.2)
        assert budget.used_bytes == 60 and budget.waiting == 2
        cancel.cancel()  # the small request behind the big one gives up; it never jumped the queue
        with pytest.raises(RequestCancelledError):
            cancelled.result(10)
        done.set()
        first.result(10)
        waiting.result(10)
    assert order == ["big"]
    assert budget.used_bytes == 0


def test_worker_refuses_beyond_its_queue_bound_and_keeps_slots_until_threads_end() -> None:
    async def scenario() -> None:
        worker = EnhanceWorker(max_concurrent=1, max_queued=1)
        release = threading.Event()
        seen: list[CancelToken] = []

        def slow(cancel: CancelToken) -> str:
            seen.append(cancel)
            release.wait(10)
            return "slow"

        first = asyncio.create_task(worker.run_cancellable(slow))
        second = asyncio.create_task(worker.run(lambda: "second"))
        await asyncio.sleep(0.1)
        with pytest.raises(OverloadedError):
            await worker.run(lambda: "third")
        first.cancel()  # the client went away: its token is set, but its thread still runs
        with pytest.raises(asyncio.CancelledError):
            await first
        assert seen[0].cancelled
        assert worker.depth == 2 and not second.done()
        release.set()
        assert await second == "second"
        assert worker.depth == 0
        worker.close()

    asyncio.run(scenario())


def test_disconnected_client_cancels_its_request() -> None:
    async def scenario() -> None:
        cancelled = asyncio.Event()

        async def work() -> str:
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                cancelled.set()
                raise
            return "done"

        messages = [{"type": "http.request", "body": b"", "more_body": False}, {"type": "http.disconnect"}]

        async def receive() -> dict[str, object]:
            await asyncio.sleep(0.05)
            return messages.pop(0)

        with pytest.raises(RequestCancelledError):
            await run_with_time_limit(work(), 60, abandon_when=wait_for_disconnect(receive))
        await asyncio.wait_for(cancelled.wait(), 5)

        async def quick() -> str:
            return "done"

        never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        assert await run_with_time_limit(quick(), 60, abandon_when=never) == "done"

    asyncio.run(scenario())


def test_engine_compiles_every_network_for_the_configured_sides_before_serving(
    tmp_path: Path, weights_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import server.runtime as engine_module
    from server.runtime import ModelRuntime
    from server.settings import Settings

    calls: list[tuple[str, list[int], int, Path | None]] = []

    def record(model: SRModel, *, mode: str, tile_sides: list[int], batch_limit, cache_dir: Path | None) -> SRModel:  # type: ignore[no-untyped-def]
        calls.append((model.network.name, list(tile_sides), batch_limit(256, 256), cache_dir))
        assert mode == "max-autotune-no-cudagraphs"
        return model

    monkeypatch.setattr(engine_module, "compile_network", record)
    settings = Settings(
        data_dir=tmp_path,
        weights_dir=weights_dir,
        device="cpu",
        cpu_tile_size=384,
        compile_mode="max-autotune-no-cudagraphs",
        compile_tile_sides="256,512",
        tile_batch_size=4,
        memory_budget_gb=64,
    )
    engine = ModelRuntime.load(settings)
    try:
        assert engine.tile == 384
        assert engine.budget is not None and engine.budget.total == 64 * 1024**3
        assert engine.budget.workspace + engine.budget.requests + engine.budget.weights == engine.budget.total
    finally:
        engine.close()
    # Both networks, only the sides a 384-px tile can produce, batches bounded by the batcher's limit.
    assert sorted(name for name, *_ in calls) == ["x4plus", "x4plus-anime"]
    assert all(
        sides == [256] and limit == 4 and cache == tmp_path / "compile-cache" for _, sides, limit, cache in calls
    )


def test_engine_turns_out_of_memory_while_rendering_into_a_503_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import server.runtime as engine_module
    from models.errors import ModelOutOfMemoryError
    from server.errors import status_for
    from server.runtime import ModelRuntime
    from server.settings import Settings

    def render_oom(*_args: object, **_kwargs: object) -> None:
        raise torch.OutOfMemoryError("simulated out of memory while rendering")

    monkeypatch.setattr(engine_module, "enhance_request", render_oom)
    engine = ModelRuntime(model=stand_in_model(_Upscale4x()), settings=Settings(data_dir=tmp_path, device="cpu"))
    with pytest.raises(ModelOutOfMemoryError) as raised:
        engine.run(PipelineRequest(source=b""))
    assert status_for(raised.value) == 503


def test_batcher_survives_a_failing_metrics_callback_and_refuses_work_once_closed(astronaut: np.ndarray) -> None:
    def broken(_stats: BatchStats) -> None:
        raise RuntimeError("metrics backend down")

    model = stand_in_model(_Upscale4x())
    batcher = TileBatcher(max_batch=4, max_wait_s=0.0, on_batch=broken)
    tiles = _tiles(astronaut, 2, 32, 0)
    assert len(batcher.run_tiles(model, tiles).outputs) == 2
    assert len(batcher.run_tiles(model, tiles).outputs) == 2  # the thread is still serving
    assert batcher.alive
    batcher.close()
    assert not batcher.alive
    with pytest.raises(RuntimeError, match="not running"):
        batcher.run_tiles(model, tiles)
