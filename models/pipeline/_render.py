"""The super-resolve stage: one network pass over the decoded image, one render per output."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch

from models.analysis import ImageAnalysis
from models.pipeline._explain import NetworkRun, RenderTimings
from models.pipeline._ops import (
    adjust_tone,
    back_project,
    detail_map,
    ellipse_mask,
    gaussian_blur,
    limit_overshoot,
    local_range,
    resize,
    sharpen,
    upscale_bounded,
)
from models.pipeline._policy import VARIATIONS, EnhancePlan, OutputParameters, Variation, output_size
from models.sr import CancelToken, MemoryBudget, SRModel, TileRunner, upscale

# Sharpening radius, in network-input pixels (scaled to the output): 0.375 → 1.5 output px at ×4.
_SHARPEN_SIGMA_PER_INPUT_PIXEL = 0.375
# The pre-network denoise filter's radius, in network-input pixels.
_DENOISE_SIGMA = 1.0
# The tone guard's back-projection: the residual at and above this scale (network-input pixels) is
# put back in full where the input has detail; where it has none, above the output's own
# ``fidelity_smoothing`` (noise and blocks stay out). What the blurred-ΔE score measures.
_TONE_SMOOTHING = 1.0
# The blur of the network's output that makes the base under it (``network_base``), in network-input
# pixels: tuning half, heavy, 0.5 / 1 / 1.5 / 2 px: +0.60 / +0.61 / +0.59 / +0.56 dB over x4plus.
_NETWORK_BASE_SIGMA = 1.0
# How far (in [0, 1] units: 5 of 255 levels) every output may leave its input neighbourhood's range, on
# top of the output's ``overshoot_share`` of that range (``limit_overshoot``).
_OVERSHOOT_MARGIN = 0.02


@dataclass(frozen=True)
class EnhanceOptions:
    """Per-request knobs from the operator's settings. ``network_max_side`` caps the long side of what
    the network sees (its output is then resized to the target); tile sizes are in network input
    pixels, padded to a multiple of ``tile_quantum`` (so tiles of many requests share shapes and
    batch together). ``detect_faces`` runs the face detector during analysis. Decoding caps inputs
    at ``max_input_side`` (long side) and refuses more than ``max_input_pixels``; encoding uses
    ``jpeg_quality`` and ``png_compress_level``."""

    num_outputs: int = 1
    target_long_side: int = 2048
    max_side: int = 4096
    network_max_side: int = 1024
    tile: int = 512
    overlap: int = 24
    batch_size: int = 4
    tile_quantum: int = 1
    detect_faces: bool = True
    max_input_side: int = 4096
    max_input_pixels: int = 100_000_000
    jpeg_quality: int = 95
    png_compress_level: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.num_outputs <= len(VARIATIONS):
            raise ValueError(f"num_outputs must be in 1..{len(VARIATIONS)}, got {self.num_outputs}")
        if self.network_max_side < 16 or self.tile < 16:
            raise ValueError("network_max_side and tile must be at least 16")


@dataclass(frozen=True)
class EnhancedImage:
    """One output, quantised on the device: ``rgb`` uint8 H×W×3 (sRGB, RGB order), ``alpha`` uint8
    H×W or None, the ``variation`` it is and the ``parameters`` it was rendered with."""

    rgb: np.ndarray
    alpha: np.ndarray | None
    variation: Variation
    parameters: OutputParameters


@dataclass(frozen=True)
class Rendered:
    """What the super-resolve stage made: the outputs, the sizes it worked at (``(width, height)``),
    the network pass, and its timings (seconds)."""

    images: list[EnhancedImage]
    network_input: tuple[int, int]
    output: tuple[int, int]
    run: NetworkRun
    timings: RenderTimings


def plan_output_size(width: int, height: int, *, target_long_side: int = 2048, max_side: int = 4096) -> tuple[int, int]:
    """Output (width, height) under DESIGN.md's rule: long side ``target_long_side`` when the input is
    smaller, else the input's own size; aspect ratio kept."""
    return output_size(width, height, "auto", target_long_side=target_long_side, max_side=max_side)


