"""dlib's 5-point face landmarks (``shape_predictor_5_face_landmarks.dat``) in numpy.

dlib's ``shape_predictor`` (``dlib/image_processing/shape_predictor.h``; Kazemi and Sullivan, 2014)
is a cascade of regression-tree forests. Starting from a mean shape placed in the face box, each
level of the cascade reads a few hundred pixel intensities at points tied to the current shape (an
anchor landmark plus an offset, moved by the similarity between the mean shape and the current one),
and each tree of that level walks down on differences of two of those intensities and adds its
leaf's shape correction. Intensities are dlib's ``(r + g + b) / 3`` (integer), taken at the nearest
pixel, 0 outside the image. All of it is ported as dlib computes it, in float32 where dlib uses
float, so the landmarks land on the same pixels.

The file holds: version 1, the initial shape (a column of x, y values in the unit box), the
forests (per level, trees of ``splits`` (anchor indices and a threshold) and ``leaf_values``), then
per level the pixels' anchor indices and offsets.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.faces._chips import similarity_transform
from models.faces._dlib_format import DlibFormatError, DlibReader, reals


@dataclass(frozen=True)
class _Level:
    """One cascade level: ``idx1``, ``idx2``, ``thresh`` (trees × splits), ``leaves`` (trees × leaves
    × 2·parts), ``anchors`` (pixels) and ``deltas`` (pixels × 2)."""

    idx1: np.ndarray
    idx2: np.ndarray
    thresh: np.ndarray
    leaves: np.ndarray
    anchors: np.ndarray
    deltas: np.ndarray


class ShapePredictor:
    """dlib's shape predictor: ``predict(gray, box)`` → landmarks in image pixels."""

    def __init__(self, initial_shape: np.ndarray, levels: list[_Level]) -> None:
        self.initial_shape = initial_shape
        self.levels = levels

    @property
    def num_parts(self) -> int:
        return self.initial_shape.size // 2

    @classmethod
    def from_file(cls, path: Path) -> ShapePredictor:
        """The predictor stored in ``path`` (dlib's file, checked by the caller).

        Raises:
            DlibFormatError: the file is not a dlib shape predictor.
        """
        reader = DlibReader(path.read_bytes())
        reader.version((1,), "shape_predictor")
        tokens = reader.integers_to_end()
        at = 0

        def take(count: int) -> np.ndarray:
            nonlocal at
            if at + count > len(tokens):
                raise DlibFormatError("the shape predictor file ends early")
            chunk = tokens[at : at + count]
            at += count
            return chunk

        def column() -> np.ndarray:
            rows, cols = np.abs(take(2))
            return reals(take(2 * int(rows * cols)).reshape(-1, 2))

        initial = column()
        forests = []
        for _ in range(int(take(1)[0])):
            trees = []
            for _ in range(int(take(1)[0])):
                splits = take(4 * int(take(1)[0])).reshape(-1, 4)
                # Every leaf is a column as long as the shape: rows, columns, then its reals.
                count = int(take(1)[0])
                block = take(count * (2 + 2 * initial.size)).reshape(count, -1)
                if not (np.all(np.abs(block[:, 0]) == initial.size) and np.all(np.abs(block[:, 1]) == 1)):
                    raise DlibFormatError("a leaf's correction is not the size of the shape")
                leaves = reals(block[:, 2:].reshape(count, -1, 2))
                if len(leaves) != len(splits) + 1:
                    raise DlibFormatError("a regression tree must have one more leaf than splits")
                trees.append((splits, leaves))
            forests.append(trees)
        anchors = [take(int(take(1)[0])) for _ in range(int(take(1)[0]))]
        deltas = [reals(take(4 * int(take(1)[0])).reshape(-1, 2, 2)) for _ in range(int(take(1)[0]))]
        if at != len(tokens) or not (len(forests) == len(anchors) == len(deltas)):
            raise DlibFormatError("trailing values or mismatched cascade levels in the shape predictor")
        levels = []
        for trees, level_anchors, level_deltas in zip(forests, anchors, deltas, strict=True):
            splits = np.stack([tree[0] for tree in trees])
            levels.append(
                _Level(
                    idx1=splits[..., 0],
                    idx2=splits[..., 1],
                    thresh=reals(splits[..., 2:4]),
                    leaves=np.stack([tree[1] for tree in trees]),
                    anchors=level_anchors,
                    deltas=level_deltas,
                )
            )
        return cls(initial, levels)

    def predict(self, intensity: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
        """Landmarks of the face in ``box`` (dlib's inclusive ``left, top, right, bottom``, integers)
        of ``intensity`` (uint8 H×W, dlib's ``(r + g + b) // 3``, or the uint8 H×W×3 RGB image, whose
        grey level is then taken only at the pixels the trees read): float64 (parts, 2), x and y in
        pixels, rounded to whole pixels as dlib's ``full_object_detection`` holds them."""
        left, top, right, bottom = box
        height, width = intensity.shape[:2]
        # unnormalizing_tform: the unit box's (0, 0) and (1, 1) onto the box's corners.
        scale = np.array([right - left, bottom - top], dtype=np.float64)
        origin = np.array([left, top], dtype=np.float64)
        reference = self.initial_shape.reshape(-1, 2)
        shape = self.initial_shape.astype(np.float32).copy()
        for level in self.levels:
            current = shape.reshape(-1, 2)
            m, _ = similarity_transform(reference.astype(np.float64), current.astype(np.float64))
            m32 = m.astype(np.float32)
            points = level.deltas @ m32.T + current[level.anchors]
            pixels = np.floor(points.astype(np.float64) * scale + origin + 0.5).astype(np.int64)
            xs, ys = pixels[:, 0], pixels[:, 1]
            inside = (xs >= 0) & (ys >= 0) & (xs < width) & (ys < height)
            values = np.zeros(len(pixels), np.float32)
            sampled = intensity[ys[inside], xs[inside]]
            values[inside] = sampled if sampled.ndim == 1 else sampled.astype(np.uint16).sum(axis=1) // 3
            node = np.zeros(level.idx1.shape[0], dtype=np.int64)
            rows = np.arange(level.idx1.shape[0])
            splits = level.idx1.shape[1]
            while True:
                active = node < splits
                if not active.any():
                    break
                at = np.minimum(node, splits - 1)
                go_left = values[level.idx1[rows, at]] - values[level.idx2[rows, at]] > level.thresh[rows, at]
                node = np.where(active, np.where(go_left, 2 * node + 1, 2 * node + 2), node)
            leaves = level.leaves[rows, node - splits]
            # dlib adds the trees' corrections one after another in float32.
            shape = np.cumsum(np.vstack([shape[None], leaves]), axis=0, dtype=np.float32)[-1]
        parts = shape.reshape(-1, 2).astype(np.float64) * scale + origin
        return np.floor(parts + 0.5)


def intensity_image(image: np.ndarray) -> np.ndarray:
    """dlib's grey level of an RGB image: ``(r + g + b) // 3`` as uint8 (H×W)."""
    return (image.astype(np.uint16).sum(axis=2) // 3).astype(np.uint8)
