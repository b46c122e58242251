"""Content type: photograph or illustration (drawings, anime, logos, rendered graphics).

Measurements combined by a logistic model whose weights are data (``CONTENT_MODEL``):

* ``flat_fraction``: the share of pixels whose 3×3 neighbourhood is constant to within 1.5/255 in
  every channel (``flat_fraction_all``), and the same among pixels away from pure black and white.
  Drawn fills are flat; a photograph's sensor noise and texture almost never are.
* ``smooth_fraction``: the share of pixels whose Laplacian stays within 2.5/255 (rendered gradients).
* ``palette_share``: the share of pixels covered by the 12 most common colours (5 bits a channel; 256
  levels for grey images). Illustrations use a few inks; photographs spread over thousands of shades.
* ``noise_sigma``: the estimated noise level (8-bit units): photographs carry grain, renders none.

Each measurement survives JPEG compression at ordinary qualities and moderate rescaling (checked by
``tests/test_analysis_content.py`` and ``tests/benchmarks/bench_estimators.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from models.analysis._common import check_rgb, shrink

MAX_SIDE = 512


@dataclass(frozen=True)
class ContentModel:
    """Logistic model: P(illustration) = sigmoid(bias + Σ weight·feature), features as in the module
    docstring (``log_noise`` is log(1 + noise_sigma))."""

    bias: float
    flat_fraction: float
    flat_fraction_all: float
    smooth_fraction: float
    palette_share: float
    log_noise: float


# Fitted (L2-regularised logistic regression) on scikit-image's 17 bundled photographs (colour and
# grey, scenes, textures, scans, micrographs) against its 5 graphics (logo, horse silhouette,
# chessboard, colour wheel, phantom) and 4 rendered cartoons, each as is, JPEG q75, downscaled ÷3 and
# upscaled ×2 (104 images): 94 % right, every photograph right (the misses: the smooth colour wheel,
# the downscaled logo and chessboard). ``tests/benchmarks/bench_estimators.py`` re-measures it.
CONTENT_MODEL = ContentModel(
    bias=-2.87, flat_fraction=0.79, flat_fraction_all=3.06, smooth_fraction=0.62, palette_share=1.76, log_noise=-0.18
)


@dataclass(frozen=True)
class ContentEstimate:
    kind: str  # "photo" or "illustration"
    illustration_probability: float
    flat_fraction: float
    palette_share: float


def content_features(rgb: np.ndarray) -> tuple[float, float, float, float]:
    """(flat_fraction, flat_fraction_all, smooth_fraction, palette_share) of ``rgb`` (float32 H×W×3 in [0, 1]); see the
    module docstring."""
    check_rgb(rgb)
    small = shrink(rgb, MAX_SIDE)
    spread = np.zeros(small.shape[:2], dtype=np.float32)
    curvature = np.zeros(small.shape[:2], dtype=np.float32)
    for c in range(3):
        channel = small[:, :, c]
        spread = np.maximum(spread, ndimage.maximum_filter(channel, 3) - ndimage.minimum_filter(channel, 3))
        curvature = np.maximum(curvature, np.abs(ndimage.laplace(channel)))
    extreme = (small.max(axis=2) < 3 / 255) | (small.min(axis=2) > 252 / 255)
    usable = ~extreme
    flat_all = float(np.mean(spread <= 1.5 / 255))
    if usable.sum() > 64:
        flat = float(np.mean(spread[usable] <= 1.5 / 255))
        smooth = float(np.mean(curvature[usable] <= 2.5 / 255))
    else:  # nothing but black and white: a drawing in two inks
        flat, smooth = 1.0, 1.0
    if float(np.mean(np.abs(small - small.mean(axis=2, keepdims=True)).max(axis=2) < 2 / 255)) > 0.99:
        # Grey images: 256 luma levels stand in for colours.
        keys = np.clip((small.mean(axis=2) * 255.999).astype(np.int32), 0, 255)
    else:
        codes = np.clip((small * 31.999).astype(np.int32), 0, 31)
        keys = (codes[:, :, 0] << 10) | (codes[:, :, 1] << 5) | codes[:, :, 2]
    counts = np.bincount(keys.reshape(-1))
    share = float(np.sort(counts)[::-1][:12].sum() / keys.size)
    return flat, flat_all, smooth, share


def classify_content(rgb: np.ndarray, noise_sigma: float, model: ContentModel = CONTENT_MODEL) -> ContentEstimate:
    """Photo or illustration for ``rgb`` (float32 H×W×3 in [0, 1], sRGB) given its ``noise_sigma``."""
    flat, flat_all, smooth, share = content_features(rgb)
    score = (
        model.bias
        + model.flat_fraction * flat
        + model.flat_fraction_all * flat_all
        + model.smooth_fraction * smooth
        + model.palette_share * share
        + model.log_noise * math.log1p(max(noise_sigma, 0.0))
    )
    probability = 1.0 / (1.0 + math.exp(-score))
    return ContentEstimate(
        kind="illustration" if probability >= 0.5 else "photo",
        illustration_probability=probability,
        flat_fraction=flat_all,
        palette_share=share,
    )
