"""NIQE (Mittal, Soundararajan and Bovik, "Making a 'Completely Blind' Image Quality Analyzer", 2013).

A port of BasicSR's ``basicsr/metrics/niqe.py`` (Apache-2.0), which reproduces the authors' MATLAB
release (MATLAB R2021a gives 5.7296 on BasicSR's baboon.png, and so does that port). The pristine
model (``data/niqe_pris_params.npz``: the MVG mean and covariance fitted by the authors on pristine
natural images, and the 7×7 Gaussian window) is the data file of the ``basicsr==1.4.2`` source
distribution on PyPI, taken verbatim (sha256 below); nothing is downloaded at run time. The only
change: MATLAB's ``imresize`` (bicubic, antialiased) for the half-scale pass is reimplemented here in
numpy instead of importing BasicSR, whose import fails on current torchvision. Lower is better.
"""

from __future__ import annotations

import hashlib
import math
from functools import cache
from pathlib import Path

import numpy as np
from scipy.ndimage import convolve
from scipy.special import gamma

PRISTINE_PARAMS = Path(__file__).parent / "data" / "niqe_pris_params.npz"
PRISTINE_SHA256 = "2a7c182a68c9e7f1b2e2e5ec723279d6f65d912b6fcaf37eb2bf03d7367c4296"


@cache
def _pristine() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    blob = PRISTINE_PARAMS.read_bytes()
    if hashlib.sha256(blob).hexdigest() != PRISTINE_SHA256:
        raise ValueError(f"{PRISTINE_PARAMS} does not match the sha256 of basicsr 1.4.2's file")
    params = np.load(PRISTINE_PARAMS)
    return params["mu_pris_param"], params["cov_pris_param"], params["gaussian_window"]


_GAM = np.arange(0.2, 10.001, 0.001)
_R_GAM = np.square(gamma(2 / _GAM)) / (gamma(1 / _GAM) * gamma(3 / _GAM))


def _aggd(block: np.ndarray) -> tuple[float, float, float]:
    block = block.flatten()
    left_std = np.sqrt(np.mean(block[block < 0] ** 2))
    right_std = np.sqrt(np.mean(block[block > 0] ** 2))
    gammahat = left_std / right_std
    rhat = (np.mean(np.abs(block))) ** 2 / np.mean(block**2)
    rhatnorm = (rhat * (gammahat**3 + 1) * (gammahat + 1)) / ((gammahat**2 + 1) ** 2)
    alpha = _GAM[np.argmin((_R_GAM - rhatnorm) ** 2)]
    factor = np.sqrt(gamma(1 / alpha) / gamma(3 / alpha))
    return alpha, left_std * factor, right_std * factor


def _features(block: np.ndarray) -> list[float]:
    alpha, beta_l, beta_r = _aggd(block)
    feat = [alpha, (beta_l + beta_r) / 2]
    for shift in ((0, 1), (1, 0), (1, 1), (1, -1)):
        alpha, beta_l, beta_r = _aggd(block * np.roll(block, shift, axis=(0, 1)))
        mean = (beta_r - beta_l) * (gamma(2 / alpha) / gamma(1 / alpha))
        feat.extend([alpha, mean, beta_l, beta_r])
    return feat


def _cubic(x: np.ndarray) -> np.ndarray:
    ax = np.abs(x)
    return (1.5 * ax**3 - 2.5 * ax**2 + 1) * (ax <= 1) + (-0.5 * ax**3 + 2.5 * ax**2 - 4 * ax + 2) * (
        (ax > 1) & (ax <= 2)
    )


def _imresize_half_axis(img: np.ndarray, axis: int) -> np.ndarray:
    """MATLAB ``imresize(img, 0.5)`` along one axis: bicubic with antialiasing, symmetric padding."""
    length = img.shape[axis]
    out_length = math.ceil(length * 0.5)
    scale = 0.5
    kernel_width = 4 / scale
    x = np.arange(1, out_length + 1)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - kernel_width / 2)
    taps = int(math.ceil(kernel_width) + 2)
    indices = left[:, None] + np.arange(taps)[None, :]
    weights = scale * _cubic(scale * (u[:, None] - indices))
    weights = weights / weights.sum(axis=1, keepdims=True)
    indices = indices - 1  # to 0-based
    mirrored = np.concatenate([np.arange(length), np.arange(length - 1, -1, -1)])
    indices = mirrored[np.mod(indices.astype(int), 2 * length)]
    moved = np.moveaxis(img, axis, 0)
    result = np.einsum("ot,ot...->o...", weights, moved[indices])
    return np.moveaxis(result, 0, axis)


def _y_channel(rgb_uint8: np.ndarray) -> np.ndarray:
    """MATLAB ``rgb2ycbcr`` Y (16..235), as BasicSR's ``to_y_channel``, rounded as BasicSR does."""
    rgb = rgb_uint8.astype(np.float64)
    y = rgb @ np.array([65.481, 128.553, 24.966]) / 255.0 + 16.0
    return y.round()


def niqe(rgb_uint8: np.ndarray, block: int = 96) -> float:
    """NIQE of an H×W×3 uint8 RGB image (at least 192 px a side), on its Y channel; lower is better."""
    mu_pris, cov_pris, window = _pristine()
    img = _y_channel(rgb_uint8)
    h, w = img.shape
    nh, nw = h // block, w // block
    if nh < 1 or nw < 1:
        raise ValueError(f"NIQE needs at least {block}×{block} pixels, got {w}×{h}")
    img = img[: nh * block, : nw * block]
    distparam = []
    for scale in (1, 2):
        mu = convolve(img, window, mode="nearest")
        sigma = np.sqrt(np.abs(convolve(np.square(img), window, mode="nearest") - np.square(mu)))
        normalised = (img - mu) / (sigma + 1)
        size = block // scale
        feats = [
            _features(normalised[ih * size : (ih + 1) * size, iw * size : (iw + 1) * size])
            for iw in range(nw)
            for ih in range(nh)
        ]
        distparam.append(np.array(feats))
        if scale == 1:
            img = _imresize_half_axis(_imresize_half_axis(img / 255.0, 0), 1) * 255.0
    features = np.concatenate(distparam, axis=1)
    mu_dist = np.nanmean(features, axis=0)
    cov_dist = np.cov(features[~np.isnan(features).any(axis=1)], rowvar=False)
    inverse = np.linalg.pinv((cov_pris + cov_dist) / 2)
    diff = np.ravel(mu_pris) - mu_dist
    return float(np.sqrt(diff @ inverse @ diff))
