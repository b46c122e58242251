"""The identity guard: when enhancement moved a face's embedding too far, soften it on that face.

The softer version of a face takes its detail from the input's own pixels of that region resampled
to the output size (bicubic: nothing invented, so nothing that can change who the face looks like)
and its tone from the output (a smooth per-channel gain: the ratio of the two images' Gaussian blurs
of ``TONE_SIGMA`` face widths), so the output's exposure and white balance survive the blend. It is blended in under a
feathered ellipse (full weight over the face, fading to none at 1.6 half-widths), with the smallest
weight in ``blend_steps`` that brings the drift back within the bound.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from scipy.ndimage import gaussian_filter

from models.faces._models import Box, FaceModels

INNER_RADIUS = 1.1
OUTER_RADIUS = 1.6
TONE_SIGMA = 0.35
_EPS = 0.02


@dataclass(frozen=True)
class GuardDecision:
    """What the guard did to one face in one output: its drift before and after, and the blend weight
    of the softer version (0: output kept as enhanced)."""

    drift: float
    blend: float
    drift_after: float

    @property
    def action(self) -> str:
        return "kept" if self.blend == 0 else "softened"


def feathered_ellipse(height: int, width: int, box: Box) -> np.ndarray:
    """float32 (height, width) weights in [0, 1]: 1 within ``INNER_RADIUS`` half-sizes of ``box``'s
    centre (the face and some margin), 0 beyond ``OUTER_RADIUS``, a smoothstep between."""
    cx, cy = (box.left + box.right) / 2, (box.top + box.bottom) / 2
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    radius = np.sqrt(((xs + 0.5 - cx) / (box.width / 2)) ** 2 + ((ys + 0.5 - cy) / (box.height / 1.6)) ** 2)
    t = np.clip((OUTER_RADIUS - radius) / (OUTER_RADIUS - INNER_RADIUS), 0.0, 1.0)
    return (t * t * (3 - 2 * t)).astype(np.float32)


def _region(box: Box, width: int, height: int) -> tuple[int, int, int, int]:
    """The output pixels the blend can touch: the ellipse's bounding box, clipped to the image."""
    half_w, half_h = box.width / 2 * OUTER_RADIUS, box.height / 1.6 * OUTER_RADIUS
    cx, cy = (box.left + box.right) / 2, (box.top + box.bottom) / 2
    return (
        max(0, math.floor(cx - half_w)),
        max(0, math.floor(cy - half_h)),
        min(width, math.ceil(cx + half_w)),
        min(height, math.ceil(cy + half_h)),
    )


