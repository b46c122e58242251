"""Small shared helpers of the estimators: luma, bounded working copies, patch sampling."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

# Rec. 601 luma weights: what JPEG uses for Y, and close enough to perceived brightness for analysis.
LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def check_rgb(rgb: np.ndarray) -> None:
    """Raise ``ValueError`` unless ``rgb`` is float32 H×W×3 (values expected in [0, 1], sRGB)."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.float32:
        raise ValueError(f"expected float32 H×W×3, got {rgb.dtype} {rgb.shape}")


def luma(rgb: np.ndarray) -> np.ndarray:
    """Rec. 601 luma of float32 H×W×3 sRGB ``rgb``: float32 H×W in the same range."""
    return np.asarray(rgb @ LUMA_WEIGHTS, dtype=np.float32)


def srgb_to_linear(values: np.ndarray) -> np.ndarray:
    """sRGB-encoded values in [0, 1] to linear light (IEC 61966-2-1), float32."""
    v = np.clip(values, 0.0, 1.0).astype(np.float32)
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb(values: np.ndarray) -> np.ndarray:
    """Linear light in [0, 1] to sRGB encoding, float32."""
    v = np.clip(values, 0.0, 1.0).astype(np.float32)
    return np.where(v <= 0.0031308, v * 12.92, 1.055 * v ** (1 / 2.4) - 0.055).astype(np.float32)


def shrink(rgb: np.ndarray, long_side: int) -> np.ndarray:
    """A copy of ``rgb`` (float32 H×W×3 in [0, 1]) whose long side is at most ``long_side`` (box-filtered
    area reduction, which keeps global statistics such as tone and colour); small images are returned as is."""
    height, width = rgb.shape[:2]
    if max(height, width) <= long_side:
        return rgb
    ratio = long_side / max(height, width)
    size = (max(1, round(width * ratio)), max(1, round(height * ratio)))
    channels = [
        np.asarray(Image.fromarray(np.ascontiguousarray(rgb[:, :, c])).resize(size, Image.Resampling.BOX))
        for c in range(3)
    ]
    return np.stack(channels, axis=2).astype(np.float32)


