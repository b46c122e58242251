"""Pure image operations of the pipeline on (1, 3, H, W) float32 RGB tensors in [0, 1] (sRGB-encoded
unless a name says linear), on any device. None of them keeps state between calls."""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

from models.sr import correlate, resize_bicubic

_LUMA = (0.299, 0.587, 0.114)


def resize(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Bicubic resize of a (N, C, H, W) float32 tensor, antialiased when shrinking."""
    if x.shape[-2:] == (height, width):
        return x
    shrinking = height < x.shape[-2] or width < x.shape[-1]
    return resize_bicubic(x, height, width, antialias=shrinking)


def upscale_bounded(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Bicubic upscale of a (N, C, h, w) tensor with every output pixel clamped into the range of the
    four input pixels around it: bicubic's negative lobes ring along strong edges (a light fringe on the
    dark side, a dark one on the light side); the clamp takes exactly that out and leaves smooth
    gradients and texture as bicubic makes them. Sizes that do not grow are plain :func:`resize`."""
    if height <= x.shape[-2] and width <= x.shape[-1]:
        return resize(x, height, width)
    low, high = _cell_range(x, height, width)
    # Into the range tensors themselves: no further output-sized buffer.
    return torch.maximum(torch.minimum(resize(x, height, width), high, out=high), low, out=low)


def _cell_range(x: torch.Tensor, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(low, high) at (``height``, ``width``): the minimum and maximum of the 2×2 input pixels whose
    centres surround each output pixel (align_corners=False geometry; edge pixels repeat)."""
    in_h, in_w = x.shape[-2:]
    padded = F.pad(x, (0, 1, 0, 1), mode="replicate")
    # Both ranges in one tensor: each gather below is then one pass.
    cells = torch.cat([F.max_pool2d(padded, 2, stride=1), F.max_pool2d(-padded, 2, stride=1)], dim=1)
    rows = _cell_index(height, in_h, x.device)
    columns = _cell_index(width, in_w, x.device)
    # Columns first, on the small image; then whole rows, which copy contiguous memory.
    cells = cells.index_select(3, columns).index_select(2, rows)
    channels = x.shape[1]
    return -cells[:, channels:], cells[:, :channels]


def _cell_index(size: int, in_size: int, device: torch.device) -> torch.Tensor:
    """For each of ``size`` output pixels, the input cell (pair of pixel centres ``i``, ``i + 1``) that
    holds its centre."""
    centres = (torch.arange(size, dtype=torch.float64) + 0.5) * (in_size / size) - 0.5
    return centres.floor_().clamp_(0, in_size - 1).long().to(device)


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur (reflect padding) of a (N, C, H, W) tensor; ``sigma`` in pixels."""
    if sigma <= 0:
        return x
    radius = max(1, math.ceil(3 * sigma))
    radius = min(radius, (min(x.shape[-2:]) - 1) or 1)
    taps = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    kernel = torch.exp(-(taps**2) / (2 * sigma * sigma))
    kernel = kernel / kernel.sum()
    # Reflect padding needs more pixels than the radius: a 1-pixel-thin image is edge-replicated instead.
    across, down = _pad_mode(x.shape[-1], radius), _pad_mode(x.shape[-2], radius)
    if radius > _FFT_RADIUS:
        # Wide kernels (sharpening a tiny input's huge upscale): by FFT, whose cost does not grow with them.
        x = _correlate_fft(F.pad(x, (radius, radius, 0, 0), mode=across), kernel, dim=-1)
        return _correlate_fft(F.pad(x, (0, 0, radius, radius), mode=down), kernel, dim=-2)
    if x.device.type == "cpu":
        # Shifted, weighted sums: the same products summed in the same order as the convolution (equal
        # results), ten or more times faster than PyTorch's CPU depthwise convolution.
        weights = kernel.tolist()
        x = correlate(F.pad(x, (radius, radius, 0, 0), mode=across), weights, dim=-1)
        return correlate(F.pad(x, (0, 0, radius, radius), mode=down), weights, dim=-2)
    channels = x.shape[1]
    horizontal = kernel.view(1, 1, 1, -1).repeat(channels, 1, 1, 1)
    vertical = kernel.view(1, 1, -1, 1).repeat(channels, 1, 1, 1)
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode=across), horizontal, groups=channels)
    return F.conv2d(F.pad(x, (0, 0, radius, radius), mode=down), vertical, groups=channels)


# Above this radius a blur goes by FFT: shifted sums cost a pass per tap (a 2305-tap kernel took seconds).
_FFT_RADIUS = 24


def _correlate_fft(padded: torch.Tensor, kernel: torch.Tensor, dim: int) -> torch.Tensor:
    """:func:`models.sr.correlate` by FFT: the circular convolution with the flipped kernel, whose last
    ``len - len(kernel) + 1`` values wrap nothing around. The same result to float rounding."""
    moved = padded.movedim(dim, -1)
    size, taps = moved.shape[-1], kernel.numel()
    spectrum = torch.fft.rfft(moved, n=size) * torch.fft.rfft(kernel.flip(0), n=size)
    return torch.fft.irfft(spectrum, n=size)[..., taps - 1 :].movedim(-1, dim).contiguous()


