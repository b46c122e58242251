"""Tiling: the plan covers the image, blending is seamless, OOM halves the tile, the NaN guard works."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from models.errors import ModelOutOfMemoryError
from models.sr import SRModel, feather_mask, plan_tiles, upscale
from tests.conftest import stand_in_model, to_float


@pytest.mark.parametrize(
    ("height", "width", "tile", "overlap"), [(100, 37, 32, 8), (64, 64, 64, 16), (513, 97, 128, 16)]
)
def test_plan_tiles_covers_every_pixel_with_the_minimum_overlap(
    height: int, width: int, tile: int, overlap: int
) -> None:
    tiles = plan_tiles(height, width, tile, overlap)
    covered = np.zeros((height, width), dtype=int)
    for t in tiles:
        assert t.height <= tile and t.width <= tile
        covered[t.y0 : t.y1, t.x0 : t.x1] += 1
    assert covered.min() >= 1
    ys = sorted({t.y0 for t in tiles})
    for a, b in itertools.pairwise(ys):
        assert a + tile - b >= overlap


def test_plan_tiles_rejects_overlap_without_stride() -> None:
    with pytest.raises(ValueError, match="no stride"):
        plan_tiles(100, 100, 16, 16)


def test_feather_masks_sum_to_positive_weight_everywhere() -> None:
    tiles = plan_tiles(70, 90, 32, 8)
    total = torch.zeros(1, 1, 140, 180)
    for t in tiles:
        total[:, :, t.y0 * 2 : t.y1 * 2, t.x0 * 2 : t.x1 * 2] += feather_mask(t, 2, 8, torch.device("cpu"))
    assert float(total.min()) > 0.05


class _Nearest4x(nn.Module):
    """A stand-in network: nearest-neighbour ×4, optionally failing like a GPU out of memory."""

    def __init__(self, oom_above: int | None = None, nan: bool = False) -> None:
        super().__init__()
        self.oom_above = oom_above
        self.nan = nan
        self.calls: list[tuple[int, ...]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(tuple(x.shape))
        if self.oom_above is not None and x.shape[-1] > self.oom_above:
            raise torch.OutOfMemoryError("simulated out of memory")
        out = F.interpolate(x, scale_factor=4, mode="nearest")
        if self.nan:
            out[..., 0, 0] = float("nan")
        return out


def test_upscale_out_of_memory_halves_the_tile_and_retries(chelsea: np.ndarray) -> None:
    image = torch.from_numpy(to_float(chelsea[:80, :80])).permute(2, 0, 1)[None]
    network = _Nearest4x(oom_above=40)
    result, report = upscale(stand_in_model(network), image, tile=80, overlap=8, min_tile=32)
    assert report.oom_retries == 1
    assert report.tile == 40
    expected = F.interpolate(image, scale_factor=4, mode="nearest")
    assert torch.allclose(result, expected, atol=1e-5)


def test_upscale_out_of_memory_below_minimum_tile_raises() -> None:
    image = torch.rand(1, 3, 64, 64)
    with pytest.raises(ModelOutOfMemoryError):
        upscale(stand_in_model(_Nearest4x(oom_above=1)), image, tile=64, min_tile=32)


def test_upscale_nan_guard_recomputes_in_exact_precision(chelsea: np.ndarray) -> None:
    image = torch.from_numpy(to_float(chelsea[:32, :48])).permute(2, 0, 1)[None]
    exact = _Nearest4x()
    result, report = upscale(stand_in_model(_Nearest4x(nan=True), exact), image, tile=64)
    assert report.nan_fallbacks == 1
    assert len(exact.calls) == 1
    assert torch.isfinite(result).all()


def test_upscale_rejects_wrong_shape() -> None:
    with pytest.raises(ValueError, match=r"\(1, 3, H, W\)"):
        upscale(stand_in_model(_Nearest4x()), torch.rand(3, 16, 16), tile=16)


def test_tiled_matches_untiled_on_a_real_photo(x4plus_cpu: SRModel, astronaut: np.ndarray) -> None:
    crop = to_float(astronaut[150:246, 180:276])  # 96×96: the face and the suit's edge
    image = torch.from_numpy(crop).permute(2, 0, 1)[None]
    whole, whole_report = upscale(x4plus_cpu, image, tile=96, overlap=16)
    tiled, tiled_report = upscale(x4plus_cpu, image, tile=72, overlap=24)
    assert whole_report.tiles == 1 and tiled_report.tiles == 4
    difference = (whole - tiled).abs()
    # What the network adds over bicubic is the scale against which seams are judged.
    contribution = (whole - F.interpolate(image, scale_factor=4, mode="bicubic")).abs()
    assert float(difference.mean()) < 2e-3
    assert float(difference.mean()) < 0.15 * float(contribution.mean())
    assert float(difference.max()) < 0.12
