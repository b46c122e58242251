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
import torch

from models.analysis._common import as_tensor, correlate1d, maximum_filter3, minimum_filter3, shrink_t

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


def _laplace32(channel: torch.Tensor) -> torch.Tensor:
    """``scipy.ndimage.laplace`` of a float32 channel as scipy rounds it: each second difference computed
    in float64, stored as float32, then summed."""
    wide = channel.double()
    along_rows = correlate1d(wide, [1.0, -2.0, 1.0], 0).float()
    along_columns = correlate1d(wide, [1.0, -2.0, 1.0], 1).float()
    return along_rows + along_columns


def content_features(rgb: np.ndarray | torch.Tensor) -> tuple[float, float, float, float]:
    """(flat_fraction, flat_fraction_all, smooth_fraction, palette_share) of ``rgb`` (float32 H×W×3 in
    [0, 1]; an array or a tensor on any device, where the work then runs); see the module docstring."""
    small = shrink_t(as_tensor(rgb), MAX_SIDE)
    planes = small.permute(2, 0, 1).contiguous()
    spread = (maximum_filter3(planes) - minimum_filter3(planes)).amax(dim=0)
    curvature = torch.stack([_laplace32(planes[c]).abs() for c in range(3)]).amax(dim=0)
    extreme = (small.amax(dim=2) < 3 / 255) | (small.amin(dim=2) > 252 / 255)
    usable = ~extreme
    flat_mask = spread <= 1.5 / 255
    n_usable = usable.sum()
    flat_all = flat_mask.double().mean()
    flat = (flat_mask & usable).sum().double() / n_usable.clamp(min=1)
    smooth = ((curvature <= 2.5 / 255) & usable).sum().double() / n_usable.clamp(min=1)
    # Grey images: 256 luma levels stand in for colours.
    grey = ((small - small.mean(dim=2, keepdim=True)).abs().amax(dim=2) < 2 / 255).double().mean() > 0.99
    grey_keys = torch.clamp((small.mean(dim=2) * 255.999).to(torch.int32), 0, 255)
    codes = torch.clamp((small * 31.999).to(torch.int32), 0, 31)
    colour_keys = (codes[:, :, 0] << 10) | (codes[:, :, 1] << 5) | codes[:, :, 2]
    keys = torch.where(grey, grey_keys, colour_keys).reshape(-1).long()
    counts = torch.bincount(keys, minlength=12)
    share = torch.topk(counts, 12).values.sum().double() / keys.numel()
    n, flat_v, flat_all_v, smooth_v, share_v = torch.stack([n_usable.double(), flat, flat_all, smooth, share]).tolist()
    if n <= 64:  # nothing but black and white: a drawing in two inks
        flat_v, smooth_v = 1.0, 1.0
    return flat_v, flat_all_v, smooth_v, share_v


def classify_content(
    rgb: np.ndarray | torch.Tensor, noise_sigma: float, model: ContentModel = CONTENT_MODEL
) -> ContentEstimate:
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