def _smooth(image: np.ndarray, sigma: float) -> np.ndarray:
    """A Gaussian blur of ``image`` (float32 h×w×3) with ``sigma`` px (edges replicated). A large
    ``sigma`` blurs a block-averaged copy (blocks of about sigma/4 px, whose own smoothing is negligible
    beside it) and resizes it back bilinearly: the same smooth field at a small fraction of the cost
    (a face 500 px wide on a 2K output took seconds per blur at full resolution)."""
    factor = max(1, int(sigma // 4))
    if factor == 1:
        return gaussian_filter(image, (sigma, sigma, 0), mode="nearest")
    height, width = image.shape[:2]
    full = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).permute(2, 0, 1)[None]
    small = F.avg_pool2d(full, factor, ceil_mode=True, count_include_pad=False)[0].permute(1, 2, 0).numpy()
    blurred = gaussian_filter(small, (sigma / factor, sigma / factor, 0), mode="nearest")
    back = torch.from_numpy(np.ascontiguousarray(blurred)).permute(2, 0, 1)[None]
    return F.interpolate(back, size=(height, width), mode="bilinear", align_corners=False)[0].permute(1, 2, 0).numpy()


def soften_face(output: np.ndarray, source: np.ndarray, box: Box, weight: float) -> np.ndarray:
    """``output`` (float32 h×w×3 in [0, 1]) with the face at ``box`` (output pixels) blended by
    ``weight``, under the feathered ellipse, toward the bicubic resampling of ``source`` (uint8 H×W×3,
    the input) carrying the output's own tone. Returns a new array; ``output`` is not modified."""
    result = output.copy()
    softened = _softened_region(output, source, box, weight)
    if softened is not None:
        (left, top, right, bottom), patch = softened
        result[top:bottom, left:right] = patch
    return result


Region = tuple[int, int, int, int]  # left, top, right, bottom (exclusive) in output pixels


def _softened_region(
    output: np.ndarray, source: np.ndarray, box: Box, weight: float
) -> tuple[Region, np.ndarray] | None:
    """What :func:`soften_face` changes: the region the blend can touch and its new float32 pixels
    (None when there is nothing to change). Only that region is read or written, so a large output
    costs no more than a small one."""
    height, width = output.shape[:2]
    scale = width / source.shape[1]
    left, top, right, bottom = _region(box, width, height)
    if right <= left or bottom <= top or weight <= 0:
        return None
    resampled = Image.fromarray(source).resize(
        (right - left, bottom - top),
        Image.Resampling.BICUBIC,
        box=(left / scale, top / scale, right / scale, bottom / scale),
    )
    soft = np.asarray(resampled, dtype=np.float32) / 255.0
    region = output[top:bottom, left:right]
    sigma = TONE_SIGMA * box.width
    gain = (_smooth(region, sigma) + _EPS) / (_smooth(soft, sigma) + _EPS)
    soft = np.clip(soft * gain, 0.0, 1.0)
    local = Box(box.left - left, box.top - top, box.right - left, box.bottom - top)
    mask = (feathered_ellipse(bottom - top, right - left, local) * weight)[..., None]
    return (left, top, right, bottom), region + (soft - region) * mask


def guard_face(
    output: np.ndarray,
    output_u8: np.ndarray,
    source: np.ndarray,
    box: Box,
    reference: np.ndarray,
    models: FaceModels,
    *,
    max_drift: float,
    blend_steps: tuple[float, ...],
    embedding: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, GuardDecision]:
    """Check one face of one output against its input embedding ``reference`` (128,) and soften it
    when it drifted more than ``max_drift``. ``output`` is float32 h×w×3 in [0, 1] or uint8 h×w×3
    (converted to float32 only when the face must be softened), ``output_u8`` the same as uint8 (the
    same array when ``output`` is uint8), ``source`` the input as uint8 H×W×3, ``box`` in output pixels.
    Returns (output, output_u8, embedding on the returned output, decision): the given arrays when the
    face was kept; new ones when it was softened, ``output`` then float32 and ``output_u8`` its
    :func:`to_uint8`. ``embedding``: the face's embedding on ``output_u8`` when the caller already has
    it (from one batch for all faces), else it is computed here."""
    if embedding is None:
        embedding = models.embed(output_u8, [box])[0]
    drift = float(np.linalg.norm(embedding - reference))
    if drift <= max_drift:
        return output, output_u8, embedding, GuardDecision(drift, 0.0, drift)
    base = _to_float(output) if output.dtype == np.uint8 else output
    # Each blend weight is tried on the face's region only: ``output_u8`` is ``to_uint8(base)``, so
    # patching the region's rounded pixels into a copy of it gives ``to_uint8`` of the whole softened
    # image without converting (or copying as float) a whole 12-MP output per try.
    chosen: tuple[float, tuple[Region, np.ndarray] | None, np.ndarray, np.ndarray, float] | None = None
    for weight in blend_steps:
        softened = _softened_region(base, source, box, weight)
        softened_u8 = output_u8.copy()
        if softened is not None:
            (left, top, right, bottom), patch = softened
            softened_u8[top:bottom, left:right] = to_uint8(patch)
        moved = models.embed(softened_u8, [box])[0]
        after = float(np.linalg.norm(moved - reference))
        chosen = (weight, softened, softened_u8, moved, after)
        if after <= max_drift:
            break
    if chosen is None:  # no blend steps: nothing to try
        return output, output_u8, embedding, GuardDecision(drift, 0.0, drift)
    weight, softened, softened_u8, moved, after = chosen
    result = base.copy()
    if softened is not None:
        (left, top, right, bottom), patch = softened
        result[top:bottom, left:right] = patch
    return result, softened_u8, moved, GuardDecision(drift, weight, after)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """float32 [0, 1] → uint8, rounded (what the encoder writes)."""
    return np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _to_float(image: np.ndarray) -> np.ndarray:
    """uint8 → float32 [0, 1] (level/255); :func:`to_uint8` maps it back exactly."""
    return np.divide(image, np.float32(255.0), dtype=np.float32)
