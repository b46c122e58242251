"""Effective resolution: by how much the image was upscaled before it reached us.

Method: resampling detection by the periodicity of the interpolation residue (Kirchner, "Fast and
reliable resampling detection by spectral analysis of fixed linear predictor residue", 2008, in its
simplest form). Interpolation makes every output pixel a fixed mix of its neighbours; only the
pixels that fall on original samples escape it, so the magnitude of the second difference varies with
the period of the upscale. The column (and row) profile of that magnitude shows a spectral peak at
1/scale. Factors sharing a peak (1.5 and 3) are told apart by the edge blur, which grows with the
factor. Without a peak (for example after a JPEG re-encode, whose 8×8 grid also makes peaks, or a
non-interpolating upscaler) a strong edge blur alone stands for a lower effective resolution.
"""

from __future__ import annotations

import numpy as np
import torch

from models.analysis._common import as_tensor, centre_crop_t, luma_t

# Upscale factors considered, and the edge blur (sigma, px) a bicubic upscale of a sharp photo shows
# at each (measured on scikit-image's photos: about 0.4 per unit of scale plus the photo's own).
CANDIDATE_SCALES = (1.5, 2.0, 2.5, 3.0, 4.0)
PEAK_RATIO = 6.0
# Edge blur per unit of effective scale, and the blur below which an image counts as full resolution.
BLUR_PER_SCALE = 0.42
BLUR_FULL_RESOLUTION = 1.25
MAX_SIDE = 768


def _folded(frequency: float) -> float:
    f = frequency % 1.0
    return min(f, 1.0 - f)


def _profile_spectrum(y: torch.Tensor) -> torch.Tensor:
    residue = (y[:, 2:] - 2 * y[:, 1:-1] + y[:, :-2]).abs()
    profile = residue.mean(dim=0)
    profile = profile - profile.mean()
    window = torch.hann_window(profile.numel(), periodic=False, dtype=profile.dtype, device=profile.device)
    return torch.fft.rfft(profile * window).abs()


def _peak_strength(spectrum: np.ndarray, n: int, frequency: float) -> float:
    """Spectral magnitude at ``frequency`` (cycles/pixel, 0..0.5) relative to the median background."""
    index = round(frequency * n)
    lo, hi = max(1, index - 1), min(spectrum.size, index + 2)
    if lo >= hi:
        return 0.0
    background = np.median(spectrum[1:]) + 1e-12
    return float(spectrum[lo:hi].max() / background)


def estimate_upscale_factor(
    rgb: np.ndarray | torch.Tensor, *, blur_sigma: float, jpeg_compressed: bool
) -> tuple[float, str]:
    """Effective upscale factor of ``rgb`` (float32 H×W×3 in [0, 1], sRGB) and how it was found
    ("periodicity", "blur" or "none"). 1.0 means the image carries detail at its full resolution.

    ``blur_sigma`` is :func:`estimate_blur_sigma`'s result; ``jpeg_compressed`` says whether JPEG
    traces were found (their block grid makes periodic peaks of its own, so periodicity is not used).
    """
    image = as_tensor(rgb)
    by_blur = max(1.0, blur_sigma / BLUR_PER_SCALE) if blur_sigma > BLUR_FULL_RESOLUTION else 1.0
    y = luma_t(centre_crop_t(image, MAX_SIDE)).double() * 255.0
    if min(y.shape) < 48 or jpeg_compressed:
        return (round(by_blur * 2) / 2, "blur") if by_blur > 1.0 else (1.0, "none")
    # The residue profiles' spectra are computed where the image is; their few hundred values come back.
    spectra = (_profile_spectrum(y), _profile_spectrum(y.T))
    columns = spectra[0].numel()
    both = torch.cat(spectra).cpu().numpy()
    found = []
    for spectrum, n in ((both[:columns], y.shape[1] - 2), (both[columns:], y.shape[0] - 2)):
        strengths = {s: _peak_strength(spectrum, n, _folded(1.0 / s)) for s in CANDIDATE_SCALES}
        found.append(strengths)
    scores = {s: min(found[0][s], found[1][s]) for s in CANDIDATE_SCALES}
    periodic = [s for s, score in scores.items() if score >= PEAK_RATIO]
    if periodic:
        # Factors with the same folded frequency are ambiguous: the one closest to the blur wins.
        expected = max(1.0, blur_sigma / BLUR_PER_SCALE)
        best = min(periodic, key=lambda s: (abs(np.log(s / expected)), -scores[s]))
        return float(best), "periodicity"
    if by_blur > 1.0:
        return round(by_blur * 2) / 2, "blur"
    return 1.0, "none"
