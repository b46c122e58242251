"""Faces: how many frontal faces, and how large, with scikit-image's LBP cascade.

The detector is the LBP frontal-face cascade that ships inside scikit-image
(``lbpcascade_frontalface_opencv.xml``, OpenCV's, BSD licence), run by ``skimage.feature.Cascade``
on the luma over a bounded working copy. The cascade fires several times around a real face and
sometimes once on texture, so a face is kept only when it is also found in the mirrored image (faces
are nearly symmetric; chance texture hits are not) and, in colour images, when the middle of its box
shows skin tones; overlapping boxes are merged. Boxes are in
the input image's pixels. This detector finds frontal faces of at least ~24 px; profiles and very
small faces are missed (the identity work in ``models/faces`` brings dlib's CNN detector).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from models.analysis._common import check_rgb, luma, shrink

MAX_SIDE = 512
MIN_FACE = 24
SKIN_MIN = 0.25

_lock = threading.Lock()
_detector: object | None = None


@dataclass(frozen=True)
class FaceBox:
    """A face in input pixels: top-left ``x``, ``y`` and side ``size`` (the cascade's boxes are square)."""

    x: int
    y: int
    size: int


def _cascade() -> object:
    """The cascade, built once per process on first use (its model file is part of scikit-image)."""
    global _detector
    with _lock:
        if _detector is None:
            from skimage import data
            from skimage.feature import Cascade

            _detector = Cascade(data.lbp_frontal_face_cascade_filename())
        return _detector


def _detect(gray: np.ndarray, min_face: int = MIN_FACE, max_face: int | None = None) -> list[tuple[int, int, int, int]]:
    side = min(gray.shape)
    largest = side if max_face is None else min(side, max_face)
    if largest < min_face:
        return []
    found = _cascade().detect_multi_scale(  # type: ignore[attr-defined]
        img=gray, scale_factor=1.2, step_ratio=1, min_size=(min_face, min_face), max_size=(largest, largest)
    )
    return [(d["c"], d["r"], d["width"], d["height"]) for d in found]


def _mirror_confirms(gray: np.ndarray, box: tuple[int, int, int, int]) -> bool:
    """Whether the mirrored image shows a face where ``box`` is. Only a window around the box is
    searched, at sizes near the box's (the whole mirrored image would double the detector's cost)."""
    x, y, w, h = box
    margin = w // 2
    x0, y0 = max(0, x - margin), max(0, y - margin)
    x1, y1 = min(gray.shape[1], x + w + margin), min(gray.shape[0], y + h + margin)
    window = gray[y0:y1, x0:x1][:, ::-1].copy()
    found = _detect(window, max(MIN_FACE, int(w * 0.7)), int(w * 1.45) + 1)
    # Back to image coordinates: a box at column c of the mirrored window starts at x1 - c - width.
    mirrored = [(x1 - c - bw, y0 + r, bw, bh) for c, r, bw, bh in found]
    return any(_overlap(box, other) > 0.5 for other in mirrored)


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    inter = max(0, x1 - x0) * max(0, y1 - y0)
    return inter / min(a[2] * a[3], b[2] * b[3])


def _skin_fraction(rgb: np.ndarray, box: tuple[int, int, int, int]) -> float:
    """Share of skin-toned pixels (YCbCr chroma box of Chai and Ngan, 1999) in the box's inner part."""
    x, y, w, h = box
    inner = rgb[y + h // 5 : y + h - h // 5, x + w // 5 : x + w - w // 5].reshape(-1, 3).astype(np.float64) * 255
    if inner.size == 0:
        return 0.0
    cb = 128 - 0.168736 * inner[:, 0] - 0.331264 * inner[:, 1] + 0.5 * inner[:, 2]
    cr = 128 + 0.5 * inner[:, 0] - 0.418688 * inner[:, 1] - 0.081312 * inner[:, 2]
    return float(np.mean((cr >= 133) & (cr <= 173) & (cb >= 77) & (cb <= 127)))


def detect_faces(rgb: np.ndarray) -> list[FaceBox]:
    """Frontal faces in ``rgb`` (float32 H×W×3 in [0, 1], sRGB), largest first, in input pixels."""
    check_rgb(rgb)
    width = rgb.shape[1]
    small = shrink(rgb, MAX_SIDE)
    scale = width / small.shape[1]
    gray = luma(small).astype(np.float64)
    if min(gray.shape) < MIN_FACE:
        return []
    confirmed = [box for box in _detect(gray) if _mirror_confirms(gray, box)]
    colourful = float(np.abs(small - small.mean(axis=2, keepdims=True)).mean()) > 0.02
    if colourful:
        # In colour, a face shows skin somewhere in its middle (any skin tone falls in the chroma box).
        confirmed = [box for box in confirmed if _skin_fraction(small, box) >= SKIN_MIN]
    merged: list[tuple[int, int, int, int]] = []
    for box in sorted(confirmed, key=lambda b: -b[2]):
        if all(_overlap(box, kept) < 0.3 for kept in merged):
            merged.append(box)
    return [FaceBox(x=round(x * scale), y=round(y * scale), size=round(w * scale)) for x, y, w, _h in merged]
