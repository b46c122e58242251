"""dlib's face chips: the 150×150 aligned crop its face-recognition ResNet was trained on.

A port of ``get_face_chip_details(shape, 150, 0.25)`` and ``extract_image_chips`` with bilinear
interpolation (``dlib/image_transforms/interpolation.h``), so that the ported ResNet sees the pixels
dlib's would and stored descriptors stay comparable:

* the chip is the similarity transform (Umeyama least squares) taking dlib's 5-point mean face,
  padded by 25 %, onto the landmarks;
* where the chip is much smaller than its region of the image, dlib first halves the region with its
  ``pyramid_down<2>`` (a separable 1-4-6-4-1 filter, integer arithmetic) until bilinear sampling no
  longer skips pixels, then samples bilinearly, truncating to uint8, black outside the image.

Geometry follows dlib's conventions: rectangles are inclusive (width = right - left + 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

CHIP_SIZE = 150
CHIP_PADDING = 0.25

# dlib's 5-point mean face (get_face_chip_details), in units of the unpadded chip.
_MEAN_FACE_5 = np.array(
    [
        (0.8595674595992, 0.2134981538014),
        (0.6460604764104, 0.2289674387677),
        (0.1205750620789, 0.2137274526848),
        (0.3340850613712, 0.2290642403242),
        (0.4901123135679, 0.6277975316475),
    ]
)


@dataclass(frozen=True)
class ChipDetails:
    """Where a chip lies in the image: a rectangle (left, top, right, bottom, inclusive, floats) of the
    unrotated chip, the rotation ``angle`` (radians) about its centre, and the chip's size."""

    rect: tuple[float, float, float, float]
    angle: float
    rows: int
    cols: int


