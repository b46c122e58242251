"""CUDA paths: fp16 + channels_last agrees with fp32, tile size from free memory, a full request,
requests batched together keep their own pixels, the memory budget bounds a burst's peak.

Marked ``gpu``: skipped without a CUDA device.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch

import weights
from models.pipeline import EnhanceOptions, enhance_image
from models.sr import (
    BatchStats,
    DirectRunner,
    MemoryBudget,
    SRModel,
    TileBatcher,
    choose_precision,
    choose_tile_size,
    detect_capabilities,
    get_network,
    load_sr_model,
    upscale,
)
from tests.conftest import to_float

pytestmark = pytest.mark.gpu


def test_fp16_matches_fp32_on_a_real_photo(x4plus_cuda: SRModel, astronaut: np.ndarray) -> None:
    image = torch.from_numpy(to_float(astronaut[100:356, 100:356])).permute(2, 0, 1)[None].cuda()
    fast, report = upscale(x4plus_cuda, image, tile=256)
    with torch.inference_mode():
        exact = x4plus_cuda.exact(image).clamp(0, 1)
    assert report.dtype == "float16"
    assert float((fast - exact).abs().mean()) < 2e-3


def test_auto_is_float16_on_cuda_and_bfloat16_runs_where_the_gpu_has_it(
    weights_dir: Path, astronaut: np.ndarray
) -> None:
    device = torch.device("cuda")
    capabilities = detect_capabilities(device)
    assert choose_precision("auto", device, capabilities).name == "fp16"
    if not capabilities.bf16:
        pytest.skip(f"{capabilities.name} has no bfloat16")
    network = get_network("x4plus")
    state = weights.load_state_dict(network.weights_name, weights_dir)
    model = load_sr_model(network, state, device, precision=choose_precision("bf16", device, capabilities))
    image = torch.from_numpy(to_float(astronaut[100:356, 100:356])).permute(2, 0, 1)[None].cuda()
    fast, report = upscale(model, image, tile=256)
    with torch.inference_mode():
        exact = model.exact(image).clamp(0, 1)
    assert report.dtype == "bfloat16" and report.nan_fallbacks == 0
    assert float(10 * torch.log10(1 / ((fast - exact) ** 2).mean())) >= 45.0


def test_tile_size_comes_from_free_memory(x4plus_cuda: SRModel) -> None:
    tile = choose_tile_size(x4plus_cuda, max_tile=4096, cpu_tile=128)
    assert tile % 32 == 0 and tile >= 64
    assert tile != 128


def test_full_enhance_on_cuda_gives_the_2k_output(x4plus_cuda: SRModel, coffee: np.ndarray) -> None:
    options = EnhanceOptions(num_outputs=2, tile=choose_tile_size(x4plus_cuda, max_tile=1024, cpu_tile=256))
    result = enhance_image(to_float(coffee), None, x4plus_cuda, options)
    assert result.images[0].rgb.shape == (1365, 2048, 3)
    assert result.images[0].rgb.dtype == np.uint8
    assert result.explanation.run.device == "cuda"


def test_batched_requests_on_cuda_match_their_single_results(
    x4plus_cuda: SRModel, astronaut: np.ndarray, coffee: np.ndarray, chelsea: np.ndarray
) -> None:
    images = [to_float(astronaut[:256, :256]), to_float(coffee[:256, 100:356]), to_float(chelsea[:256, :256])]
    options = EnhanceOptions(target_long_side=1024, tile=512, tile_quantum=32, detect_faces=False)
    alone = [enhance_image(rgb, None, x4plus_cuda, options, runner=DirectRunner(1)) for rgb in images]
    stats: list[BatchStats] = []
    batcher = TileBatcher(max_batch=8, max_wait_s=0.2, on_batch=stats.append)
    try:
        with ThreadPoolExecutor(max_workers=3) as pool:
            together = list(
                pool.map(lambda rgb: enhance_image(rgb, None, x4plus_cuda, options, runner=batcher), images)
            )
    finally:
        batcher.close()
    assert max(s.tiles for s in stats) > 1
    for single, shared in zip(alone, together, strict=True):
        difference = np.abs(single.images[0].rgb.astype(int) - shared.images[0].rgb.astype(int))
        # fp16 kernels may differ by batch size; an image never gets another's pixels.
        assert difference.mean() < 0.5 and difference.max() <= 8


def test_memory_budget_bounds_the_peak_under_a_burst(x4plus_cuda: SRModel, coffee: np.ndarray) -> None:
    budget_bytes = 6 * 1024**3
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    batcher = TileBatcher(max_batch=8, max_wait_s=0.01, workspace_bytes=budget_bytes // 2)
    memory = MemoryBudget(budget_bytes // 2)
    tile = choose_tile_size(x4plus_cuda, max_tile=1024, cpu_tile=256, workspace_bytes=budget_bytes // 2)
    options = EnhanceOptions(tile=tile, tile_quantum=32, detect_faces=False)
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(
                pool.map(
                    lambda _: enhance_image(
                        to_float(coffee), None, x4plus_cuda, options, runner=batcher, memory=memory
                    ),
                    range(8),
                )
            )
    finally:
        batcher.close()
    assert all(r.images[0].rgb.shape == (1365, 2048, 3) for r in results)
    assert torch.cuda.max_memory_allocated() - base <= budget_bytes