def _fit_long_side(width: int, height: int, long_side: int) -> tuple[int, int]:
    ratio = long_side / max(width, height)
    return max(1, round(width * ratio)), max(1, round(height * ratio))


def _network_size(width: int, height: int, scale: float, max_side: int) -> tuple[int, int]:
    """Network input size: the input divided by ``scale`` (its true resolution), long side capped."""
    long_side = min(max(16, math.floor(max(width, height) / scale)), max_side, max(width, height))
    if long_side == max(width, height):
        return width, height
    return _fit_long_side(width, height, long_side)


def _white_balance_gains(analysis: ImageAnalysis, params: OutputParameters) -> tuple[float, float, float]:
    """Linear RGB gains removing ``params.white_balance`` of the measured cast and adding ``warmth``,
    normalised to keep luminance."""
    r, _, b = analysis.colour.gains
    share = params.white_balance
    gains = [(1.0 / max(r, 1e-3)) ** share, 1.0, (1.0 / max(b, 1e-3)) ** share]
    gains[0] *= 2.0 ** (params.warmth / 2)
    gains[2] *= 2.0 ** (-params.warmth / 2)
    norm = 0.2126 * gains[0] + 0.7152 * gains[1] + 0.0722 * gains[2]
    return (gains[0] / norm, gains[1] / norm, gains[2] / norm)


def _select_model(models: SRModel | Mapping[str, SRModel], content: str) -> tuple[SRModel, bool]:
    """The model for ``content``, and whether it had to fall back to another one."""
    if isinstance(models, SRModel):
        return models, models.network.content != content
    if content in models:
        return models[content], False
    return next(iter(models.values())), True


def request_device_bytes(
    net_size: tuple[int, int], out_size: tuple[int, int], scale: int, num_outputs: int, alpha: bool
) -> int:
    """Peak device bytes one request holds outside the network itself (which the tile runner's
    workspace covers): the network-resolution canvas and its tile outputs, then the float32 render
    buffers at output size (base, the network's blurred copy and their blend, restored and its softened
    copy, removed, the output being rendered and the sharpening and back-projection temporaries) and
    the uint8 copies on their way to the host."""
    net_px = net_size[0] * net_size[1]
    out_px = out_size[0] * out_size[1]
    canvas = net_px * scale * scale * 4 * (3 + 1 + 3 * 1.3)  # colour and weight sums, tile outputs
    # Ten three-channel float buffers (a softened and a blurred network output among them), the
    # detail map and the overshoot bounds (seven more planes).
    render = out_px * 4 * (3 * 10 + 7) + out_px * (3 + alpha) * num_outputs + out_px * 4 * alpha
    return int(canvas + render)


def _keep_tone(
    out: torch.Tensor, reference: torch.Tensor, detail: torch.Tensor, smoothing: float, weight: float
) -> torch.Tensor:
    """``out`` back-projected onto ``reference`` with ``weight`` at coarse scales: what the network
    shifted in tone and colour is taken back. Where ``detail`` is 1 the residual above
    ``_TONE_SMOOTHING`` input pixels returns; where it is 0, only above ``smoothing`` (the output's
    fidelity smoothing, so the noise and blocks of a degraded input stay out of its flat parts)."""
    if weight <= 0:
        return out
    fine = back_project(out, reference, weight=weight, smoothing=_TONE_SMOOTHING)
    if smoothing <= _TONE_SMOOTHING:
        return fine
    return torch.lerp(back_project(out, reference, weight=weight, smoothing=smoothing), fine, detail)


def _to_host_uint8(image: torch.Tensor) -> np.ndarray:
    """``(1, C, H, W)`` float in [0, 1] on any device → H×W×C (or H×W for C = 1) uint8 on the host,
    rounded on the device so only a quarter of the bytes cross the bus."""
    quantised = image[0].mul(255.0).round_().clamp_(0, 255).to(torch.uint8).permute(1, 2, 0).contiguous()
    host = quantised.cpu().numpy()
    return host[:, :, 0] if host.shape[2] == 1 else host


