"""Exposure and contrast, from the luma histogram (sRGB-encoded values, as viewers see them).

* ``exposure_ev``: log2 of how far the image's log-average linear luminance (Reinhard's "key") sits
  from the key of a typical well-exposed photo (0.18 linear, middle grey). −1 means one stop darker
  than typical. A brightness change by a factor k in linear light moves it by log2(k) exactly, up to
  clipping.
* ``contrast``: the spread of luma between its 1st and 99th percentiles (0..1, sRGB-encoded); a
  contrast change by a factor c around mid-grey multiplies it by c.
* ``black_point`` / ``white_point``: the 0.5th and 99.5th percentiles of luma; ``clipped_dark`` /
  ``clipped_bright``: the fractions of pixels at the ends of the range.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from models.analysis._common import as_tensor, luma_t, shrink_t, srgb_to_linear_t

TYPICAL_KEY = 0.18
MAX_SIDE = 512


@dataclass(frozen=True)
class ToneEstimate:
    exposure_ev: float
    contrast: float
    black_point: float
    white_point: float
    clipped_dark: float
    clipped_bright: float


def estimate_tone(rgb: np.ndarray | torch.Tensor) -> ToneEstimate:
    """Exposure and contrast of ``rgb`` (float32 H×W×3 in [0, 1], sRGB; an array or a tensor on any
    device, where the work then runs); see the module docstring."""
    y = luma_t(shrink_t(as_tensor(rgb), MAX_SIDE)).reshape(-1)
    linear = srgb_to_linear_t(y)
    log_key = torch.log(linear + 1e-3).mean()
    points = torch.quantile(y, torch.tensor([0.005, 0.01, 0.99, 0.995], device=y.device))
    dark = (y <= 2 / 255).float().mean()
    bright = (y >= 253 / 255).float().mean()
    log_key, p_lo, p1, p99, p_hi, dark, bright = torch.cat(
        [log_key.double()[None], points.double(), dark.double()[None], bright.double()[None]]
    ).tolist()
    return ToneEstimate(
        exposure_ev=float(np.log2(np.exp(log_key) / TYPICAL_KEY)),
        contrast=float(p99 - p1),
        black_point=float(p_lo),
        white_point=float(p_hi),
        clipped_dark=float(dark),
        clipped_bright=float(bright),
    )
