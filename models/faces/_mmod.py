"""dlib's MMOD CNN face detector (``mmod_human_face_detector.dat``) in PyTorch.

The network is dlib's (``dlib/examples/dnn_mmod_face_detection_ex.cpp``): three 5×5/2 convolutions
(16, 32, 32 filters) each followed by an affine layer and a ReLU, three 5×5 convolutions of 45
filters likewise, and a 9×9 convolution to one score per position; weights from the ``.dat`` file
(:mod:`models.faces._dlib_format`).

dlib runs it on a *tiled image pyramid* (``input_rgb_image_pyramid<pyramid_down<6>>``): the image
and its copies each 5/6 the size of the previous one (bilinear, down to 5 rows) are packed into one
plane with 10 px of zeros between them, normalised as ``(pixel - mean) / 256``. Every position
scoring above 0 is a detection: its 80×80 window is mapped back through the convolutions' strides
and the pyramid level it lies in, best first, and a detection overlapping a better one (dlib's
``test_box_overlap``: intersection over the two boxes' bounding box, or the share of either box
covered) is dropped. This module does the same, so detections match dlib's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models.faces._dlib_format import DlibFormatError, Network, Node, read_network
from models.faces._dlib_net import DlibNet, _Op

PYRAMID_RATE = 5 / 6
PYRAMID_UP = 6 / 5
MIN_LEVEL_HEIGHT = 5


def network_nodes() -> list[Node]:
    """``con<1,9,9> < rcon5 ×3 < downsampler < input >>>``: 19 layers from the top, none tagged."""
    return [Node("layer")] * 19


@dataclass(frozen=True)
class Detection:
    """One face: ``left, top, right, bottom`` (dlib's inclusive integer rectangle, in the pixels of
    the image given) and the network's ``score`` (above 0)."""

    left: int
    top: int
    right: int
    bottom: int
    score: float


Rect = tuple[int, int, int, int]  # left, top, right, bottom (inclusive)


def tiled_pyramid_rects(rows: int, cols: int, padding: int, outer_padding: int) -> tuple[list[Rect], int, int]:
    """Where each pyramid level lies in the tiled plane, and the plane's rows and columns (dlib's
    ``compute_tiled_image_pyramid_details``): the levels go down the left column, then back up the
    right side once there is room next to the first."""
    sizes = [(cols, rows)]
    nr, nc = rows, cols
    while True:
        nr, nc = math.floor(PYRAMID_RATE * nr), math.floor(PYRAMID_RATE * nc)
        if nr * nc == 0 or nr < MIN_LEVEL_HEIGHT:
            break
        sizes.append((nc, nr))
    total_height = sum(h + padding for _, h in sizes) - 2 * padding
    first_w, first_h = sizes[0]
    height, prev_width = 0, 0
    for w, h in sizes:
        if w <= first_w - prev_width - padding and (height - first_h) * 2 >= total_height - first_h:
            break
        height += h + padding
        prev_width = w
    height -= padding
    rects: list[Rect] = []
    y = outer_padding
    index = 0
    while y < height + outer_padding and index < len(sizes):
        w, h = sizes[index]
        rects.append((outer_padding, y, outer_padding + w - 1, y + h - 1))
        y += h + padding
        index += 1
    y -= padding
    first = rects[0]
    while index < len(sizes):
        w, h = sizes[index]
        right, bottom = outer_padding + first_w - 1, y - 1
        rect = (right - (w - 1), bottom - (h - 1), right, bottom)
        if not (rect[2] < first[0] or rect[0] > first[2] or rect[3] < first[1] or rect[1] > first[3]):
            break
        rects.append(rect)
        y -= h + padding
        index += 1
    return rects, height + 2 * outer_padding, first_w + 2 * outer_padding


