"""Running the network on tiles: one batch at a time (:func:`run_batch`), directly in the caller's
thread (:class:`DirectRunner`), or through :class:`TileBatcher`, one thread that owns the device and
batches tiles of the same shape from many callers at once.

The contract of a runner (``run_tiles``): the caller passes a list of tiles and gets back a list of
outputs of the same length, each its own tile's; the tiles were validated before they were queued;
an error fails the tiles it belongs to and nobody else's; a cancelled caller's tiles that have not
started are dropped. Runners hold no per-caller state beyond their queue (STYLE.md §8-9).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import CancelledError, Future
from dataclasses import dataclass, field
from typing import Protocol

import torch
import torch.nn.functional as F

from models.errors import RequestCancelledError
from models.sr._network import SRModel

logger = logging.getLogger(__name__)

# Peak bytes per input pixel of one x4 RRDBNet pass, measured on an H100 (DESIGN.md: a 1024² fp16
# input peaks near 20 GiB). float32 doubles it.
BYTES_PER_INPUT_PIXEL_FP16 = 20 * 1024**3 // (1024 * 1024)


def network_bytes(model: SRModel, pixels: int) -> int:
    """Peak device bytes of one network pass over ``pixels`` input pixels (all tiles of a batch)."""
    factor = 1 if model.fast_dtype in (torch.float16, torch.bfloat16) else 2
    return BYTES_PER_INPUT_PIXEL_FP16 * factor * pixels


class CancelToken:
    """Set when the caller of a request has gone away. Thread-safe; callbacks run once, on cancel."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[], object]] = []

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def cancel(self) -> None:
        with self._lock:
            if self._event.is_set():
                return
            self._event.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()

    def add_callback(self, callback: Callable[[], object]) -> None:
        """Run ``callback`` on cancel (at once when already cancelled)."""
        with self._lock:
            if not self._event.is_set():
                self._callbacks.append(callback)
                return
        callback()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise RequestCancelledError("The client went away; the request was cancelled.")


@dataclass(frozen=True)
class TileOutputs:
    """What a runner returns: one float32 ``(3, h*scale, w*scale)`` output in [0, 1] per tile, on
    the model's device, and how many batches and reduced-precision → float32 re-runs it took."""

    outputs: list[torch.Tensor]
    batches: int
    nan_fallbacks: int


class TileRunner(Protocol):
    def run_tiles(
        self, model: SRModel, tiles: Sequence[torch.Tensor], cancel: CancelToken | None = None
    ) -> TileOutputs:
        """Run ``model`` on each tile: float32 ``(3, h, w)`` RGB in [0, 1] on ``model.device``.
        Blocks until every output is ready; raises what the network raised (``torch.OutOfMemoryError``
        included) or ``RequestCancelledError``."""
        ...


def check_tiles(model: SRModel, tiles: Sequence[torch.Tensor]) -> None:
    """Refuse tiles that do not meet the runner contract, before anything is queued."""
    if not tiles:
        raise ValueError("no tiles to run")
    for tile in tiles:
        if tile.ndim != 3 or tile.shape[0] != 3 or tile.shape[1] < 1 or tile.shape[2] < 1:
            raise ValueError(f"expected a (3, H, W) tile, got {tuple(tile.shape)}")
        if tile.dtype != torch.float32:
            raise ValueError(f"expected a float32 tile, got {tile.dtype}")
        if tile.device != model.device:
            raise ValueError(f"tile on {tile.device}, model on {model.device}")


