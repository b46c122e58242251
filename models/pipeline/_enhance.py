"""The enhance pipeline for one decoded image: size rule, network pass, variations, alpha."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from models.sr import SRModel, upscale


@dataclass(frozen=True)
class Variation:
    """One output of a request: ``strength`` blends the network's output over a plain bicubic upscale
    (1.0 = the network alone, 0.0 = no restoration at all)."""

    name: str
    strength: float


# The i-th output of a request with num_output_images = n is VARIATIONS[i]: a ladder of restoration
# strength, so outputs are always distinct and the same request always gives the same outputs.
VARIATIONS: tuple[Variation, ...] = (
    Variation("restored", 1.0),
    Variation("natural", 0.75),
    Variation("gentle", 0.5),
    Variation("subtle", 0.3),
)


@dataclass(frozen=True)
class EnhanceOptions:
    """Per-request knobs. ``network_max_side`` caps the long side of what the network sees (its
    output is then resized to the target); tile sizes are in network input pixels."""

    num_outputs: int = 1
    target_long_side: int = 2048
    max_side: int = 4096
    network_max_side: int = 1024
    tile: int = 512
    overlap: int = 24
    batch_size: int = 4

    def __post_init__(self) -> None:
        if not 1 <= self.num_outputs <= len(VARIATIONS):
            raise ValueError(f"num_outputs must be in 1..{len(VARIATIONS)}, got {self.num_outputs}")
        if self.network_max_side < 16 or self.tile < 16:
            raise ValueError("network_max_side and tile must be at least 16")


@dataclass(frozen=True)
class EnhancedImage:
    """One output: ``rgb`` float32 H×W×3 in [0, 1] (sRGB), ``alpha`` float32 H×W in [0, 1] or None."""

    rgb: np.ndarray
    alpha: np.ndarray | None
    variation: Variation


@dataclass(frozen=True)
class EnhanceResult:
    images: list[EnhancedImage]
    report: dict[str, Any]


def plan_output_size(width: int, height: int, *, target_long_side: int = 2048, max_side: int = 4096) -> tuple[int, int]:
    """Output (width, height): long side ``target_long_side`` when the input is smaller, else the
    input's own size (inputs are at most ``max_side`` already); aspect ratio kept."""
    if width < 1 or height < 1:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    long_side = max(width, height)
    out_long = min(max(long_side, target_long_side), max_side)
    if out_long == long_side:
        return width, height
    ratio = out_long / long_side
    return max(1, round(width * ratio)), max(1, round(height * ratio))


def _fit_long_side(width: int, height: int, long_side: int) -> tuple[int, int]:
    ratio = long_side / max(width, height)
    return max(1, round(width * ratio)), max(1, round(height * ratio))


def _resize(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Bicubic resize of a (N, C, H, W) float32 tensor, antialiased when shrinking."""
    if x.shape[-2:] == (height, width):
        return x
    shrinking = height < x.shape[-2] or width < x.shape[-1]
    return F.interpolate(x, size=(height, width), mode="bicubic", align_corners=False, antialias=shrinking)


def enhance_image(
    rgb: np.ndarray, alpha: np.ndarray | None, model: SRModel, options: EnhanceOptions
) -> EnhanceResult:
    """Enhance one image into ``options.num_outputs`` variations.

    ``rgb``: float32 H×W×3 in [0, 1], sRGB, RGB order. ``alpha``: float32 H×W in [0, 1] or None.
    The network runs once; variations are blends of its output with a bicubic upscale. Colour goes
    through the network; alpha is resized on its own (bicubic) and never dropped.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.float32:
        raise ValueError(f"expected float32 H×W×3, got {rgb.dtype} {rgb.shape}")
    if alpha is not None and alpha.shape != rgb.shape[:2]:
        raise ValueError(f"alpha shape {alpha.shape} does not match image {rgb.shape[:2]}")
    timings: dict[str, float] = {}
    started = time.perf_counter()
    height, width = rgb.shape[:2]
    out_w, out_h = plan_output_size(
        width, height, target_long_side=options.target_long_side, max_side=options.max_side
    )
    device = model.device
    with torch.inference_mode():
        source = torch.from_numpy(np.ascontiguousarray(rgb)).to(device).permute(2, 0, 1)[None]
        net_w, net_h = (
            (width, height)
            if max(width, height) <= options.network_max_side
            else _fit_long_side(width, height, options.network_max_side)
        )
        network_input = _resize(source, net_h, net_w).clamp_(0.0, 1.0)
        timings["prepare_s"] = time.perf_counter() - started

        restored, upscale_report = upscale(
            model, network_input, tile=options.tile, overlap=options.overlap, batch_size=options.batch_size
        )
        timings["network_s"] = upscale_report.seconds

        blend_started = time.perf_counter()
        restored = _resize(restored, out_h, out_w)
        base = _resize(source, out_h, out_w)
        alpha_out = None
        if alpha is not None:
            alpha_t = torch.from_numpy(np.ascontiguousarray(alpha)).to(device)[None, None]
            alpha_out = _resize(alpha_t, out_h, out_w).clamp_(0.0, 1.0)[0, 0].cpu().numpy()
        images = []
        for variation in VARIATIONS[: options.num_outputs]:
            blended = torch.lerp(base, restored, variation.strength).clamp_(0.0, 1.0)
            images.append(
                EnhancedImage(
                    rgb=blended[0].permute(1, 2, 0).contiguous().cpu().numpy(),
                    alpha=alpha_out,
                    variation=variation,
                )
            )
        timings["blend_s"] = time.perf_counter() - blend_started

    report: dict[str, Any] = {
        "input": [width, height],
        "network_input": [net_w, net_h],
        "output": [out_w, out_h],
        "network": model.network.name,
        "device": device.type,
        "dtype": upscale_report.dtype,
        "tile": upscale_report.tile,
        "overlap": upscale_report.overlap,
        "tiles": upscale_report.tiles,
        "batches": upscale_report.batches,
        "oom_retries": upscale_report.oom_retries,
        "nan_fallbacks": upscale_report.nan_fallbacks,
        "variations": [{"name": v.variation.name, "strength": v.variation.strength} for v in images],
        "alpha": alpha is not None,
        "timings": {k: round(v, 4) for k, v in timings.items()},
    }
    return EnhanceResult(images=images, report=report)