def _pad_mode(size: int, radius: int) -> str:
    return "reflect" if size > radius else "replicate"


def back_project(
    output: torch.Tensor, reference: torch.Tensor, *, weight: float, smoothing: float, iterations: int = 3
) -> torch.Tensor:
    """Iterative back-projection: pull ``output`` towards agreeing with ``reference`` when downscaled.

    Each step downscales ``output`` to ``reference``'s size, low-passes the residual with a Gaussian of
    ``smoothing`` reference pixels (0 keeps everything, noise included), upsamples it bilinearly and
    adds ``weight`` times it. ``reference`` must be smaller than ``output``; weight 0 returns ``output``.
    Bilinear, not bicubic: the residual is largest along strong edges, where bicubic's negative lobes
    would add a fringe beside each (tuning half, clean: halo 0.040 → 0.036 at the same NIQE, −0.04 dB).

    Every operation of a step is linear, so the steps are run at the reference's size: with ``D`` the
    downscale, ``U`` the upscale and ``G`` the blur, step k adds ``w·U(G(e_k))`` where the residual
    ``e_{k+1} = e_k − w·D(U(G(e_k)))``, and ``D∘U`` is a small matrix per axis (:func:`_round_trip`).
    The output is touched twice (one downscale, one upscale of the summed steps) instead of twice per
    step; the result is the same up to float rounding.
    """
    if weight <= 0 or reference.shape[-1] >= output.shape[-1]:
        return output
    height, width = output.shape[-2:]
    ref_h, ref_w = reference.shape[-2:]
    residual = reference - resize(output, ref_h, ref_w)
    steps = torch.zeros_like(residual)
    round_trip_y = _round_trip(ref_h, height, residual.device)
    round_trip_x = _round_trip(ref_w, width, residual.device)
    for iteration in range(iterations):
        smoothed = gaussian_blur(residual, smoothing)
        steps.add_(smoothed)
        if iteration + 1 < iterations:
            residual = residual - weight * (round_trip_y @ smoothed @ round_trip_x.T)
    # In place on the fresh upscale (the caller's tensor is never touched): on a CPU, another
    # output-sized tensor costs more in page faults than the arithmetic itself.
    return _upsample_bilinear(steps, height, width).mul_(weight).add_(output).clamp_(0.0, 1.0)


def _upsample_bilinear(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    return F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False)


def _round_trip(size: int, larger: int, device: torch.device) -> torch.Tensor:
    """The (size, size) matrix of one axis's bilinear upscale to ``larger`` then antialiased bicubic
    downscale back (:func:`resize`) along that axis, on ``device``."""
    return _round_trip_cpu(size, larger).to(device)


@functools.lru_cache(maxsize=16)
def _round_trip_cpu(size: int, larger: int) -> torch.Tensor:
    # Resizing only the width of an identity image gives, row by row, the response to each pixel.
    eye = torch.eye(size, dtype=torch.float32)[None, None]
    up = _upsample_bilinear(eye, size, larger)
    down = F.interpolate(up, size=(size, size), mode="bicubic", align_corners=False, antialias=True)
    return down[0, 0].T.contiguous()


def luma(x: torch.Tensor) -> torch.Tensor:
    """Rec. 601 luma (N, 1, H, W) of an RGB (N, 3, H, W) tensor."""
    # Weighted adds of the three planes: no three-channel temporary (3x faster on a CPU than x·w summed).
    y = x[:, 0:1] * _LUMA[0]
    y.add_(x[:, 1:2], alpha=_LUMA[1])
    return y.add_(x[:, 2:3], alpha=_LUMA[2])


def sharpen(x: torch.Tensor, *, amount: float, sigma: float) -> torch.Tensor:
    """Unsharp mask on luma only (no colour fringes): ``x + amount · (Y − blur(Y))`` in every channel."""
    if amount <= 0:
        return x
    y = luma(x)
    # In place on the fresh luma plane (the blur is computed from it first).
    return (x + y.sub_(gaussian_blur(y, sigma)).mul_(amount)).clamp_(0.0, 1.0)


