"""Face detection: dlib's HOG detector proposes, its MMOD CNN confirms.

Measured on real photos (``tests/benchmarks/bench_faces.py``, 2-core CPU): HOG on the image upsampled
×2 finds frontal faces down to ~34 px across, off-centre and several per image, in ~0.8 s for a
1.7 MP image; it also fires on texture (the astronaut photo's suit). Its proposals, taken with a
permissive score, are each confirmed by the CNN on a crop where the face is ~100 px wide (~0.3 s
each): true faces scored ≥ 0.98, the texture hits found nothing. Running the CNN on whole images
instead cost 2-21 s per photo on this CPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from models.faces._models import Box, FaceModels

# HOG's window is 80 px: scaling by 80 / min_face lets it see faces of min_face px.
HOG_WINDOW = 80
HOG_THRESHOLD = -0.5
CNN_FACE_SIDE = 100
CNN_MIN_CONFIDENCE = 0.5
MAX_PROPOSALS = 24


@dataclass(frozen=True)
class DetectedFace:
    """A confirmed face: its ``box`` in the input's pixels, HOG ``score`` and CNN ``confidence``."""

    box: Box
    score: float
    confidence: float


def _resize(image: np.ndarray, factor: float) -> np.ndarray:
    height, width = image.shape[:2]
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BICUBIC))


def _overlap(a: Box, b: Box) -> float:
    """Intersection over the smaller box's area."""
    width = max(0.0, min(a.right, b.right) - max(a.left, b.left))
    height = max(0.0, min(a.bottom, b.bottom) - max(a.top, b.top))
    smaller = min(a.width * a.height, b.width * b.height)
    return width * height / smaller if smaller > 0 else 0.0


def _confirm(image: np.ndarray, box: Box, models: FaceModels) -> float:
    """The CNN's confidence that ``box`` holds a face (0 when it finds none there)."""
    height, width = image.shape[:2]
    margin = box.width * 0.5
    left, top = max(0, math.floor(box.left - margin)), max(0, math.floor(box.top - margin))
    right, bottom = min(width, math.ceil(box.right + margin)), min(height, math.ceil(box.bottom + margin))
    if right - left < 8 or bottom - top < 8:
        return 0.0
    factor = CNN_FACE_SIDE / max(box.width, 1.0)
    crop = _resize(np.ascontiguousarray(image[top:bottom, left:right]), factor)
    local = Box(box.left - left, box.top - top, box.right - left, box.bottom - top).scaled(factor)
    return max((conf for found, conf in models.cnn(crop) if _overlap(found, local) > 0.3), default=0.0)


def detect_faces(
    image: np.ndarray, models: FaceModels, *, min_face: int = 40, max_work_pixels: float = 16e6
) -> list[DetectedFace]:
    """Faces in ``image`` (uint8 H×W×3 RGB), largest first, boxes in ``image``'s pixels.

    Frontal and near-frontal faces of at least ``min_face`` px are found while the HOG pass fits in
    ``max_work_pixels`` (the image is scaled by ``80 / min_face``, capped so that it does); in larger
    images the smallest face found grows in proportion (documented in the README). At most
    ``MAX_PROPOSALS`` proposals are confirmed.
    """
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected uint8 H×W×3 RGB, got {image.dtype} {image.shape}")
    height, width = image.shape[:2]
    factor = min(HOG_WINDOW / min_face, math.sqrt(max_work_pixels / (width * height)))
    work = _resize(image, factor) if abs(factor - 1.0) > 1e-3 else image
    proposals = [(box.scaled(1.0 / factor), score) for box, score in models.hog(work, HOG_THRESHOLD)]
    faces = []
    for box, score in proposals[:MAX_PROPOSALS]:
        confidence = _confirm(image, box, models)
        if confidence >= CNN_MIN_CONFIDENCE:
            faces.append(DetectedFace(box=box, score=score, confidence=confidence))
    return sorted(faces, key=lambda face: -face.box.width)
