"""Weightless upscalers: networks built in code, with no weights to load (the service's test mode).

They are registered in ``SR_NETWORKS`` like the real networks (entries with a ``build`` function and no
``weights_name``), so tiling, batching and the pipeline run them unchanged."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from models.sr._resample import correlate, resize_bicubic


def _gaussian_kernel(sigma: float) -> torch.Tensor:
    radius = max(1, math.ceil(3 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-(x**2) / (2 * sigma**2))
    return kernel / kernel.sum()


class BicubicUnsharp(nn.Module):
    """A cheap, deterministic stand-in for a super-resolution network: a mild unsharp mask (``amount``
    of the difference to a Gaussian blur of ``sigma`` input pixels, on the small input where it costs
    a sixteenth) followed by a bicubic ×``scale`` upscale.

    Input ``(N, 3, h, w)`` float (float32 or float16) RGB in [0, 1] on any device; output
    ``(N, 3, h*scale, w*scale)`` of the same dtype, clamped to [0, 1]. No parameters, only a fixed
    blur kernel kept as a buffer (so ``.to(device, dtype)`` moves it like weights)."""

    def __init__(self, scale: int = 4, amount: float = 0.5, sigma: float = 0.7) -> None:
        super().__init__()
        self.scale = scale
        self.amount = amount
        self.register_buffer("kernel", _gaussian_kernel(sigma), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected (N, 3, H, W), got {tuple(x.shape)}")
        kernel: torch.Tensor = self.kernel.to(dtype=x.dtype)  # type: ignore[assignment]
        radius = kernel.numel() // 2
        weights = kernel.tolist()
        # Separable, as shifted weighted sums (PyTorch's depthwise convolution is ~5x slower on a CPU).
        blurred = correlate(F.pad(x, (radius, radius, 0, 0), mode="replicate"), weights, dim=-1)
        blurred = correlate(F.pad(blurred, (0, 0, radius, radius), mode="replicate"), weights, dim=-2)
        sharpened = torch.lerp(blurred, x, 1.0 + self.amount).clamp_(0.0, 1.0)
        height, width = x.shape[-2:]
        return resize_bicubic(sharpened, height * self.scale, width * self.scale).clamp_(0.0, 1.0)
