"""Noise level: the standard deviation of additive noise, in 8-bit units (0..255).

Method: Chen, Zhu and Heng, "An Efficient Statistical Method for Image Noise Level Estimation"
(ICCV 2015). The covariance of small patches has a few large eigenvalues (image structure) and many
small ones (noise); the noise variance is the mean of the tail of eigenvalues at the first index
where that tail's mean equals its median. Rich texture also reaches the small eigenvalues, so the
analysis only uses weak-texture patches (as Liu, Tanaka and Okutomi do): the fraction whose
*smoothed* content varies least, a choice the noise itself barely influences. Computed per colour
channel and averaged in variance.

Fine texture that fills a small image (grass, feathers, a cellular pattern at 128 px) still reads as
noise through that. So the estimate is made twice, on the image and on its 2×2 box average, and only
what behaves like white noise is kept: averaging four pixels halves white noise's standard deviation,
while texture's reading grows (the half-scale patches cover four times the scene). With σ₁² = n² + t²
and σ₂² = n²/4 + γ²t² for a growth γ, n² = (γ²σ₁² − σ₂²) / (γ² − 1/4), capped by σ₁. ``TEXTURE_GROWTH``
(γ = 1.5) was chosen on scikit-image's photos with noise added and on the tuning half of the scene
photos (clean, mild, heavy): added σ = 5-30 reads as before or closer, and clean photos of dense
texture (a dragonfly on leaves, a motorcycle at 128 px) read ~0 instead of 7-8. Texture that grows
less than γ still reads partly as noise. JPEG below quality 75 removes the fine frequencies of the
noise that this test relies on (σ = 15 at quality 50 reads 3-5 at full scale, 5-8 at half): such
files get the single-scale estimate.

Dense fine texture that also grows less than γ (a forest stream, a bed of ferns at 128 px) still read
σ 8-9 and sent clean photos down the degraded path. In a lossless colour file (PNG, BMP, lossless
WebP: the caller says so with ``full_chroma``) the two opponent chroma planes settle it: independent
noise of σ in each channel reads σ in each orthonormal chroma plane too, while texture lives mostly in
luma (that stream: chroma 2.3 against 8 overall). So where texture dominates the reading (the
half-scale reading is at least ``TEXTURE_DOMINATED`` = 0.75 of the full-scale one: white noise alone
gives 0.5, texture that does not shrink 1 or more), the estimate is capped at ``CHROMA_SLACK`` (1.5)
times the chroma planes' own two-scale estimate, which leaves noise whose channels correlate up to
ρ ≈ 0.56 (1 − 1/1.5²) unchanged. What this gives up: noise that is purely grey (the same in every
channel) on dense texture in a lossless colour file reads as texture, and such a file is rendered as
clean, grain kept (grey noise on a photo of ordinary texture still dominates the reading and is read
as before). Lossy files (JPEG, lossy WebP, HEIF, AVIF) halve their chroma's resolution and remove its
noise, and grey images (chroma spread below ``MIN_CHROMA_SPREAD``) have none: both keep the luma
estimate.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from models.analysis._common import as_tensor, centre_crop_t, gaussian_filter, uniform_filter

PATCH = 7
WEAK_TEXTURE_FRACTION = 0.3
MAX_PATCHES = 30_000
# Larger images are analysed on their centre: noise statistics need full resolution, not every pixel.
MAX_SIDE = 640
# How much more a texture reads at half scale than at full (module docstring).
TEXTURE_GROWTH = 1.5
# JPEG files below this quality get the single-scale estimate (module docstring).
WHITE_NOISE_MIN_QUALITY = 75
# Lossless colour images: the noise may read at most this much above the opponent chroma planes' noise
# (module docstring); images whose chroma spreads less than MIN_CHROMA_SPREAD (8-bit) are grey.
CHROMA_SLACK = 1.5
MIN_CHROMA_SPREAD = 2.0
# The cap applies only where texture dominates the reading: at half scale white noise alone reads half,
# texture that does not shrink as much or more; from the midpoint.
TEXTURE_DOMINATED = 0.75
# Two opponent chroma planes, orthonormal: independent noise of σ per channel reads σ in each.
_OPPONENT_CHROMA = torch.tensor(
    [[1 / math.sqrt(2), -1 / math.sqrt(2), 0.0], [1 / math.sqrt(6), 1 / math.sqrt(6), -2 / math.sqrt(6)]],
    dtype=torch.float64,
)


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


def estimate_noise_sigma(
    rgb: np.ndarray | torch.Tensor, *, jpeg_quality: int | None = None, full_chroma: bool = False
) -> float:
    """Standard deviation of the noise in ``rgb`` (float32 H×W×3 in [0, 1], sRGB; an array or a tensor
    on any device, where the work then runs), in 8-bit units: the part of the patch estimate that
    halves under a 2×2 average, as white noise does, where texture grows (module docstring).

    ``full_chroma``: the pixels come from a lossless file, so the chroma planes may cap the estimate
    (module docstring). Signal-dependent (Poisson-like) noise is reported as its root-mean-square
    level. Images smaller than 16 px a side give 0.0; below 32 px, and for a JPEG whose
    ``jpeg_quality`` is below ``WHITE_NOISE_MIN_QUALITY``, the single-scale estimate is returned.
    Deterministic (patch sampling uses a fixed seed).
    """
    image = as_tensor(rgb)
    if min(image.shape[:2]) < 16:
        return 0.0
    values = centre_crop_t(image, MAX_SIDE).double() * 255.0
    if min(values.shape[:2]) < 32 or (jpeg_quality is not None and jpeg_quality < WHITE_NOISE_MIN_QUALITY):
        return _patch_noise_sigma(values)
    fine, coarse = _two_scales(values)
    sigma = _white_noise_sigma(fine, coarse)
    if full_chroma and jpeg_quality is None and coarse >= TEXTURE_DOMINATED * fine:
        chroma = values @ _OPPONENT_CHROMA.to(values.device).T
        if float(chroma.std()) >= MIN_CHROMA_SPREAD:
            sigma = min(sigma, CHROMA_SLACK * _white_noise_sigma(*_two_scales(chroma)))
    return sigma


def _two_scales(values: torch.Tensor) -> tuple[float, float]:
    """The patch estimate of H×W×C ``values`` at full scale and on its 2×2 box average."""
    height, width = (side // 2 for side in values.shape[:2])
    halved = values[: 2 * height, : 2 * width].reshape(height, 2, width, 2, values.shape[2]).mean(dim=(1, 3))
    return _patch_noise_sigma(values), _patch_noise_sigma(halved)


def _white_noise_sigma(fine: float, coarse: float) -> float:
    """The part of the two readings that halves under a 2×2 average, as white noise does (docstring)."""
    growth = TEXTURE_GROWTH**2
    return min(fine, math.sqrt(max(0.0, growth * fine * fine - coarse * coarse) / (growth - 0.25)))


def _patch_noise_sigma(values: torch.Tensor) -> float:
    """The weak-texture patch PCA estimate (Chen et al.) for an H×W×3 float64 image in 0..255 units."""
    rng = np.random.default_rng(0)
    rows = (values.shape[0] - PATCH) // 2 + 1
    columns = (values.shape[1] - PATCH) // 2 + 1
    count = rows * columns
    keep = min(count, max(PATCH * PATCH * 4, int(count * WEAK_TEXTURE_FRACTION)))
    covariances = []
    for c in range(values.shape[2]):
        # The sample depends only on the image's size: drawn on the host, as the seed has always drawn it.
        sample = rng.choice(keep, MAX_PATCHES, replace=False) if keep > MAX_PATCHES else None
        patches = _weak_texture_patches(values[:, :, c], keep, sample)
        centred = patches - patches.mean(dim=0, keepdim=True)
        covariances.append(centred.T @ centred / max(1, centred.shape[0] - 1))
    eigenvalues = torch.flip(torch.linalg.eigvalsh(torch.stack(covariances)), [1]).clamp(min=0.0)
    variances = _tail_mean_variance(eigenvalues)
    return float(torch.sqrt(variances.mean()).item())