def centre_crop(values: np.ndarray, side: int) -> np.ndarray:
    """The central ``side``×``side`` region of an H×W(×C) array (or the whole array when smaller)."""
    height, width = values.shape[:2]
    y0 = max(0, (height - side) // 2)
    x0 = max(0, (width - side) // 2)
    return values[y0 : y0 + side, x0 : x0 + side]


# --- Tensor versions (PyTorch, on the service's device) ------------------------------------------
# The estimators run on a tensor working copy: uploaded once by ``analyse_image``, each filter below
# reproduces its scipy.ndimage / Pillow counterpart (mode "reflect" = half-sample symmetric edges).


def as_tensor(rgb: np.ndarray | torch.Tensor, device: torch.device | str | None = None) -> torch.Tensor:
    """``rgb`` (float32 H×W×3) as a float32 tensor on ``device`` (default: where it already is, CPU for arrays)."""
    if isinstance(rgb, torch.Tensor):
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != torch.float32:
            raise ValueError(f"expected float32 H×W×3, got {rgb.dtype} {tuple(rgb.shape)}")
        return rgb if device is None else rgb.to(device)
    check_rgb(rgb)
    return torch.from_numpy(np.ascontiguousarray(rgb)).to(device or "cpu")


def luma_t(rgb: torch.Tensor) -> torch.Tensor:
    """Rec. 601 luma of an H×W×3 tensor (same dtype), H×W."""
    # Element-wise (never a matrix product, which a device may run at reduced (TF32) precision).
    r, g, b = (float(w) for w in LUMA_WEIGHTS)
    x = rgb.float()
    return (x[..., 0] * r + x[..., 1] * g + x[..., 2] * b).to(rgb.dtype)


def srgb_to_linear_t(values: torch.Tensor) -> torch.Tensor:
    """:func:`srgb_to_linear` on a tensor (keeps its dtype)."""
    v = values.clamp(0.0, 1.0)
    return torch.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def _symmetric_index(size: int, pad: int, device: torch.device) -> torch.Tensor:
    """Indices of a length-``size`` axis padded by ``pad`` a side, half-sample symmetric (d c b a | a b c d)."""
    index = torch.arange(-pad, size + pad, device=device)
    period = 2 * size
    index = torch.remainder(index, period)
    return torch.where(index >= size, period - 1 - index, index)


def _pad_axis(values: torch.Tensor, pad: int, axis: int) -> torch.Tensor:
    if pad == 0:
        return values
    size = values.shape[axis]
    if pad <= size:
        # Mirrored edges joined on: the same values as the index below, 2x faster across columns.
        first, last = values.narrow(axis, 0, pad).flip(axis), values.narrow(axis, size - pad, pad).flip(axis)
        return torch.cat([first, values, last], axis)
    return values.index_select(axis, _symmetric_index(size, pad, values.device))


def correlate1d(values: torch.Tensor, weights: torch.Tensor | list[float], axis: int) -> torch.Tensor:
    """``scipy.ndimage.correlate1d`` (mode "reflect", centred) of a 2-D tensor along ``axis``."""
    taps = [float(w) for w in weights]
    pad = (len(taps) - 1) // 2
    padded = _pad_axis(values, pad, axis)
    size = values.shape[axis]
    # A weighted sum of shifted views: short kernels, and fast for float64 where conv2d is not.
    out = torch.zeros_like(values)
    for i, w in enumerate(taps):
        if w != 0.0:
            out += padded.narrow(axis, i, size) * w
    return out


def gaussian_kernel(sigma: float, truncate: float = 4.0) -> list[float]:
    """scipy's ``gaussian_filter1d`` weights: radius ``int(truncate·sigma + 0.5)``, normalised."""
    radius = int(truncate * float(sigma) + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    weights = np.exp(-0.5 * x**2 / sigma**2)
    return list(weights / weights.sum())


def gaussian_filter(values: torch.Tensor, sigma: float) -> torch.Tensor:
    """``scipy.ndimage.gaussian_filter`` of a 2-D tensor (truncate 4, mode "reflect")."""
    kernel = gaussian_kernel(sigma)
    return correlate1d(correlate1d(values, kernel, 0), kernel, 1)


def sobel(values: torch.Tensor, axis: int) -> torch.Tensor:
    """``scipy.ndimage.sobel`` of a 2-D tensor: derivative along ``axis``, smoothing along the other."""
    derivative = correlate1d(values, [-1.0, 0.0, 1.0], axis)
    return correlate1d(derivative, [1.0, 2.0, 1.0], 1 - axis)


def uniform_filter(values: torch.Tensor, size: int) -> torch.Tensor:
    """``scipy.ndimage.uniform_filter`` of a 2-D tensor with an odd ``size``."""
    kernel = [1.0 / size] * size
    return correlate1d(correlate1d(values, kernel, 0), kernel, 1)


def maximum_filter3(values: torch.Tensor) -> torch.Tensor:
    """``scipy.ndimage.maximum_filter(values, 3)`` of a 2-D or C×H×W tensor."""
    batch = values if values.ndim == 3 else values[None]
    height, width = batch.shape[-2:]
    padded = _pad_axis(_pad_axis(batch, 1, 1), 1, 2)
    # Separable: the maximum of three shifted views down, then across (20x faster than max_pool2d on a CPU).
    down = torch.maximum(padded.narrow(1, 0, height), padded.narrow(1, 1, height))
    down = torch.maximum(down, padded.narrow(1, 2, height), out=down)
    out = torch.maximum(down.narrow(2, 0, width), down.narrow(2, 1, width))
    out = torch.maximum(out, down.narrow(2, 2, width), out=out)
    return out if values.ndim == 3 else out[0]


def minimum_filter3(values: torch.Tensor) -> torch.Tensor:
    """``scipy.ndimage.minimum_filter(values, 3)`` of a 2-D or C×H×W tensor."""
    return -maximum_filter3(-values)


def laplace(values: torch.Tensor) -> torch.Tensor:
    """``scipy.ndimage.laplace`` of a 2-D tensor."""
    return correlate1d(values, [1.0, -2.0, 1.0], 0) + correlate1d(values, [1.0, -2.0, 1.0], 1)


def _box_weights(in_size: int, out_size: int) -> np.ndarray:
    """Pillow's BOX resampling coefficients (``precompute_coeffs``) as an out×in matrix."""
    scale = in_size / out_size
    support = 0.5 * scale
    matrix = np.zeros((out_size, in_size), dtype=np.float64)
    for xx in range(out_size):
        centre = (xx + 0.5) * scale
        xmin = max(0, int(centre - support + 0.5))
        xmax = min(in_size, int(centre + support + 0.5))
        x = np.arange(xmin, xmax)
        arg = (x - centre + 0.5) / scale
        w = ((arg > -0.5) & (arg <= 0.5)).astype(np.float64)
        if w.sum() != 0:
            matrix[xx, xmin:xmax] = w / w.sum()
    return matrix


def shrink_t(rgb: torch.Tensor, long_side: int) -> torch.Tensor:
    """:func:`shrink` on an H×W×3 float32 tensor (the same box-filtered area reduction as Pillow's)."""
    height, width = rgb.shape[:2]
    if max(height, width) <= long_side:
        return rgb
    if rgb.device.type == "cpu":
        # Pillow's own reduction, in C: one pass per axis, where the matrix products below cost a pass
        # per output row and column (a 12-MP photo: 0.18 s instead of 1.4 s on one core).
        return torch.from_numpy(shrink(rgb.numpy(), long_side))
    return _shrink_by_products(rgb, long_side)


def _shrink_by_products(rgb: torch.Tensor, long_side: int) -> torch.Tensor:
    """:func:`shrink_t` on any device: Pillow's box coefficients as two matrices, one product per axis."""
    height, width = rgb.shape[:2]
    ratio = long_side / max(height, width)
    out_w, out_h = max(1, round(width * ratio)), max(1, round(height * ratio))
    # In float64: exact like Pillow's double-precision coefficients, and never reduced to TF32 on a GPU.
    rows = torch.from_numpy(_box_weights(height, out_h)).to(rgb.device)
    cols = torch.from_numpy(_box_weights(width, out_w)).to(rgb.device)
    planes = rgb.permute(2, 0, 1).double()  # 3×H×W
    out = rows @ (planes @ cols.T)
    return out.permute(1, 2, 0).float().contiguous()


def centre_crop_t(values: torch.Tensor, side: int) -> torch.Tensor:
    """:func:`centre_crop` on a tensor."""
    height, width = values.shape[:2]
    y0 = max(0, (height - side) // 2)
    x0 = max(0, (width - side) // 2)
    return values[y0 : y0 + side, x0 : x0 + side]