def _box_overlaps(a: Rect, b: Rect, iou: float, covered: float) -> bool:
    """dlib's ``test_box_overlap`` on inclusive integer rectangles."""
    inner_w = min(a[2], b[2]) - max(a[0], b[0]) + 1
    inner_h = min(a[3], b[3]) - max(a[1], b[1]) + 1
    if inner_w <= 0 or inner_h <= 0:
        return False
    inner = inner_w * inner_h
    outer = (max(a[2], b[2]) - min(a[0], b[0]) + 1) * (max(a[3], b[3]) - min(a[1], b[1]) + 1)
    area_a = (a[2] - a[0] + 1) * (a[3] - a[1] + 1)
    area_b = (b[2] - b[0] + 1) * (b[3] - b[1] + 1)
    return inner / outer > iou or inner / area_a > covered or inner / area_b > covered


def _lround(value: float) -> int:
    """C's ``lround``: halves away from zero."""
    return math.floor(value + 0.5) if value >= 0 else -math.floor(-value + 0.5)


class FaceDetector(nn.Module):
    """dlib's ``cnn_face_detection_model_v1`` (no upsampling): faces of about 80 px and larger."""

    mean: torch.Tensor

    def __init__(self, network: Network) -> None:
        super().__init__()
        self.net = DlibNet(network.layers)
        self.register_buffer("mean", torch.tensor(network.input["mean"], dtype=torch.float32).reshape(1, 3, 1, 1))
        self.padding = int(network.input["padding"])
        self.outer_padding = int(network.input["outer_padding"])
        loss = network.loss
        if loss.get("name") != "loss_mmod_" or loss.get("bounding_box_regression"):
            raise DlibFormatError("expected an MMOD loss without bounding-box regression")
        self.windows: list[tuple[int, int]] = loss["windows"]
        self.nms_iou = float(loss["nms_iou"])
        self.nms_covered = float(loss["nms_covered"])
        # Output position (c, r) → input position a*c + b: each convolution maps p to
        # p*stride - padding + size//2 (dlib's map_output_to_input), the other layers keep it.
        scale, offset = 1.0, 0.0
        for layer in reversed(network.layers):
            if layer.kind == "con":
                stride, padding = layer.fields["stride"][0], layer.fields["padding"][0]
                size = layer.fields["weight"].shape[2]
                offset = offset * stride - padding + size // 2
                scale *= stride
        self.to_input = (scale, offset)

    @classmethod
    def from_file(cls, path: Path) -> FaceDetector:
        """The detector with the weights of ``path`` (dlib's file, checked by the caller).

        Raises:
            DlibFormatError: the file is not dlib's MMOD face detector.
        """
        detector = cls(read_network(path.read_bytes(), network_nodes()))
        detector.eval()
        return detector

    @property
    def device(self) -> torch.device:
        return self.mean.device

    @property
    def window(self) -> int:
        """The smallest side of the detector's windows (80 px): faces about this size and larger are found."""
        return min(min(w, h) for w, h in self.windows)

    def pyramid(self, images: torch.Tensor) -> tuple[torch.Tensor, list[Rect]]:
        """The tiled pyramid of ``images`` (uint8 N×H×W×3 RGB, one size, on the module's device):
        float32 N×3×rows×cols, normalised, and the levels' rectangles in it."""
        count, rows, cols = images.shape[:3]
        rects, plane_rows, plane_cols = tiled_pyramid_rects(rows, cols, self.padding, self.outer_padding)
        plane = torch.zeros((count, 3, plane_rows, plane_cols), dtype=torch.float32, device=images.device)
        left, top, right, bottom = rects[0]
        level = (images.permute(0, 3, 1, 2).float() - self.mean) / 256.0
        plane[:, :, top : bottom + 1, left : right + 1] = level
        for left, top, right, bottom in rects[1:]:
            # dlib resizes each level from the previous one (bilinear, corners aligned).
            level = F.interpolate(level, size=(bottom - top + 1, right - left + 1), mode="bilinear", align_corners=True)
            plane[:, :, top : bottom + 1, left : right + 1] = level
        return plane, rects

    def forward(self, images: torch.Tensor) -> list[list[Detection]]:
        """Faces in each of ``images``: uint8 N×H×W×3 RGB (all one size) on the module's device.
        Returns one list per image, best first, boxes in that image's pixels.

        Raises:
            ValueError: ``images`` is not uint8 N×H×W×3.
        """
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[3] != 3:
            raise ValueError(f"expected uint8 N×H×W×3 images, got {images.dtype} {tuple(images.shape)}")
        if images.shape[1] < MIN_LEVEL_HEIGHT or images.shape[2] < MIN_LEVEL_HEIGHT:
            return [[] for _ in range(images.shape[0])]
        plane, rects = self.pyramid(images)
        if not self._fits(plane.shape[2], plane.shape[3]):
            # Too thin for the convolutions (a strip a few pixels wide): no window fits, no face.
            return [[] for _ in range(images.shape[0])]
        # channels_last: about 20 % faster on CPU (oneDNN) and the layout tensor cores want.
        scores = self.net(plane.contiguous(memory_format=torch.channels_last))
        return [self._detections(sample, rects) for sample in scores.float().cpu().numpy()]

    def _fits(self, rows: int, cols: int) -> bool:
        """Whether a ``rows`` × ``cols`` plane still holds every convolution's kernel on the way down."""
        for op in self.net.ops:
            if op.kind == "con":
                layer = cast(_Op, op)
                kernel = layer.weight.shape[2:]
                (stride_y, stride_x), (pad_y, pad_x) = layer.stride, layer.padding
                if rows + 2 * pad_y < kernel[0] or cols + 2 * pad_x < kernel[1]:
                    return False
                rows = (rows + 2 * pad_y - kernel[0]) // stride_y + 1
                cols = (cols + 2 * pad_x - kernel[1]) // stride_x + 1
        return True

    def _detections(self, scores: np.ndarray, rects: list[Rect]) -> list[Detection]:
        scale, offset = self.to_input
        candidates: list[tuple[float, float, float, float, float]] = []
        for channel, (width, height) in enumerate(self.windows):
            rows, cols = np.nonzero(scores[channel] > 0)
            for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
                x, y = c * scale + offset, r * scale + offset
                # centered_drect: a width×height box (inclusive) centred on the point.
                box = (x - (width - 1) / 2, y - (height - 1) / 2, x + (width - 1) / 2, y + (height - 1) / 2)
                candidates.append((float(scores[channel, r, c]), *self._to_image(box, rects)))
        candidates.sort(key=lambda item: -item[0])
        kept: list[Detection] = []
        for score, left, top, right, bottom in candidates:
            rect = (_lround(left), _lround(top), _lround(right), _lround(bottom))
            overlapped = (
                _box_overlaps((d.left, d.top, d.right, d.bottom), rect, self.nms_iou, self.nms_covered) for d in kept
            )
            if any(overlapped):
                continue
            kept.append(Detection(*rect, score=score))
        return kept

    @staticmethod
    def _to_image(box: tuple[float, float, float, float], rects: list[Rect]) -> tuple[float, float, float, float]:
        """dlib's ``tiled_pyramid_to_image``: the level nearest the box's centre, then up the pyramid."""
        cx, cy = _lround((box[0] + box[2]) / 2), _lround((box[1] + box[3]) / 2)
        best, best_distance = 0, math.inf
        for index, (left, top, right, bottom) in enumerate(rects):
            if left <= cx <= right and top <= cy <= bottom:
                best = index
                break
            nx, ny = min(max(cx, left), right), min(max(cy, top), bottom)
            distance = math.hypot(nx - cx, ny - cy)
            if distance < best_distance:
                best, best_distance = index, distance
        ox, oy = rects[best][0], rects[best][1]
        corners = [box[0] - ox, box[1] - oy, box[2] - ox, box[3] - oy]
        for _ in range(best):
            corners = [value * PYRAMID_UP + 0.3 for value in corners]
        return corners[0], corners[1], corners[2], corners[3]
