"""Resampling primitives shared by the networks' stand-ins and the pipeline's render.

:func:`resize_bicubic` is ``F.interpolate(mode="bicubic", align_corners=False)`` computed another way
on a CPU: each axis is a banded matrix (each output pixel weighs 4 neighbouring input pixels), applied
in blocks of output pixels as small batched matrix products. PyTorch's CPU kernel weighs 16 input
pixels per output pixel in one pass; this is about five times faster on one core for a 512² → 2048²
upscale, and for any pair of sizes (the blocks need not line up with the pixels).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

# Output pixels per block: each block is one (BLOCK × window) matrix times the block's input rows.
# 32 keeps the window short (≈ 8 input rows at ×4) while the products stay large enough to be efficient.
_BLOCK = 32


def resize_bicubic(x: torch.Tensor, height: int, width: int, *, antialias: bool = False) -> torch.Tensor:
    """``F.interpolate(x, size=(height, width), mode="bicubic", align_corners=False, antialias=antialias)``
    of a (N, C, H, W) tensor. Without ``antialias``, on a CPU, for float32: each axis as a banded
    matrix product (:func:`_axis_weights`), the same result to float rounding (PyTorch's weights and
    clamped edges); the result may then be a view into a slightly larger buffer (not contiguous).
    Otherwise ``F.interpolate`` itself (its antialiased kernel is already separable and fast)."""
    if height < 1 or width < 1:
        raise ValueError(f"sizes must be at least 1, got {height}×{width}")
    if antialias or x.ndim != 4 or x.device.type != "cpu" or x.dtype != torch.float32:
        return F.interpolate(x, size=(height, width), mode="bicubic", align_corners=False, antialias=antialias)
    batch, channels, in_h, in_w = x.shape
    planes = x.reshape(batch * channels, in_h, in_w)
    # The axis that grows goes last, so the other one works on the smaller image.
    if height >= in_h:
        planes = _resize_columns(planes, width)
        planes = _resize_rows(planes, height)
    else:
        planes = _resize_rows(planes, height)
        planes = _resize_columns(planes, width)
    return planes.unflatten(0, (batch, channels))


def correlate(padded: torch.Tensor, weights: Sequence[float], dim: int) -> torch.Tensor:
    """``padded`` correlated with the 1-D kernel ``weights`` along ``dim`` ("valid": that axis shrinks by
    ``len(weights) - 1``), as shifted, weighted sums: the same products summed in the same order as a
    convolution, and many times faster than PyTorch's CPU depthwise convolution."""
    length = padded.shape[dim] - (len(weights) - 1)
    out = padded.narrow(dim, 0, length) * weights[0]
    for offset in range(1, len(weights)):
        out.add_(padded.narrow(dim, offset, length), alpha=weights[offset])
    return out


@dataclass(frozen=True)
class _AxisWeights:
    """One axis's resampling as blocks: output pixels ``k·BLOCK … k·BLOCK + BLOCK - 1`` are
    ``blocks[k] @ input[starts[k] : starts[k] + window]`` (the last block may run past the output's
    end; those rows are dropped). ``gather`` lists the input pixels of every window in turn;
    ``step`` is set when the starts are evenly spaced (then the windows are a strided view of the
    input, and ``gather`` is not needed)."""

    blocks: torch.Tensor  # (count, BLOCK, window) float32
    starts: torch.Tensor  # (count,) int64
    gather: torch.Tensor  # (count · window,) int64
    window: int
    step: int | None


