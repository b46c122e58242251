"""Colour cast: the colour of the light, estimated by the grey-edge hypothesis.

Method: van de Weijer, Gevers and Gijsenij, "Edge-based colour constancy" (2007), first order,
Minkowski norm p = 6, on linear RGB after a light blur: the average colour of edges (differences
between neighbours) is achromatic under neutral light, so their mean colour is the illuminant. The
cast is reported as per-channel gains relative to green and as an angle (degrees) from neutral
grey, the customary colour-constancy error. A cast applied as gains (r, g, b) in linear light is
recovered as those gains, up to the scene's own colour bias (its estimate before the cast).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from models.analysis._common import as_tensor, gaussian_filter, shrink_t, sobel, srgb_to_linear_t

MINKOWSKI_P = 6.0
MAX_SIDE = 512


@dataclass(frozen=True)
class ColourCast:
    """``gains``: the illuminant's (r, g, b) relative to green (neutral: 1, 1, 1). ``angle_deg``:
    angular distance of the illuminant from neutral grey. ``warmth``: log2(r/b), positive = warm."""

    gains: tuple[float, float, float]
    angle_deg: float
    warmth: float


def illuminant_angle(a: np.ndarray, b: np.ndarray) -> float:
    """Angle in degrees between two RGB illuminant vectors."""
    cosine = float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))
    return float(np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0))))


def estimate_colour_cast(rgb: np.ndarray | torch.Tensor) -> ColourCast:
    """Colour cast of ``rgb`` (float32 H×W×3 in [0, 1], sRGB; an array or a tensor on any device,
    where the work then runs); see the module docstring."""
    linear = srgb_to_linear_t(shrink_t(as_tensor(rgb), MAX_SIDE)).double()
    # Clipped pixels carry no colour information about the light.
    valid = (linear.amax(dim=2) < 0.98) & (linear.amin(dim=2) > 0.002)
    count = valid.sum()
    means = []
    for c in range(3):
        smooth = gaussian_filter(linear[:, :, c], 1.0)
        powered = torch.hypot(sobel(smooth, 0), sobel(smooth, 1)) ** MINKOWSKI_P
        over_valid = (powered * valid).sum() / count.clamp(min=1)
        means.append(torch.where(count > 100, over_valid, powered.mean()))
    illuminant = (torch.stack(means) ** (1 / MINKOWSKI_P)).cpu().numpy()
    if illuminant[1] <= 0:
        return ColourCast(gains=(1.0, 1.0, 1.0), angle_deg=0.0, warmth=0.0)
    gains = illuminant / illuminant[1]
    return ColourCast(
        gains=(float(gains[0]), 1.0, float(gains[2])),
        angle_deg=illuminant_angle(illuminant, np.ones(3)),
        warmth=float(np.log2(gains[0] / max(gains[2], 1e-6))),
    )
