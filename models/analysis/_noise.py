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
import torch

from models.analysis._common import as_tensor, centre_crop_t, gaussian_filter, uniform_filter

PATCH = 7
WEAK_TEXTURE_FRACTION = 0.3
MAX_PATCHES = 30_000
# Larger images are analysed on their centre: noise statistics need full resolution, not every pixel.
MAX_SIDE = 640


def _weak_texture_patches(channel: torch.Tensor, keep: int, sample: np.ndarray | None) -> torch.Tensor:
    """The ``keep`` weakest-texture 7×7 patches (every other position) of one H×W float64 channel in
    0..255 units, as rows of a matrix; ``sample`` (indices into those) thins them further."""
    smooth = gaussian_filter(channel, 1.5)
    texture = uniform_filter(smooth**2, PATCH) - uniform_filter(smooth, PATCH) ** 2
    half = PATCH // 2
    texture = texture[half : channel.shape[0] - half, half : channel.shape[1] - half][::2, ::2]
    # Near black or white the noise is clipped away: such flat patches would read as clean, so they
    # come last (used only when the image has too little else, e.g. a black-on-white drawing).
    level = smooth[half : channel.shape[0] - half, half : channel.shape[1] - half][::2, ::2]
    texture = torch.where((level < 12.0) | (level > 243.0), texture + 1e6, texture)
    order = torch.sort(texture.reshape(-1), stable=True).indices[:keep]
    if sample is not None:
        order = order[torch.from_numpy(sample).to(order.device)]
    # Only the chosen patches are copied out of the (rows, columns, 7, 7) view of all of them.
    patches = channel.unfold(0, PATCH, 2).unfold(1, PATCH, 2)
    return patches[order // patches.shape[1], order % patches.shape[1]].reshape(-1, PATCH * PATCH)


def _tail_mean_variance(eigenvalues: torch.Tensor) -> torch.Tensor:
    """Per row of descending eigenvalues (B×N): the mean of the tail at the first index where at least as
    many tail values lie above that mean as below it (else the smallest eigenvalue)."""
    n = eigenvalues.shape[1]
    suffix = torch.flip(torch.cumsum(torch.flip(eigenvalues, [1]), 1), [1])
    tau = suffix / torch.arange(n, 0, -1, device=eigenvalues.device, dtype=eigenvalues.dtype)  # B×N
    index = torch.arange(n, device=eigenvalues.device)
    in_tail = index[None, :] >= index[:, None]  # [i, j]: j belongs to the tail starting at i
    above = ((eigenvalues[:, None, :] > tau[:, :, None]) & in_tail).sum(2)
    below = ((eigenvalues[:, None, :] < tau[:, :, None]) & in_tail).sum(2)
    found = above >= below
    first = torch.where(found.any(1), found.int().argmax(1), torch.full_like(found[:, 0], n - 1, dtype=torch.long))
    fallback = eigenvalues[:, -1]
    return torch.where(found.any(1), tau.gather(1, first[:, None])[:, 0], fallback)


def estimate_noise_sigma(rgb: np.ndarray | torch.Tensor) -> float:
    """Standard deviation of the noise in ``rgb`` (float32 H×W×3 in [0, 1], sRGB; an array or a tensor
    on any device, where the work then runs), in 8-bit units.

    Signal-dependent (Poisson-like) noise is reported as its root-mean-square level. Images smaller
    than 16 px a side give 0.0. Deterministic (patch sampling uses a fixed seed).
    """
    image = as_tensor(rgb)
    if min(image.shape[:2]) < 16:
        return 0.0
    rng = np.random.default_rng(0)
    values = centre_crop_t(image, MAX_SIDE).double() * 255.0
    rows = (values.shape[0] - PATCH) // 2 + 1
    columns = (values.shape[1] - PATCH) // 2 + 1
    count = rows * columns
    keep = min(count, max(PATCH * PATCH * 4, int(count * WEAK_TEXTURE_FRACTION)))
    covariances = []
    for c in range(3):
        # The sample depends only on the image's size: drawn on the host, as the seed has always drawn it.
        sample = rng.choice(keep, MAX_PATCHES, replace=False) if keep > MAX_PATCHES else None
        patches = _weak_texture_patches(values[:, :, c], keep, sample)
        centred = patches - patches.mean(dim=0, keepdim=True)
        covariances.append(centred.T @ centred / max(1, centred.shape[0] - 1))
    eigenvalues = torch.flip(torch.linalg.eigvalsh(torch.stack(covariances)), [1]).clamp(min=0.0)
    variances = _tail_mean_variance(eigenvalues)
    return float(torch.sqrt(variances.mean()).item())
