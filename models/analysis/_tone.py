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

from models.analysis._common import check_rgb, luma, shrink, srgb_to_linear

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


def estimate_tone(rgb: np.ndarray) -> ToneEstimate:
    """Exposure and contrast of ``rgb`` (float32 H×W×3 in [0, 1], sRGB); see the module docstring."""
    check_rgb(rgb)
    y = luma(shrink(rgb, MAX_SIDE)).reshape(-1)
    linear = srgb_to_linear(y)
    key = float(np.exp(np.mean(np.log(linear + 1e-3))))
    p_lo, p1, p99, p_hi = np.quantile(y, [0.005, 0.01, 0.99, 0.995])
    return ToneEstimate(
        exposure_ev=float(np.log2(key / TYPICAL_KEY)),
        contrast=float(p99 - p1),
        black_point=float(p_lo),
        white_point=float(p_hi),
        clipped_dark=float(np.mean(y <= 2 / 255)),
        clipped_bright=float(np.mean(y >= 253 / 255)),
    )