def _forward(module: torch.nn.Module, batch: torch.Tensor, dtype: torch.dtype, channels_last: bool) -> torch.Tensor:
    x = batch.to(dtype=dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return module(x).float().clamp_(0.0, 1.0)


def run_batch(model: SRModel, batch: torch.Tensor, *, exact: bool = False) -> torch.Tensor:
    """The network on a ``(N, 3, h, w)`` float32 batch in [0, 1]: ``(N, 3, h*scale, w*scale)`` float32
    in [0, 1]. The fast path uses the compiled module for warmed-up shapes (padding the batch up to
    the warmed batch size) and the eager fast module otherwise; ``exact`` runs the float32 copy."""
    with torch.inference_mode():
        if exact:
            return _forward(model.exact, batch, torch.float32, False)
        n, _, h, w = batch.shape
        compiled = model.compiled
        if compiled is not None:
            warmed = compiled.batch_for(n, h, w)
            if warmed is not None:
                if warmed > n:
                    batch = torch.cat([batch, batch.new_zeros((warmed - n, *batch.shape[1:]))])
                return _forward(compiled.module, batch, model.fast_dtype, model.channels_last)[:n]
        return _forward(model.fast, batch, model.fast_dtype, model.channels_last)


def _non_finite(outputs: Sequence[torch.Tensor]) -> list[int]:
    """Indices of the outputs holding NaN or infinity (one device sync for all of them)."""
    flags = torch.stack([torch.isfinite(o).all() for o in outputs]).tolist()
    return [i for i, ok in enumerate(flags) if not ok]


def _group_by_shape(tiles: Sequence[torch.Tensor]) -> dict[tuple[int, int], list[int]]:
    groups: dict[tuple[int, int], list[int]] = {}
    for index, tile in enumerate(tiles):
        groups.setdefault((int(tile.shape[1]), int(tile.shape[2])), []).append(index)
    return groups


def guard_non_finite(
    model: SRModel,
    tiles: Sequence[torch.Tensor],
    outputs: list[torch.Tensor],
    rerun_exact: Callable[[list[torch.Tensor]], list[torch.Tensor]],
) -> int:
    """The NaN guard: re-run in float32 (``rerun_exact``) the tiles whose fast (float16, bfloat16 or
    int8) output is not finite, replacing their outputs in place. Returns how many were re-run."""
    if model.exact is model.fast:
        return 0
    bad = _non_finite(outputs)
    if not bad:
        return 0
    fixed = rerun_exact([tiles[i] for i in bad])
    for i, out in zip(bad, fixed, strict=True):
        outputs[i] = out
    logger.warning("%s overflow in %d tile(s); re-ran them in float32", model.dtype_name, len(bad))
    return len(bad)


class DirectRunner:
    """Runs tiles in the caller's thread, ``batch_size`` tiles of one shape per batch."""

    def __init__(self, batch_size: int = 4) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.batch_size = batch_size

    def run_tiles(
        self, model: SRModel, tiles: Sequence[torch.Tensor], cancel: CancelToken | None = None
    ) -> TileOutputs:
        check_tiles(model, tiles)
        outputs: list[torch.Tensor | None] = [None] * len(tiles)
        batches = 0
        for indices in _group_by_shape(tiles).values():
            for start in range(0, len(indices), self.batch_size):
                if cancel is not None:
                    cancel.raise_if_cancelled()
                chunk = indices[start : start + self.batch_size]
                result = run_batch(model, torch.stack([tiles[i] for i in chunk]))
                batches += 1
                for i, out in zip(chunk, result.unbind(0), strict=True):
                    outputs[i] = out
        done = [out for out in outputs if out is not None]
        nan_fallbacks = guard_non_finite(
            model, tiles, done, lambda redo: [run_batch(model, t[None], exact=True)[0] for t in redo]
        )
        return TileOutputs(outputs=done, batches=batches, nan_fallbacks=nan_fallbacks)


@dataclass(frozen=True)
class BatchStats:
    """One network batch as the batcher saw it (for metrics): ``seconds`` is device time when the
    device can tell it (CUDA events), else wall time."""

    tiles: int
    pixels: int
    seconds: float


@dataclass
class _Pending:
    model: SRModel
    tile: torch.Tensor
    exact: bool
    future: Future[tuple[torch.Tensor, int]] = field(default_factory=Future)
    enqueued: float = field(default_factory=time.monotonic)

    @property
    def key(self) -> tuple[int, bool, int, int]:
        return (id(self.model), self.exact, int(self.tile.shape[1]), int(self.tile.shape[2]))


class _DeviceClock:
    """Device time of batches: CUDA events read once they have completed (no sync on the hot path)."""

    def __init__(self, report: Callable[[BatchStats], None] | None) -> None:
        self._report = report
        self._pending: deque[tuple[torch.cuda.Event, torch.cuda.Event, int, int]] = deque()

    def start(self, device: torch.device) -> torch.cuda.Event | float:
        if device.type == "cuda":
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        return time.perf_counter()

    def stop(self, started: torch.cuda.Event | float, tiles: int, pixels: int) -> None:
        if isinstance(started, float):
            if self._report is not None:
                self._report(BatchStats(tiles, pixels, time.perf_counter() - started))
            return
        end = torch.cuda.Event(enable_timing=True)
        end.record()
        self._pending.append((started, end, tiles, pixels))
        self.collect()

    def collect(self, wait: bool = False) -> None:
        while self._pending and (wait or self._pending[0][1].query()):
            start, end, tiles, pixels = self._pending.popleft()
            end.synchronize()
            if self._report is not None:
                self._report(BatchStats(tiles, pixels, start.elapsed_time(end) / 1000.0))


class TileBatcher:
    """One thread owns the network. Callers (request threads) queue their tiles; the thread takes the
    oldest tile, waits up to ``max_wait_s`` (from that tile's arrival) for more tiles of the same
    network and shape, runs up to ``max_batch`` of them at once (fewer when ``workspace_bytes`` would
    be exceeded: see :func:`network_bytes`) and hands each caller its own outputs.

    Isolation: a batch that raises is split in halves and re-run, so only the tile that fails gets the
    error (an out-of-memory on a single tile included); callers that were cancelled lose only their
    own queued tiles. ``on_batch`` is called after each batch (metrics)."""

    def __init__(
        self,
        *,
        max_batch: int,
        max_wait_s: float,
        workspace_bytes: int | None = None,
        on_batch: Callable[[BatchStats], None] | None = None,
    ) -> None:
        if max_batch < 1 or max_wait_s < 0:
            raise ValueError("max_batch must be ≥ 1 and max_wait_s ≥ 0")
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.workspace_bytes = workspace_bytes
        self._clock = _DeviceClock(on_batch)
        self._cond = threading.Condition()
        self._queue: deque[_Pending] = deque()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="tile-batcher", daemon=True)
        self._thread.start()

    @property
    def alive(self) -> bool:
        """Whether the network thread is running (readiness checks this)."""
        return self._thread.is_alive()

    @property
    def queued(self) -> int:
        """Tiles waiting for the network."""
        with self._cond:
            return len(self._queue)

    def batch_limit(self, model: SRModel, height: int, width: int) -> int:
        """Most tiles of ``height`` x ``width`` in one batch: ``max_batch`` within the workspace."""
        if self.workspace_bytes is None:
            return self.max_batch
        fits = self.workspace_bytes // max(1, network_bytes(model, height * width))
        return max(1, min(self.max_batch, int(fits)))

    def run_tiles(
        self, model: SRModel, tiles: Sequence[torch.Tensor], cancel: CancelToken | None = None
    ) -> TileOutputs:
        check_tiles(model, tiles)
        outputs, batches = self._submit_and_wait(model, tiles, exact=False, cancel=cancel)
        nan_fallbacks = guard_non_finite(model, tiles, outputs, lambda redo: self.run_exact(model, redo))
        return TileOutputs(outputs=outputs, batches=batches, nan_fallbacks=nan_fallbacks)

    def run_exact(self, model: SRModel, tiles: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """The float32 copy of the network on ``tiles`` (the NaN guard's re-run), through the queue."""
        check_tiles(model, tiles)
        return self._submit_and_wait(model, tiles, exact=True, cancel=None)[0]

    def close(self, timeout: float | None = 10.0) -> None:
        """Stop taking tiles; the thread finishes what is queued and exits."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout)

    def _submit_and_wait(
        self, model: SRModel, tiles: Sequence[torch.Tensor], *, exact: bool, cancel: CancelToken | None
    ) -> tuple[list[torch.Tensor], int]:
        pending = [_Pending(model=model, tile=tile, exact=exact) for tile in tiles]
        with self._cond:
            if self._closed or not self._thread.is_alive():
                raise RuntimeError("the tile batcher is not running")
            self._queue.extend(pending)
            self._cond.notify_all()
        if cancel is not None:
            cancel.add_callback(lambda: self._discard(pending))
        try:
            results = [p.future.result() for p in pending]
        except CancelledError as exc:
            raise RequestCancelledError("The client went away; the request was cancelled.") from exc
        except BaseException:
            for p in pending:
                p.future.cancel()
            raise
        return [out for out, _ in results], len({batch for _, batch in results})

    def _discard(self, pending: list[_Pending]) -> None:
        """Drop a cancelled caller's tiles that have not started (Future.cancel fails for running ones)
        and take them out of the queue at once, so they hold no memory and no place."""
        cancelled = {id(p) for p in pending if p.future.cancel()}
        if cancelled:
            with self._cond:
                self._queue = deque(p for p in self._queue if id(p) not in cancelled)
                self._cond.notify_all()

    def _take_batch(self) -> list[_Pending] | None:
        """The next batch (all one key), or None when closed and drained. Called by the thread only."""
        with self._cond:
            while not self._queue:
                if self._closed:
                    return None
                self._cond.wait()
            head = self._queue[0]
            key = head.key
            limit = self.batch_limit(head.model, key[2], key[3])
            deadline = head.enqueued + self.max_wait_s
            while not self._closed:
                if sum(1 for p in self._queue if p.key == key) >= limit:
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            batch: list[_Pending] = []
            rest: deque[_Pending] = deque()
            for p in self._queue:
                (batch if p.key == key and len(batch) < limit else rest).append(p)
            self._queue = rest
        # A cancelled caller's tile is dropped here; the others are now running and cannot be cancelled.
        return [p for p in batch if p.future.set_running_or_notify_cancel()]

    def _loop(self) -> None:
        batch_id = 0
        while True:
            batch = self._take_batch()
            if batch is None:
                self._clock.collect(wait=True)
                return
            if batch:
                batch_id += 1
                self._execute(batch, batch_id)
            try:
                self._clock.collect()
            except Exception:  # a metrics failure must never stop the network thread
                logger.exception("could not read batch timings")

    def _execute(self, batch: list[_Pending], batch_id: int) -> None:
        model = batch[0].model
        try:
            stacked = torch.stack([p.tile for p in batch])
            started = self._clock.start(model.device)
            result = run_batch(model, stacked, exact=batch[0].exact)
        except Exception as exc:  # isolate: only the failing tile(s) get the error
            if isinstance(exc, torch.OutOfMemoryError) and model.device.type == "cuda":
                torch.cuda.empty_cache()
            if len(batch) > 1:
                half = len(batch) // 2
                self._execute(batch[:half], batch_id)
                self._execute(batch[half:], batch_id)
                return
            logger.warning("network batch failed: %r", exc)
            batch[0].future.set_exception(exc)
            return
        except BaseException as exc:  # interpreter shutdown and the like: nobody waits forever
            for p in batch:
                p.future.set_exception(exc)
            raise
        for p, out in zip(batch, result.unbind(0), strict=True):
            p.future.set_result((out, batch_id))
        try:
            self._clock.stop(started, len(batch), len(batch) * stacked.shape[2] * stacked.shape[3])
        except Exception:  # a metrics failure must never fail a batch
            logger.exception("could not record batch timings")


def pad_tile(tile: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``tile`` ``(3, h, w)`` padded at the bottom and right to ``height`` x ``width`` (reflection when
    the tile is large enough, else edge replication)."""
    _, h, w = tile.shape
    ph, pw = height - h, width - w
    if ph == 0 and pw == 0:
        return tile
    if ph < 0 or pw < 0:
        raise ValueError(f"cannot pad a {h}x{w} tile to {height}x{width}")
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(tile[None], (0, pw, 0, ph), mode=mode)[0]
