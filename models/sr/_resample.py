"""Resampling primitives shared by the networks' stand-ins and the pipeline's render."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# The phases cost a few small passes each: beyond this factor (a tiny input blown up) PyTorch's kernel is faster.
_MAX_PHASES = 8


def upscale_bicubic(x: torch.Tensor, factor_y: int, factor_x: int) -> torch.Tensor:
    """``F.interpolate(x, scale_factor=(factor_y, factor_x), mode="bicubic", align_corners=False)`` for
    whole-number factors (≥ 1) of a (N, C, H, W) float tensor: the same result to float rounding. On a
    CPU it runs as each axis's phases of four shifted, weighted sums, about twice as fast as PyTorch's
    CPU kernel (which weighs 16 pixels per output pixel) for factors up to 8; else it is ``F.interpolate``."""
    if factor_y < 1 or factor_x < 1:
        raise ValueError(f"factors must be whole numbers ≥ 1, got {factor_y}, {factor_x}")
    if x.device.type != "cpu" or max(factor_y, factor_x) > _MAX_PHASES:
        size = (x.shape[-2] * factor_y, x.shape[-1] * factor_x)
        return F.interpolate(x, size=size, mode="bicubic", align_corners=False)
    return _upscale_axis(_upscale_axis(x, factor_y, -2), factor_x, -1)


# PyTorch's bicubic convolution constant (``upsample_bicubic2d``).
_CUBIC_A = -0.75


def _cubic_weights(t: float) -> tuple[float, float, float, float]:
    """The four taps' weights at fractional position ``t`` (Keys' cubic convolution, ``_CUBIC_A``)."""

    def near(d: float) -> float:  # |d| <= 1
        return ((_CUBIC_A + 2) * d - (_CUBIC_A + 3)) * d * d + 1

    def far(d: float) -> float:  # 1 < |d| < 2
        return ((_CUBIC_A * d - 5 * _CUBIC_A) * d + 8 * _CUBIC_A) * d - 4 * _CUBIC_A

    return far(t + 1), near(t), near(1 - t), far(2 - t)


def _upscale_axis(x: torch.Tensor, factor: int, dim: int) -> torch.Tensor:
    """``F.interpolate``'s bicubic upscale (corners not aligned, edges replicated) of ``x`` along ``dim``
    (-1 or -2) by the whole number ``factor``, as ``factor`` phases of four shifted, weighted sums: the
    same result to float rounding, about twice as fast on a CPU core (PyTorch's CPU kernel weighs 16
    pixels per output pixel; the phases of the two axes weigh 4 each)."""
    if factor == 1:
        return x
    n = x.shape[dim]
    padded = F.pad(x, (2, 2, 0, 0) if dim == -1 else (0, 0, 2, 2), mode="replicate")
    # Output pixel factor·i + p interleaved as (..., n, factor) for the last axis, (..., n, factor, W) else.
    shape = (*x.shape, factor) if dim == -1 else (*x.shape[:-1], factor, x.shape[-1])
    out = torch.empty(shape, dtype=x.dtype, device=x.device)
    for phase in range(factor):
        # Source position of output pixel factor·i + phase: i + offset; taps at floor(offset) - 1 ... + 2.
        offset = (phase + 0.5) / factor - 0.5
        first = math.floor(offset)
        weights = _cubic_weights(offset - first)
        target = out.select(dim if dim == -1 else -2, phase)
        torch.mul(padded.narrow(dim, first + 1, n), weights[0], out=target)
        for tap in range(1, 4):
            target.add_(padded.narrow(dim, first + 1 + tap, n), alpha=weights[tap])
    if dim == -1:
        return out.view(*x.shape[:-1], n * factor)
    return out.view(*x.shape[:-2], n * factor, x.shape[-1])


