"""Small shared helpers of the estimators: luma, bounded working copies, patch sampling."""

from __future__ import annotations

import numpy as np
from PIL import Image

# Rec. 601 luma weights: what JPEG uses for Y, and close enough to perceived brightness for analysis.
LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def check_rgb(rgb: np.ndarray) -> None:
    """Raise ``ValueError`` unless ``rgb`` is float32 H×W×3 (values expected in [0, 1], sRGB)."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.float32:
        raise ValueError(f"expected float32 H×W×3, got {rgb.dtype} {rgb.shape}")


def luma(rgb: np.ndarray) -> np.ndarray:
    """Rec. 601 luma of float32 H×W×3 sRGB ``rgb``: float32 H×W in the same range."""
    return np.asarray(rgb @ LUMA_WEIGHTS, dtype=np.float32)


def srgb_to_linear(values: np.ndarray) -> np.ndarray:
    """sRGB-encoded values in [0, 1] to linear light (IEC 61966-2-1), float32."""
    v = np.clip(values, 0.0, 1.0).astype(np.float32)
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb(values: np.ndarray) -> np.ndarray:
    """Linear light in [0, 1] to sRGB encoding, float32."""
    v = np.clip(values, 0.0, 1.0).astype(np.float32)
    return np.where(v <= 0.0031308, v * 12.92, 1.055 * v ** (1 / 2.4) - 0.055).astype(np.float32)


def shrink(rgb: np.ndarray, long_side: int) -> np.ndarray:
    """A copy of ``rgb`` (float32 H×W×3 in [0, 1]) whose long side is at most ``long_side`` (box-filtered
    area reduction, which keeps global statistics such as tone and colour); small images are returned as is."""
    height, width = rgb.shape[:2]
    if max(height, width) <= long_side:
        return rgb
    ratio = long_side / max(height, width)
    size = (max(1, round(width * ratio)), max(1, round(height * ratio)))
    channels = [
        np.asarray(Image.fromarray(np.ascontiguousarray(rgb[:, :, c])).resize(size, Image.Resampling.BOX))
        for c in range(3)
    ]
    return np.stack(channels, axis=2).astype(np.float32)


def centre_crop(values: np.ndarray, side: int) -> np.ndarray:
    """The central ``side``×``side`` region of an H×W(×C) array (or the whole array when smaller)."""
    height, width = values.shape[:2]
    y0 = max(0, (height - side) // 2)
    x0 = max(0, (width - side) // 2)
    return values[y0 : y0 + side, x0 : x0 + side]
