"""Faces: how many frontal faces, and how large, with the identity's own face detector.

One face detector serves analysis and identity: dlib's MMOD CNN, ported to PyTorch
(``models.faces``), run on a bounded working copy of at most ``WORK_PIXELS`` (1 MP; a 512² input is
scaled ×2 so that faces of ``MIN_FACE`` = 40 px reach the detector's 80-px window, larger inputs
less, so their smallest face found grows: ~130 px in a 2048×1365 input). Boxes are in the input
image's pixels. Side views and faces under ~40 px are missed.

The detector comes from the caller (the service's, on its device; ``models.pipeline`` loads a CPU
one when it has none): this package takes loaded models and never reads the weights store.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.analysis._common import check_rgb
from models.faces import FaceDetector
from models.faces import detect_faces as find_faces

WORK_PIXELS = 1024 * 1024
MIN_FACE = 40


@dataclass(frozen=True)
class FaceBox:
    """A face in input pixels: top-left ``x``, ``y`` and side ``size`` (the detector's boxes are square)."""

    x: int
    y: int
    size: int


def find_face_boxes(rgb: np.ndarray, detector: FaceDetector) -> list[FaceBox]:
    """Frontal faces in ``rgb`` (float32 H×W×3 in [0, 1], sRGB), largest first, in input pixels, found
    by ``detector`` (loaded by the caller, on its device). Raises ``ValueError`` for arrays of the
    wrong type or shape."""
    check_rgb(rgb)
    if min(rgb.shape[:2]) < 8:
        return []
    pixels = np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)
    found = find_faces(pixels, detector, min_face=MIN_FACE, max_work_pixels=WORK_PIXELS)
    return [FaceBox(x=round(face.box.left), y=round(face.box.top), size=round(face.box.width)) for face in found]