def similarity_transform(source: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The least-squares similarity ``x ↦ m @ x + b`` taking ``source`` points onto ``target``
    (Umeyama, as dlib's ``find_similarity_transform``). Returns (m 2×2, b 2)."""
    mean_from, mean_to = source.mean(axis=0), target.mean(axis=0)
    sigma_from = float(np.mean(np.sum((source - mean_from) ** 2, axis=1)))
    cov = (target - mean_to).T @ (source - mean_from) / len(source)
    u, d, vt = np.linalg.svd(cov)
    s = np.eye(2)
    if np.linalg.det(cov) < 0 or (np.linalg.det(cov) == 0 and np.linalg.det(u) * np.linalg.det(vt) < 0):
        if d[1] < d[0]:
            s[1, 1] = -1
        else:
            s[0, 0] = -1
    rotation = u @ s @ vt
    scale = float(np.trace(np.diag(d) @ s)) / sigma_from if sigma_from != 0 else 1.0
    m = scale * rotation
    return m, mean_to - m @ mean_from


def face_chip_details(landmarks: np.ndarray, size: int = CHIP_SIZE, padding: float = CHIP_PADDING) -> ChipDetails:
    """dlib's ``get_face_chip_details`` for 5 landmarks (float (5, 2) x, y in image pixels)."""
    if landmarks.shape != (5, 2):
        raise ValueError(f"expected 5 landmarks (5, 2), got {landmarks.shape}")
    chip_points = (padding + _MEAN_FACE_5) / (2 * padding + 1) * size
    m, b = similarity_transform(chip_points, landmarks.astype(np.float64))
    px, py = m @ np.array([1.0, 0.0])
    angle = math.atan2(py, px)
    scale = math.hypot(px, py)
    centre = m @ np.array([size / 2.0, size / 2.0]) + b
    half_w, half_h = (size * scale - 1) / 2, (size * scale - 1) / 2
    rect = (centre[0] - half_w, centre[1] - half_h, centre[0] + half_w, centre[1] + half_h)
    return ChipDetails(rect=rect, angle=angle, rows=size, cols=size)


def _area(rect: tuple[float, float, float, float]) -> float:
    left, top, right, bottom = rect
    if left > right or top > bottom:
        return 0.0
    return (right - left + 1) * (bottom - top + 1)


def _rect_down(rect: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    """``pyramid_down<2>::rect_down``: ``p / 2 - (1.25, 0.75)`` on both corners."""
    left, top, right, bottom = rect
    return (left / 2 - 1.25, top / 2 - 0.75, right / 2 - 1.25, bottom / 2 - 0.75)


def _rotate(centre: tuple[float, float], point: tuple[float, float], angle: float) -> tuple[float, float]:
    c, s = math.cos(angle), math.sin(angle)
    x, y = point[0] - centre[0], point[1] - centre[1]
    return (c * x - s * y + centre[0], s * x + c * y + centre[1])


def _corners(rect: tuple[float, float, float, float]) -> list[tuple[float, float]]:
    left, top, right, bottom = rect
    return [(left, top), (right, top), (left, bottom), (right, bottom)]


def pyramid_down_2(image: np.ndarray) -> np.ndarray:
    """dlib's ``pyramid_down<2>`` on uint8 H×W×3: a 1-4-6-4-1 filter both ways, every other pixel,
    integer sums divided by 256 (output ``(H-3)//2 × (W-3)//2``; empty for images of 8 px or less)."""
    height, width = image.shape[:2]
    if height <= 8 or width <= 8:
        return np.zeros((0, 0, 3), np.uint8)
    out_h, out_w = (height - 3) // 2, (width - 3) // 2
    src = image.astype(np.int32)
    rows = np.zeros((height, out_w, 3), np.int32)
    for k, tap in enumerate((1, 4, 6, 4, 1)):
        rows += tap * src[:, k : k + 2 * out_w : 2]
    cols = np.zeros((out_h, out_w, 3), np.int32)
    for k, tap in enumerate((1, 4, 6, 4, 1)):
        cols += tap * rows[k : k + 2 * out_h : 2]
    return (cols // 256).astype(np.uint8)


def _affine_from_3(source: list[tuple[float, float]], target: list[tuple[float, float]]) -> np.ndarray:
    """The affine map (2×3) taking three points exactly onto three others."""
    a = np.array([[x, y, 1.0] for x, y in source])
    return np.linalg.solve(a, np.array(target)).T


def _bilinear(image: np.ndarray, tform: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """``transform_image`` with ``interpolate_bilinear``: chip pixel (c, r) samples ``image`` at
    ``tform @ (c, r, 1)``; values truncate to uint8; samples needing pixels outside are black."""
    ys, xs = np.mgrid[0:rows, 0:cols].astype(np.float64)
    px = tform[0, 0] * xs + tform[0, 1] * ys + tform[0, 2]
    py = tform[1, 0] * xs + tform[1, 1] * ys + tform[1, 2]
    left, top = np.floor(px).astype(np.int64), np.floor(py).astype(np.int64)
    height, width = image.shape[:2]
    inside = (left >= 0) & (top >= 0) & (left + 1 < width) & (top + 1 < height)
    left, top = np.where(inside, left, 0), np.where(inside, top, 0)
    right, bottom = np.minimum(left + 1, width - 1), np.minimum(top + 1, height - 1)
    lr = (px - left)[..., None]
    tb = (py - top)[..., None]
    img = image.astype(np.float64)
    value = (1 - tb) * ((1 - lr) * img[top, left] + lr * img[top, right]) + tb * (
        (1 - lr) * img[bottom, left] + lr * img[bottom, right]
    )
    out = np.where(inside[..., None], np.floor(value), 0.0)
    return out.astype(np.uint8)


def extract_chip(image: np.ndarray, details: ChipDetails) -> np.ndarray:
    """dlib's ``extract_image_chips`` for one chip of ``image`` (uint8 H×W×3 RGB): uint8
    rows×cols×3 RGB."""
    size = details.rows * details.cols
    height, width = image.shape[:2]
    depth, grow = 0, 2.0
    rect = _rect_down(details.rect)
    while _area(rect) > size:
        rect = _rect_down(rect)
        depth += 1
        grow = grow * 2 + 2
    left, top, right, bottom = details.rect
    centre = ((left + right) / 2, (top + bottom) / 2)
    rotated = [_rotate(centre, corner, details.angle) for corner in _corners(details.rect)]
    xs, ys = [p[0] for p in rotated], [p[1] for p in rotated]
    grown = (
        max(min(xs) - grow, 0.0),
        max(min(ys) - grow, 0.0),
        min(max(xs) + grow, width - 1.0),
        min(max(ys) + grow, height - 1.0),
    )
    # A rectangle built from a drectangle rounds each side to the nearest integer.
    bx0, by0, bx1, by1 = (math.floor(v + 0.5) for v in grown)
    if bx0 > bx1 or by0 > by1:
        return np.zeros((details.rows, details.cols, 3), np.uint8)
    level_image = image[by0 : by1 + 1, bx0 : bx1 + 1]
    rect = (left - bx0, top - by0, right - bx0, bottom - by0)
    while _area(_rect_down(rect)) > size:
        rect = _rect_down(rect)
        level_image = pyramid_down_2(level_image)
    centre = ((rect[0] + rect[2]) / 2, (rect[1] + rect[3]) / 2)
    corners = _corners(rect)
    target = [_rotate(centre, corners[k], details.angle) for k in (0, 1, 2)]
    source = [(0.0, 0.0), (details.cols - 1.0, 0.0), (0.0, details.rows - 1.0)]
    tform = _affine_from_3(source, target)
    return _bilinear(np.ascontiguousarray(level_image), tform, details.rows, details.cols)