def super_resolve(
    rgb: np.ndarray,
    alpha: np.ndarray | None,
    analysis: ImageAnalysis,
    decided: EnhancePlan,
    models: SRModel | Mapping[str, SRModel],
    options: EnhanceOptions,
    *,
    runner: TileRunner | None = None,
    memory: MemoryBudget | None = None,
    cancel: CancelToken | None = None,
) -> Rendered:
    """Render ``decided``'s outputs of one image: one network pass, one render per output.

    ``rgb``: float32 H×W×3 in [0, 1], sRGB, RGB order. ``alpha``: float32 H×W in [0, 1] or None.
    ``analysis``: the image's measurements (its faces and colour cast are used here); ``decided``: the
    policy's plan (``infer_parameters``). ``models``: one model, or a mapping from content ("photo",
    "illustration") to the model for it. ``runner`` runs the network's tiles (default: directly in
    this thread); ``memory`` is the device budget this request reserves its buffers from
    (:func:`request_device_bytes`) before it uploads anything; a set ``cancel`` stops the request at
    the next checkpoint with ``RequestCancelledError``.

    Every output is rendered from the one pass: the network's output (softened on degraded inputs)
    blended per pixel over the input's bicubic upscale without its ringing (``upscale_bounded``; over
    its own blurred output on degraded inputs), grain, back-projection, the tone guard, sharpening, the
    overshoot limit (``overshoot_share``), face protection, tone. Alpha is
    resized on its own (bicubic) and never dropped. Outputs are quantised to uint8 on the device.
    Deterministic. Raises ``ValueError`` for inputs of the wrong type or shape.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.float32:
        raise ValueError(f"expected float32 H×W×3, got {rgb.dtype} {rgb.shape}")
    if alpha is not None and alpha.shape != rgb.shape[:2]:
        raise ValueError(f"alpha shape {alpha.shape} does not match image {rgb.shape[:2]}")
    plan = decided.plan
    model, fell_back = _select_model(models, plan.content)
    mark = time.perf_counter()
    height, width = rgb.shape[:2]
    out_w, out_h = output_size(
        width, height, plan.size, target_long_side=options.target_long_side, max_side=options.max_side
    )
    net_w, net_h = _network_size(width, height, plan.network_scale, options.network_max_side)
    device = model.device
    reservation = (
        memory.reserve(
            request_device_bytes((net_w, net_h), (out_w, out_h), model.scale, options.num_outputs, alpha is not None),
            cancel,
        )
        if memory is not None
        else nullcontext()
    )
    if cancel is not None:
        cancel.raise_if_cancelled()
    with reservation, torch.inference_mode():
        wait_memory_s = time.perf_counter() - mark
        mark = time.perf_counter()
        source_t = torch.from_numpy(np.ascontiguousarray(rgb)).to(device).permute(2, 0, 1)[None]
        raw_input = resize(source_t, net_h, net_w).clamp_(0.0, 1.0)
        network_input = raw_input
        if plan.denoise > 0:
            network_input = torch.lerp(raw_input, gaussian_blur(raw_input, _DENOISE_SIGMA), plan.denoise)
        prepare_s = time.perf_counter() - mark

        restored_net, upscale_report = upscale(
            model,
            network_input.contiguous(),
            tile=options.tile,
            overlap=options.overlap,
            runner=runner,
            quantum=options.tile_quantum,
            batch_size=options.batch_size,
            cancel=cancel,
        )
        mark = time.perf_counter()
        restored = resize(restored_net, out_h, out_w)
        # The faithful path: the input's bicubic upscale without its ringing along strong edges.
        base = upscale_bounded(source_t, out_h, out_w).clamp_(0.0, 1.0)  # a fresh tensor: in place
        # What the network removed (noise, grain, artefacts and some fine texture), at output size; only
        # outputs with grain use it, so it is computed once, when the first of them needs it.
        removed: torch.Tensor | None = None
        face_mask = None
        if plan.protect_faces and analysis.faces:
            ratio = out_w / width
            boxes = [(f.x * ratio, f.y * ratio, f.size * ratio) for f in analysis.faces]
            face_mask = ellipse_mask(out_h, out_w, boxes, device)
        sharpen_sigma = max(0.8, _SHARPEN_SIGMA_PER_INPUT_PIXEL * out_w / net_w)
        alpha_out = None
        if alpha is not None:
            alpha_t = torch.from_numpy(np.ascontiguousarray(alpha)).to(device)[None, None]
            alpha_out = _to_host_uint8(resize(alpha_t, out_h, out_w).clamp_(0.0, 1.0))
        # Where the input has detail the network may restore (per pixel, smooth), and the range each
        # output pixel may take: computed once, shared by every output.
        detail = resize(detail_map(raw_input, restored_net, analysis.noise_sigma), out_h, out_w).clamp_(0.0, 1.0)
        bounds = local_range(source_t, out_h, out_w)
        # The network's output softened (``soften``), made once per distinct sigma among the outputs, and
        # blurred into the base under it (``network_base``), made once when the first output needs it.
        softened: dict[float, torch.Tensor] = {}
        network_base: torch.Tensor | None = None
        images = []
        for variation, params in decided.outputs:
            if cancel is not None:
                cancel.raise_if_cancelled()
            network_out = restored
            if params.soften > 0:
                if params.soften not in softened:
                    softened[params.soften] = resize(gaussian_blur(restored_net, params.soften), out_h, out_w)
                network_out = softened[params.soften]
            under = base
            if params.network_base > 0:
                if network_base is None:
                    sigma = _NETWORK_BASE_SIGMA * restored_net.shape[-1] / net_w
                    network_base = resize(gaussian_blur(restored_net, sigma), out_h, out_w)
                under = torch.lerp(base, network_base, params.network_base)
            flat = min(params.flat_strength, params.strength)
            out = torch.lerp(under, network_out, detail * (params.strength - flat) + flat)
            if params.grain > 0:
                if removed is None:
                    removed = resize(raw_input - resize(restored, net_h, net_w), out_h, out_w)
                out = out + params.grain * removed
            out = back_project(
                out.clamp_(0.0, 1.0), network_input, weight=params.fidelity, smoothing=params.fidelity_smoothing
            )
            out = _keep_tone(out, network_input, detail, params.fidelity_smoothing, params.tone_guard)
            out = sharpen(out, amount=params.sharpen, sigma=sharpen_sigma)
            out = limit_overshoot(out, bounds, margin=_OVERSHOOT_MARGIN, share=params.overshoot_share)
            if face_mask is not None:
                out = torch.lerp(out, base, face_mask)
            out = adjust_tone(
                out,
                exposure_ev=params.exposure_ev,
                gains=_white_balance_gains(analysis, params),
                contrast=params.contrast,
            ).clamp_(0.0, 1.0)
            images.append(
                EnhancedImage(
                    rgb=_to_host_uint8(out),
                    alpha=alpha_out,
                    variation=variation,
                    parameters=params,
                )
            )
        render_s = time.perf_counter() - mark

    run = NetworkRun(
        network=model.network.name,
        fallback=f"no {plan.content} network loaded" if fell_back else None,
        device=device.type,
        dtype=upscale_report.dtype,
        tile=upscale_report.tile,
        overlap=upscale_report.overlap,
        tiles=upscale_report.tiles,
        batches=upscale_report.batches,
        oom_retries=upscale_report.oom_retries,
        nan_fallbacks=upscale_report.nan_fallbacks,
    )
    timings = RenderTimings(
        wait_memory_s=wait_memory_s, prepare_s=prepare_s, network_s=upscale_report.seconds, render_s=render_s
    )
    return Rendered(images=images, network_input=(net_w, net_h), output=(out_w, out_h), run=run, timings=timings)
