"""Face detection: dlib's MMOD CNN (ported, :mod:`models.faces._mmod`) on a bounded working copy.

The detector's window is 80 px and it searches a pyramid of the image going down in steps of 5/6, so
it finds faces of 80 px and larger. To find faces of ``min_face`` px the image is first scaled by
``80 / min_face`` (×2 for 40 px), as dlib's own ``upsample_num_times`` does, unless the scaled copy
would exceed ``max_work_pixels``: then the scale is capped and the smallest face found grows in
proportion. The CNN's cost is linear in the working copy's pixels (measured in
``tests/benchmarks/bench_faces.py speed``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.faces._mmod import FaceDetector
from models.faces._models import Box, FaceModels, scan_faces, working_factor

# Working-copy budgets: on a GPU the CNN on 16 MP takes milliseconds; on a CPU core about 4 GMAC/s
# make 4 MP (a 15 MP tiled pyramid) cost seconds, so the CPU budget is smaller.
MAX_WORK_PIXELS_CUDA = 16e6
MAX_WORK_PIXELS_CPU = 4e6


@dataclass(frozen=True)
class DetectedFace:
    """A face: its ``box`` in the input's pixels and the CNN's ``confidence`` (dlib's detection score,
    above 0; true faces score about 1)."""

    box: Box
    confidence: float

    @property
    def score(self) -> float:
        """The detector's score (the same as ``confidence``)."""
        return self.confidence


def detect_faces(
    image: np.ndarray,
    models: FaceModels | FaceDetector,
    *,
    min_face: float = 40,
    max_work_pixels: float | None = None,
) -> list[DetectedFace]:
    """Faces in ``image`` (uint8 H×W×3 RGB), largest first, boxes in ``image``'s pixels. ``models``:
    the face models, or only their detector (what analysis holds).

    Frontal and near-frontal faces of at least ``min_face`` px are found while the working copy
    (``image`` scaled by ``80 / min_face``) fits in ``max_work_pixels``; in larger images the smallest
    face found grows in proportion (documented in docs/identity.md). ``max_work_pixels`` None: 16 MP when
    the detector runs on CUDA, 4 MP on the CPU.
    """
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected uint8 H×W×3 RGB, got {image.dtype} {image.shape}")
    height, width = image.shape[:2]
    detector = models.detector if isinstance(models, FaceModels) else models
    if max_work_pixels is None:
        max_work_pixels = MAX_WORK_PIXELS_CUDA if detector.device.type == "cuda" else MAX_WORK_PIXELS_CPU
    factor = working_factor(width, height, detector.window, min_face, max_work_pixels)
    faces = [DetectedFace(box=box, confidence=score) for box, score in scan_faces(detector, image, factor)]
    return sorted(faces, key=lambda face: -face.box.width)
