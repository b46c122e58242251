"""CUDA paths: fp16 + channels_last agrees with fp32, tile size from free memory, a full request.

Marked ``gpu``: skipped without a CUDA device.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.pipeline import EnhanceOptions, enhance_image
from models.sr import SRModel, choose_tile_size, upscale
from tests.conftest import to_float

pytestmark = pytest.mark.gpu


def test_fp16_matches_fp32_on_a_real_photo(x4plus_cuda: SRModel, astronaut: np.ndarray) -> None:
    image = torch.from_numpy(to_float(astronaut[100:356, 100:356])).permute(2, 0, 1)[None].cuda()
    fast, report = upscale(x4plus_cuda, image, tile=256)
    with torch.inference_mode():
        exact = x4plus_cuda.exact(image).clamp(0, 1)
    assert report.dtype == "float16"
    assert float((fast - exact).abs().mean()) < 2e-3


def test_tile_size_comes_from_free_memory(x4plus_cuda: SRModel) -> None:
    tile = choose_tile_size(x4plus_cuda, max_tile=4096, cpu_tile=128)
    assert tile % 32 == 0 and tile >= 64
    assert tile != 128


def test_full_enhance_on_cuda_gives_the_2k_output(x4plus_cuda: SRModel, coffee: np.ndarray) -> None:
    options = EnhanceOptions(num_outputs=2, tile=choose_tile_size(x4plus_cuda, max_tile=1024, cpu_tile=256))
    result = enhance_image(to_float(coffee), None, x4plus_cuda, options)
    assert result.images[0].rgb.shape == (1365, 2048, 3)
    assert result.images[0].rgb.dtype == np.uint8
    assert result.report["device"] == "cuda"