def _smoothstep(x: torch.Tensor, low: float, high: float) -> torch.Tensor:
    t = ((x - low) / (high - low)).clamp_(0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def detail_map(
    source: torch.Tensor,
    restored: torch.Tensor,
    noise_sigma: float,
    *,
    texture: tuple[float, float] = (0.005, 0.04),
    disagreement: tuple[float, float] = (0.01, 0.03),
    window: float = 1.5,
    smoothing: float = 2.0,
) -> torch.Tensor:
    """Where the network has something to restore: (1, 1, h, w) in [0, 1] at ``source``'s size.

    ``source`` is the network's input (1, 3, h, w), ``restored`` its output (any larger size) and
    ``noise_sigma`` the input's measured noise (8-bit units). Two measures on luma, each a local RMS
    over a Gaussian ``window`` (input pixels):

    * texture: the input's own fine detail (luma minus its σ = 1 blur) above what the noise alone
      explains; ``texture`` = (none, full) in [0, 1] units. Skies, gradients, smooth skin and blurred
      backgrounds read 0.
    * disagreement: the network's output, downscaled back, against the input, beyond the noise; where
      it disagrees (``disagreement`` = (starts, full)) the network invented or moved structure (moiré,
      banding, a misread pattern), so its detail is not trusted there.

    The map is texture × (1 − disagreement), blurred by ``smoothing`` input pixels so that no seam
    appears where the output's blend changes.
    """
    sigma = noise_sigma / 255.0
    y = luma(source)
    fine = y - gaussian_blur(y, 1.0)
    energy = gaussian_blur(fine.mul_(fine), window).sqrt_()
    trust = _smoothstep(energy.sub_(sigma), *texture)
    down = luma(resize(restored, source.shape[-2], source.shape[-1])).sub_(y)
    off = gaussian_blur(down.mul_(down), window).sqrt_()
    trust.mul_(1.0 - _smoothstep(off.sub_(sigma), *disagreement))
    return gaussian_blur(trust, smoothing).clamp_(0.0, 1.0)


def local_range(
    reference: torch.Tensor, height: int, width: int, *, radius: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """The range of the input around each output pixel, (low, high) at (``height``, ``width``): the
    minimum and maximum of ``reference`` (the decoded input at its own resolution, (1, C, h, w)) over a
    (2·``radius`` + 1)² window around each input pixel, interpolated to the output's size.
    :func:`limit_overshoot` widens it (so strong edges may steepen, not ring) and clamps into it."""
    window = 2 * radius + 1
    high = F.max_pool2d(reference, window, stride=1, padding=radius)
    low = -F.max_pool2d(-reference, window, stride=1, padding=radius)
    high = F.interpolate(high, size=(height, width), mode="bilinear", align_corners=False)
    low = F.interpolate(low, size=(height, width), mode="bilinear", align_corners=False)
    return low, high


def limit_overshoot(
    x: torch.Tensor, bounds: tuple[torch.Tensor, torch.Tensor], *, margin: float, share: float
) -> torch.Tensor:
    """``x`` with every pixel clamped into ``bounds`` (:func:`local_range`) widened by ``margin`` plus
    ``share`` of their width: no halo or ringing beyond what the input's neighbourhood holds. In place;
    one temporary of ``x``'s size."""
    low, high = bounds
    # The upper bound high + slack, then the lower one from it (low - slack = low + high - upper).
    limit = (high - low).mul_(share).add_(margin).add_(high)
    x.clamp_(max=limit)
    return x.clamp_(min=limit.neg_().add_(high).add_(low))


def srgb_to_linear(x: torch.Tensor) -> torch.Tensor:
    x = x.clamp(0.0, 1.0)
    return torch.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(x: torch.Tensor) -> torch.Tensor:
    x = x.clamp(0.0, 1.0)
    return torch.where(x <= 0.0031308, x * 12.92, 1.055 * x.clamp_min(1e-8) ** (1 / 2.4) - 0.055)


def adjust_tone(
    x: torch.Tensor, *, exposure_ev: float, gains: tuple[float, float, float], contrast: float
) -> torch.Tensor:
    """Exposure and white balance in linear light, then contrast on the encoded values.

    Exposure multiplies linear light by 2**ev with a roll-off that keeps white at white
    (``l·g / (1 + l·(g − 1))``). ``gains`` multiply linear R, G, B. Contrast bends the tone curve
    around mid-grey, keeping black and white fixed: ``y − c·sin(2πy)/(2π)`` (monotone for |c| < 1;
    slope 1 + c at mid-grey). Neutral settings return ``x`` unchanged.
    """
    if exposure_ev == 0 and gains == (1.0, 1.0, 1.0) and contrast == 0:
        return x
    linear = srgb_to_linear(x)
    if exposure_ev != 0:
        gain = 2.0**exposure_ev
        linear = linear * gain / (1.0 + linear * (gain - 1.0))
    if gains != (1.0, 1.0, 1.0):
        linear = linear * torch.tensor(gains, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    y = linear_to_srgb(linear)
    if contrast != 0:
        y = y - contrast * torch.sin(2 * math.pi * y) / (2 * math.pi)
    return y.clamp_(0.0, 1.0)


def ellipse_mask(
    height: int, width: int, boxes: list[tuple[float, float, float]], device: torch.device
) -> torch.Tensor:
    """(1, 1, H, W) soft mask, 1 inside the ellipses inscribed in square ``boxes`` (x, y, size in pixels
    of this image, slightly enlarged to cover hair and chin) and fading to 0 over a quarter of the size."""
    mask = torch.zeros((1, 1, height, width), dtype=torch.float32, device=device)
    ys = torch.arange(height, dtype=torch.float32, device=device).view(-1, 1)
    xs = torch.arange(width, dtype=torch.float32, device=device).view(1, -1)
    for x0, y0, size in boxes:
        cx, cy = x0 + size / 2, y0 + size / 2
        rx, ry = 0.65 * size, 0.8 * size
        distance = torch.sqrt(((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2)
        mask = torch.maximum(mask, (1.0 - (distance - 1.0) / 0.35).clamp(0.0, 1.0)[None, None])
    return mask
