"""dlib's face models, ported to PyTorch and numpy, loaded from files the caller has verified
(``weights.model_file_path``): the MMOD CNN detector, the 5-point landmarks and the ResNet embedder.

dlib itself is not used here (it is the test oracle, ``tests/test_faces_port.py``): the networks
run on the device given (CPU by default; the service passes its engine's device), and their weights
are read from dlib's own CC0 ``.dat`` files.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from models.faces._chips import extract_chip, face_chip_details
from models.faces._mmod import FaceDetector
from models.faces._resnet import EMBEDDING_SIZE, FaceEmbedder
from models.faces._shape import ShapePredictor

__all__ = ["EMBEDDING_SIZE", "Box", "FaceModelFiles", "FaceModels", "scan_faces", "working_factor"]


@dataclass(frozen=True)
class FaceModelFiles:
    """Paths of the three dlib model files (all CC0, from ``face_recognition_models==0.3.0``)."""

    embedder: Path
    landmarks: Path
    detector: Path


@dataclass(frozen=True)
class Box:
    """A face box in some image's pixels: ``left``, ``top``, ``right``, ``bottom`` (floats, may lie
    partly outside the image)."""

    left: float
    top: float
    right: float
    bottom: float

    @property
    def width(self) -> float:
        return self.right - self.left

    @property
    def height(self) -> float:
        return self.bottom - self.top

    def scaled(self, factor: float) -> Box:
        """The same box in an image ``factor`` times larger."""
        return Box(self.left * factor, self.top * factor, self.right * factor, self.bottom * factor)

    def as_list(self) -> list[float]:
        """``[left, top, width, height]`` rounded to 0.1 px, for reports."""
        return [round(self.left, 1), round(self.top, 1), round(self.width, 1), round(self.height, 1)]


def _check(image: np.ndarray) -> np.ndarray:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected uint8 H×W×3 RGB, got {image.dtype} {image.shape}")
    # A writable contiguous copy only when needed: torch.from_numpy wants writable memory.
    return image if image.flags.c_contiguous and image.flags.writeable else np.array(image, order="C")


class FaceModels:
    """dlib's MMOD CNN detector, 5-point landmark predictor and ResNet embedder, on ``device``.

    Every call takes ``image``: uint8 H×W×3, RGB, on the CPU (numpy); the networks run on
    ``device`` under ``torch.inference_mode()``. The object holds only weights, so calls from
    several threads may overlap.
    """

    def __init__(self, files: FaceModelFiles, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.detector = FaceDetector.from_file(files.detector).to(self.device)
        self.landmarks = ShapePredictor.from_file(files.landmarks)
        self.embedder = FaceEmbedder.from_file(files.embedder).to(self.device)

    def cnn(self, image: np.ndarray, factor: float = 1.0) -> list[tuple[Box, float]]:
        """MMOD CNN detections on ``image`` scaled by ``factor``: see :func:`scan_faces`."""
        return scan_faces(self.detector, image, factor)

    def landmarks_of(self, image: np.ndarray, boxes: list[Box]) -> list[np.ndarray]:
        """The 5 landmarks (float64 (5, 2), x, y in pixels) of each face in ``boxes``."""
        # The trees read a few hundred pixels per face: their grey level is taken there, not image-wide.
        image = _check(image)
        points = []
        for box in boxes:
            rect = (round(box.left), round(box.top), round(box.right) - 1, round(box.bottom) - 1)
            points.append(self.landmarks.predict(image, rect))
        return points

    def chips(self, image: np.ndarray, boxes: list[Box]) -> np.ndarray:
        """dlib's aligned 150×150 chips of the faces in ``boxes``: uint8 (len(boxes), 150, 150, 3)."""
        image = _check(image)
        chips = [extract_chip(image, face_chip_details(points)) for points in self.landmarks_of(image, boxes)]
        return np.stack(chips) if chips else np.zeros((0, 150, 150, 3), np.uint8)

    def embed(self, image: np.ndarray, boxes: list[Box]) -> np.ndarray:
        """128-D descriptors of the faces in ``boxes`` (``image``'s pixels): 5-point landmarks fitted in
        the box, then the ResNet on the aligned 150×150 chips, in one batch on the device. Returns
        float32 (len(boxes), 128) on the CPU."""
        chips = self.chips(image, boxes)
        if len(chips) == 0:
            return np.zeros((0, EMBEDDING_SIZE), dtype=np.float32)
        with torch.inference_mode():
            descriptors = self.embedder(torch.from_numpy(chips).to(self.device))
        return descriptors.float().cpu().numpy()


def scan_faces(detector: FaceDetector, image: np.ndarray, factor: float = 1.0) -> list[tuple[Box, float]]:
    """The MMOD CNN's detections on ``image`` (uint8 H×W×3 RGB, numpy) scaled by ``factor`` (bilinear,
    on the detector's device; faces of about ``80 / factor`` px and larger): boxes in ``image``'s
    pixels, best first, with dlib's score (above 0)."""
    image = _check(image)
    height, width = image.shape[:2]
    with torch.inference_mode():
        pixels = torch.from_numpy(image).to(detector.device)[None]
        if abs(factor - 1.0) > 1e-3:
            size = (max(1, round(height * factor)), max(1, round(width * factor)))
            planar = pixels.permute(0, 3, 1, 2).float()
            resized = F.interpolate(planar, size=size, mode="bilinear", align_corners=False, antialias=factor < 1)
            pixels = resized.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
            scale_x, scale_y = width / size[1], height / size[0]
        else:
            scale_x = scale_y = 1.0
        found = detector(pixels)[0]
    # dlib's rectangles are inclusive: the box's right and bottom edges are one pixel further.
    return [
        (Box(d.left * scale_x, d.top * scale_y, (d.right + 1) * scale_x, (d.bottom + 1) * scale_y), d.score)
        for d in found
    ]


def working_factor(width: int, height: int, window: int, min_face: float, max_work_pixels: float) -> float:
    """The scale at which the detector (``window`` px) sees faces of ``min_face`` px, capped so the
    scaled image holds at most ``max_work_pixels``."""
    return min(window / min_face, math.sqrt(max_work_pixels / max(1, width * height)))
