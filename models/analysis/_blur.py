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
from scipy import ndimage

from models.analysis._common import centre_crop, check_rgb, luma

REBLUR_SIGMA = 1.0
EDGE_FRACTION = 0.03
MAX_SIDE = 768


def estimate_blur_sigma(rgb: np.ndarray) -> float:
    """Gaussian blur radius (sigma, pixels) of the edges of ``rgb`` (float32 H×W×3 in [0, 1], sRGB).

    Returns 0.0 for images with no usable edges (flat or smaller than 16 px a side). Noise is first
    suppressed by a light pre-blur whose own contribution is subtracted in quadrature.
    """
    check_rgb(rgb)
    if min(rgb.shape[:2]) < 16:
        return 0.0
    y = centre_crop(luma(rgb), MAX_SIDE).astype(np.float64)
    pre = 0.5
    y = ndimage.gaussian_filter(y, pre)
    reblurred = ndimage.gaussian_filter(y, REBLUR_SIGMA)
    magnitude = np.hypot(ndimage.sobel(y, axis=0), ndimage.sobel(y, axis=1)) / 8.0
    magnitude_re = np.hypot(ndimage.sobel(reblurred, axis=0), ndimage.sobel(reblurred, axis=1)) / 8.0
    # Local maxima of the gradient (edge centres), among the strongest few per cent.
    peaks = magnitude == ndimage.maximum_filter(magnitude, size=3)
    border = np.zeros_like(peaks)
    border[4:-4, 4:-4] = True
    candidates = magnitude[peaks & border]
    if candidates.size < 20 or candidates.max() < 0.02:
        return 0.0
    threshold = max(np.quantile(magnitude[border], 1 - EDGE_FRACTION), 0.02)
    edges = peaks & border & (magnitude >= threshold)
    if edges.sum() < 10:
        return 0.0
    ratio = magnitude[edges] / np.maximum(magnitude_re[edges], 1e-6)
    ratio = ratio[ratio > 1.0 + 1e-3]
    if ratio.size == 0:
        return float("inf")
    sigma_total = float(np.median(REBLUR_SIGMA / np.sqrt(ratio**2 - 1.0)))
    return float(np.sqrt(max(sigma_total**2 - pre**2, 0.0)))
