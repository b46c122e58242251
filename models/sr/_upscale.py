"""Tiled super-resolution of one image: plan, pad, run through a tile runner, feather back together."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import torch

from models.errors import ModelOutOfMemoryError
from models.sr._batching import CancelToken, DirectRunner, TileRunner, network_bytes, pad_tile
from models.sr._network import SRModel
from models.sr._tiling import feather_mask, padded_side, plan_tiles

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class UpscaleReport:
    """What one ``upscale`` call did: the tile size that succeeded, counts, retries, timings."""

    tile: int
    overlap: int
    tiles: int
    batches: int
    oom_retries: int
    nan_fallbacks: int
    dtype: str
    seconds: float


def choose_tile_size(model: SRModel, *, max_tile: int, cpu_tile: int, workspace_bytes: int | None = None) -> int:
    """Largest tile side (input pixels, multiple of 32, at most ``max_tile``) whose network pass fits
    in ``workspace_bytes`` (default: 60 % of the free GPU memory). On CPU: ``cpu_tile``."""
    if model.device.type != "cuda":
        return cpu_tile
    if workspace_bytes is None:
        free, _total = torch.cuda.mem_get_info(model.device)
        workspace_bytes = int(free * 0.6)
    side = math.isqrt(workspace_bytes // network_bytes(model, 1))
    return max(64, min(max_tile, side // 32 * 32))


def _upscale_with_tile(
    model: SRModel,
    image: torch.Tensor,
    tile: int,
    overlap: int,
    runner: TileRunner,
    quantum: int,
    cancel: CancelToken | None,
) -> tuple[torch.Tensor, int, int, int]:
    _, _, height, width = image.shape
    scale = model.scale
    multiple = math.lcm(max(1, quantum), model.size_multiple)
    tiles = plan_tiles(height, width, tile, overlap, quantum=multiple)
    inputs = [
        pad_tile(image[0, :, t.y0 : t.y1, t.x0 : t.x1], padded_side(t.height, multiple), padded_side(t.width, multiple))
        for t in tiles
    ]
    ran = runner.run_tiles(model, inputs, cancel)
    if len(tiles) == 1:
        # One tile has no feathered edge (its mask is all ones): blending would copy it unchanged.
        only = ran.outputs[0][None, :, : height * scale, : width * scale].contiguous()
        return only, 1, ran.batches, ran.nan_fallbacks
    out = torch.zeros((1, 3, height * scale, width * scale), dtype=torch.float32, device=model.device)
    weight = torch.zeros((1, 1, height * scale, width * scale), dtype=torch.float32, device=model.device)
    for t, tile_out in zip(tiles, ran.outputs, strict=True):
        mask = feather_mask(t, scale, overlap, model.device)
        ys, xs = slice(t.y0 * scale, t.y1 * scale), slice(t.x0 * scale, t.x1 * scale)
        out[:, :, ys, xs] += tile_out[None, :, : t.height * scale, : t.width * scale] * mask
        weight[:, :, ys, xs] += mask
    return out.div_(weight), len(tiles), ran.batches, ran.nan_fallbacks


def upscale(
    model: SRModel,
    image: torch.Tensor,
    *,
    tile: int,
    overlap: int = 16,
    runner: TileRunner | None = None,
    quantum: int = 1,
    batch_size: int = 4,
    min_tile: int = 64,
    cancel: CancelToken | None = None,
) -> tuple[torch.Tensor, UpscaleReport]:
    """Run the network over ``image`` in feathered, overlapping tiles.

    ``image``: float32 RGB, shape ``(1, 3, H, W)``, values in [0, 1], on ``model.device``.
    Returns float32 RGB ``(1, 3, H*scale, W*scale)`` in [0, 1] on the same device, and a report.
    Tiles go through ``runner`` (default: a :class:`DirectRunner` of ``batch_size`` in this thread;
    the server passes its :class:`TileBatcher`), each padded to a multiple of ``quantum`` so tiles of
    similar size share a shape. On out-of-memory the tile side is halved and the whole image retried;
    below ``min_tile`` raises ``ModelOutOfMemoryError``. A cancelled ``cancel`` raises
    ``RequestCancelledError``.
    """
    if image.ndim != 4 or image.shape[0] != 1 or image.shape[1] != 3:
        raise ValueError(f"expected a (1, 3, H, W) tensor, got {tuple(image.shape)}")
    if image.dtype != torch.float32:
        raise ValueError(f"expected float32, got {image.dtype}")
    if image.device != model.device:
        raise ValueError(f"image on {image.device}, model on {model.device}")
    started = time.perf_counter()
    retries = 0
    while True:
        active = runner or DirectRunner(batch_size)
        try:
            with torch.inference_mode():
                result, tiles, batches, nan_fallbacks = _upscale_with_tile(
                    model, image, tile, min(overlap, tile // 3), active, quantum, cancel
                )
            break
        except torch.OutOfMemoryError as exc:
            if model.device.type == "cuda":
                torch.cuda.empty_cache()
            retries += 1
            if tile // 2 < min_tile:
                raise ModelOutOfMemoryError(f"out of GPU memory even with {tile}px tiles; try again later") from exc
            logger.warning("out of memory with %dpx tiles; retrying with %dpx", tile, tile // 2)
            tile //= 2
            batch_size = max(1, batch_size // 2)
    report = UpscaleReport(
        tile=tile,
        overlap=min(overlap, tile // 3),
        tiles=tiles,
        batches=batches,
        oom_retries=retries,
        nan_fallbacks=nan_fallbacks,
        dtype=model.dtype_name,
        seconds=time.perf_counter() - started,
    )
    return result, report
