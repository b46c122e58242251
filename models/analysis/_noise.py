"""Noise level: the standard deviation of additive noise, in 8-bit units (0..255).

Method: Chen, Zhu and Heng, "An Efficient Statistical Method for Image Noise Level Estimation"
(ICCV 2015). The covariance of small patches has a few large eigenvalues (image structure) and many
small ones (noise); the noise variance is the mean of the tail of eigenvalues at the first index
where that tail's mean equals its median. Rich texture also reaches the small eigenvalues, so the
analysis only uses weak-texture patches (as Liu, Tanaka and Okutomi do): the fraction whose
*smoothed* content varies least, a choice the noise itself barely influences. Computed per colour
channel and averaged in variance.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy import ndimage

from models.analysis._common import centre_crop, check_rgb

PATCH = 7
WEAK_TEXTURE_FRACTION = 0.3
MAX_PATCHES = 30_000
# Larger images are analysed on their centre: noise statistics need full resolution, not every pixel.
MAX_SIDE = 640


def _channel_noise_variance(channel: np.ndarray, rng: np.random.Generator) -> float:
    """Noise variance of one H×W float64 channel in 0..255 units."""
    smooth = ndimage.gaussian_filter(channel, 1.5)
    texture = ndimage.uniform_filter(smooth**2, PATCH) - ndimage.uniform_filter(smooth, PATCH) ** 2
    half = PATCH // 2
    texture = texture[half : channel.shape[0] - half, half : channel.shape[1] - half][::2, ::2]
    # Near black or white the noise is clipped away: such flat patches would read as clean, so they
    # come last (used only when the image has too little else, e.g. a black-on-white drawing).
    level = smooth[half : channel.shape[0] - half, half : channel.shape[1] - half][::2, ::2]
    texture = np.where((level < 12.0) | (level > 243.0), texture + 1e6, texture)
    windows = sliding_window_view(channel, (PATCH, PATCH))[::2, ::2]
    patches = windows.reshape(-1, PATCH * PATCH)
    order = np.argsort(texture.reshape(-1), kind="stable")
    keep = order[: max(PATCH * PATCH * 4, int(len(order) * WEAK_TEXTURE_FRACTION))]
    patches = patches[keep]
    if patches.shape[0] > MAX_PATCHES:
        patches = patches[rng.choice(patches.shape[0], MAX_PATCHES, replace=False)]
    centred = patches - patches.mean(axis=0, keepdims=True)
    covariance = centred.T @ centred / max(1, centred.shape[0] - 1)
    eigenvalues = np.clip(np.sort(np.linalg.eigvalsh(covariance))[::-1], 0.0, None)
    for i in range(len(eigenvalues)):
        tail = eigenvalues[i:]
        tau = tail.mean()
        if np.sum(tail > tau) >= np.sum(tail < tau):
            return float(tau)
    return float(eigenvalues[-1])


def estimate_noise_sigma(rgb: np.ndarray) -> float:
    """Standard deviation of the noise in ``rgb`` (float32 H×W×3 in [0, 1], sRGB), in 8-bit units.

    Signal-dependent (Poisson-like) noise is reported as its root-mean-square level. Images smaller
    than 16 px a side give 0.0. Deterministic (patch sampling uses a fixed seed).
    """
    check_rgb(rgb)
    if min(rgb.shape[:2]) < 16:
        return 0.0
    rng = np.random.default_rng(0)
    values = centre_crop(rgb, MAX_SIDE).astype(np.float64) * 255.0
    variances = [_channel_noise_variance(values[:, :, c], rng) for c in range(3)]
    return float(np.sqrt(np.mean(variances)))
