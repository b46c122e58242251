"""The profile picture: a square crop of the subject's face."""

from __future__ import annotations

import numpy as np
from PIL import Image

from models.faces._models import Box

PICTURE_SIDE = 256
MARGIN = 0.35


def face_picture(image: np.ndarray, box: Box, side: int = PICTURE_SIDE) -> np.ndarray:
    """A ``side``×``side`` uint8 RGB crop centred on ``box`` with ``MARGIN`` of its size around it
    (``image``: uint8 H×W×3; the crop is clipped to the image, then resized, so it stays square only
    where the image allows)."""
    height, width = image.shape[:2]
    half = max(box.width, box.height) * (1 + 2 * MARGIN) / 2
    cx, cy = (box.left + box.right) / 2, (box.top + box.bottom) / 2
    half = min(half, cx, cy, width - cx, height - cy) if half > min(width, height) / 2 else half
    left, top = max(0, round(cx - half)), max(0, round(cy - half))
    right, bottom = min(width, round(cx + half)), min(height, round(cy + half))
    crop = Image.fromarray(np.ascontiguousarray(image[top:bottom, left:right]))
    return np.asarray(crop.resize((side, side), Image.Resampling.LANCZOS))