@functools.lru_cache(maxsize=64)
def _axis_weights(size: int, out: int) -> _AxisWeights:
    """PyTorch's bicubic weights from ``size`` input pixels to ``out`` output pixels along one axis
    (``upsample_bicubic2d``: Keys' cubic with a = -0.75 on 4 taps, edges clamped), grouped into
    blocks of :data:`_BLOCK` output pixels."""
    first, weights = _cubic_taps(out, size / out)
    taps = weights.shape[1]
    index = np.clip(first[:, None] + np.arange(taps)[None, :], 0, size - 1)
    count = -(-out // _BLOCK)
    padded = count * _BLOCK
    # Pad to whole blocks by repeating the last output pixel's taps (its rows are dropped).
    index = np.concatenate([index, np.repeat(index[-1:], padded - out, axis=0)])
    weights = np.concatenate([weights, np.repeat(weights[-1:], padded - out, axis=0)])
    low = index.reshape(count, -1).min(axis=1)
    high = index.reshape(count, -1).max(axis=1)
    window = min(int((high - low).max()) + 1, size)
    starts = np.minimum(low, size - window)
    blocks = np.zeros((count, _BLOCK, window), dtype=np.float64)
    rows = np.arange(padded)
    local = index - np.repeat(starts, _BLOCK)[:, None]
    for tap in range(taps):  # clamped taps land on the same edge pixel: their weights add up
        np.add.at(blocks.reshape(padded, window), (rows, local[:, tap]), weights[:, tap])
    steps = np.diff(starts)
    step = int(steps[0]) if count > 1 and np.all(steps == steps[0]) else (0 if count == 1 else None)
    return _AxisWeights(
        blocks=torch.from_numpy(blocks.astype(np.float32)),
        starts=torch.from_numpy(starts.astype(np.int64)),
        gather=torch.from_numpy((starts[:, None] + np.arange(window)[None, :]).reshape(-1).astype(np.int64)),
        window=window,
        step=step,
    )


# PyTorch's bicubic convolution constant (``upsample_bicubic2d``).
_CUBIC_A = -0.75


def _cubic(distance: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel (a = ``_CUBIC_A``) at ``|distance|`` (0 beyond 2)."""
    a = _CUBIC_A
    d = np.abs(distance)
    near = ((a + 2) * d - (a + 3)) * d * d + 1
    far = ((a * d - 5 * a) * d + 8 * a) * d - 4 * a
    return np.where(d <= 1, near, np.where(d < 2, far, 0.0))


def _cubic_taps(out: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Plain bicubic: output ``j`` samples input position ``scale·(j + ½) − ½`` from its 4 neighbours."""
    # In float32, as PyTorch computes it (so positions round the same way).
    position = np.float32(scale) * (np.arange(out, dtype=np.float32) + np.float32(0.5)) - np.float32(0.5)
    floor = np.floor(position)
    t = (position - floor).astype(np.float64)
    weights = np.stack([_cubic(t + 1), _cubic(t), _cubic(1 - t), _cubic(2 - t)], axis=1)
    return floor.astype(np.int64) - 1, weights


def _resize_rows(planes: torch.Tensor, out: int) -> torch.Tensor:
    """Resample (P, H, W) ``planes`` along H to ``out`` rows (a view when the last block overruns)."""
    count_planes, size, width = planes.shape
    if size == out:
        return planes
    axis = _axis_weights(size, out)
    count = axis.blocks.shape[0]
    planes = planes.contiguous()
    result = torch.empty((count_planes, count * _BLOCK, width), dtype=planes.dtype)
    for index in range(count_planes):  # one batched product per plane, straight into the result
        plane = planes[index]
        if axis.step is not None:
            offset = plane.storage_offset() + int(axis.starts[0]) * width
            windows = plane.as_strided((count, axis.window, width), (axis.step * width, width, 1), offset)
        else:
            windows = plane.index_select(0, axis.gather).view(count, axis.window, width)
        torch.bmm(axis.blocks, windows, out=result[index].view(count, _BLOCK, width))
    return result if count * _BLOCK == out else result[:, :out]


def _resize_columns(planes: torch.Tensor, out: int) -> torch.Tensor:
    """Resample (P, H, W) ``planes`` along W to ``out`` columns (a view when the last block overruns):
    every row's windows times the block's matrix, written block by block into the result's rows."""
    count_planes, height, size = planes.shape
    if size == out:
        return planes
    axis = _axis_weights(size, out)
    count = axis.blocks.shape[0]
    rows = planes.contiguous().view(count_planes * height, size)  # the strided windows assume rows of pixels
    if axis.step is not None:
        offset = rows.storage_offset() + int(axis.starts[0])
        windows = rows.as_strided((count, rows.shape[0], axis.window), (axis.step, rows.stride(0), 1), offset)
    else:
        windows = rows.index_select(1, axis.gather).view(rows.shape[0], count, axis.window).transpose(0, 1)
    result = torch.empty((rows.shape[0], count, _BLOCK), dtype=planes.dtype)
    torch.bmm(windows, axis.blocks.transpose(1, 2), out=result.transpose(0, 1))
    result = result.view(count_planes, height, count * _BLOCK)
    return result if count * _BLOCK == out else result[:, :, :out]
