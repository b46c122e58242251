"""Blur: the Gaussian radius (sigma, in pixels) of the image's edges.

Method: re-blur ratio at edges (Zhuo and Sim, "Defocus map estimation from a single image", 2011).
A step edge blurred by sigma has a gradient peak proportional to 1/sigma; blurred again by a known
``sigma0`` the peak falls to 1/sqrt(sigma² + sigma0²). Their ratio R at the strongest edges gives
sigma = sigma0 / sqrt(R² - 1). The median over edge pixels is reported. A sharp digital photo reads
about 0.5-1.0 (the camera's own optics and the pixel's footprint); an added Gaussian blur of radius
r raises it to about sqrt(base² + r²).
"""

from __future__ import annotations

import numpy as np
import torch

from models.analysis._common import as_tensor, centre_crop_t, gaussian_filter, luma_t, maximum_filter3, sobel

REBLUR_SIGMA = 1.0
EDGE_FRACTION = 0.03
MAX_SIDE = 768


def estimate_blur_sigma(rgb: np.ndarray | torch.Tensor) -> float:
    """Gaussian blur radius (sigma, pixels) of the edges of ``rgb`` (float32 H×W×3 in [0, 1], sRGB; an
    array or a tensor on any device, where the work then runs).

    Returns 0.0 for images with no usable edges (flat or smaller than 16 px a side). Noise is first
    suppressed by a light pre-blur whose own contribution is subtracted in quadrature.
    """
    image = as_tensor(rgb)
    if min(image.shape[:2]) < 16:
        return 0.0
    y = luma_t(centre_crop_t(image, MAX_SIDE)).double()
    pre = 0.5
    y = gaussian_filter(y, pre)
    reblurred = gaussian_filter(y, REBLUR_SIGMA)
    magnitude = torch.hypot(sobel(y, 0), sobel(y, 1)) / 8.0
    magnitude_re = torch.hypot(sobel(reblurred, 0), sobel(reblurred, 1)) / 8.0
    # Local maxima of the gradient (edge centres), among the strongest few per cent.
    peaks = magnitude == maximum_filter3(magnitude)
    border = torch.zeros_like(peaks)
    border[4:-4, 4:-4] = True
    candidates = peaks & border
    threshold = torch.quantile(magnitude[4:-4, 4:-4].reshape(-1), 1 - EDGE_FRACTION).clamp(min=0.02)
    edges = candidates & (magnitude >= threshold)
    ratio = magnitude / magnitude_re.clamp(min=1e-6)
    usable = edges & (ratio > 1.0 + 1e-3)
    sigma = REBLUR_SIGMA / torch.sqrt(torch.where(usable, ratio**2 - 1.0, torch.ones_like(ratio)))
    median = torch.nanquantile(torch.where(usable, sigma, torch.full_like(sigma, float("nan"))).reshape(-1), 0.5)
    zero = torch.zeros((), dtype=torch.float64, device=magnitude.device)
    n_candidates, top, n_edges, n_usable, sigma_total = torch.stack(
        [
            candidates.sum().double(),
            torch.where(candidates, magnitude, zero).max(),
            edges.sum().double(),
            usable.sum().double(),
            median,
        ]
    ).tolist()
    if n_candidates < 20 or top < 0.02 or n_edges < 10:
        return 0.0
    if n_usable == 0:
        return float("inf")
    return float(np.sqrt(max(sigma_total**2 - pre**2, 0.0)))
