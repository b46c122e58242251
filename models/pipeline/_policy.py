"""The policy: from what the analysis measured (and what the prompt asked) to the parameters of each
output. Written as data — a restoration table interpolated over a degradation score, tone limits,
size rules and the variations — and one function that reads them (:func:`infer_parameters`).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, fields, replace
from typing import Any, Literal, TypeVar

from models.analysis import ImageAnalysis
from models.prompt import Change, Steering

SizeMode = Literal["auto", "2x", "4x", "4k", "keep"]
Content = Literal["photo", "illustration"]


@dataclass(frozen=True)
class PlanParameters:
    """Parameters shared by all outputs of a request (one network pass).

    ``content`` picks the network ("photo" → x4plus, "illustration" → x4plus-anime); ``size`` the
    output size rule; ``network_scale`` divides the input before the network (an input upscaled by s
    before it reached us is seen at its true resolution); ``denoise`` (0..1) is a pre-network
    Gaussian pre-filter; ``protect_faces`` fades the restoration out over detected faces.
    """

    content: Content = "photo"
    size: SizeMode = "auto"
    network_scale: float = 1.0
    denoise: float = 0.0
    protect_faces: bool = False


@dataclass(frozen=True)
class OutputParameters:
    """Parameters of one output.

    ``strength``: blend of the network's output over a bicubic upscale (1 = network alone) where the
    input has detail to restore; ``flat_strength``: the blend where it has none (skies, gradients,
    smooth skin, blurred backgrounds), never above ``strength``; in between, the detail map decides per
    pixel (``models.pipeline._ops.detail_map``). ``network_base``: the share of that base which is the
    network's own output blurred by one input pixel instead of the bicubic upscale of the input (on a
    noisy, compressed input the share of it left in flat parts would bring its noise and JPEG block
    errors back as mottling and broad patches in skies).
    ``fidelity``: weight of iterative back-projection onto the network's input (restores the input's
    exact coarse content: more faithful on clean inputs); ``fidelity_smoothing``: Gaussian sigma, in
    input pixels, of the back-projected residual (0 re-injects everything, noise included; larger
    values keep only coarse structure, so noise and JPEG blocks stay out). ``tone_guard``: weight of
    the second, coarse back-projection that takes back what the network shifted in tone and colour
    (``models.pipeline._render``). ``soften``: Gaussian sigma, in the network's output pixels, of a blur
    of the network's output before it is blended (on heavily degraded inputs the finest texture it
    invents is mostly wrong: a slight blur of it is closer to the scene). ``overshoot_share``: how far
    an output pixel may leave the range of the input around it, as a share of that range (plus a fixed
    margin; ``models.pipeline._ops.limit_overshoot``): room for strong edges to steepen, which a blurred
    input needs more than a clean one. ``grain``: share of what the
    network removed that is put back (film grain). ``sharpen``: unsharp-mask amount on luma.
    ``exposure_ev``, ``contrast`` (tone-curve bend, 0 = none), ``white_balance`` (share of the
    measured colour cast removed), ``warmth`` (extra log2 red/blue shift): tone.
    """

    strength: float = 1.0
    flat_strength: float = 1.0
    network_base: float = 0.0
    fidelity: float = 0.0
    fidelity_smoothing: float = 0.0
    tone_guard: float = 1.0
    soften: float = 0.0
    overshoot_share: float = 0.1
    grain: float = 0.0
    sharpen: float = 0.0
    exposure_ev: float = 0.0
    contrast: float = 0.0
    white_balance: float = 0.0
    warmth: float = 0.0


@dataclass(frozen=True)
class RestorationRow:
    """A knot of the restoration table: parameters at one degradation score (linear in between)."""

    score: float
    strength: float
    flat_strength: float
    fidelity: float
    fidelity_smoothing: float
    sharpen: float
    tone_guard: float
    soften: float
    network_base: float
    overshoot_share: float


# Degradation score 0 = clean, 1 = very noisy or heavily compressed (see ``degradation_score``).
# Chosen on the tuning half of tests/scene_photos.py (tests/benchmarks/bench_quality.py, 512 px
# originals from 128 px inputs): on clean inputs the network's detail goes where the input has texture
# it agrees with and a quarter of it elsewhere, with full back-projection (its invented texture costs
# PSNR on skies, bokeh and misread patterns) and no sharpening (the network's own detail is as sharp,
# with fewer fringes: halo 0.049 -> 0.040 at the same PSNR and NIQE); on mildly degraded inputs the
# network alone restores the detailed parts and three quarters of it the flat ones (where it mostly
# removes noise and blocks), with the back-projected residual smoothed (3 input px) so that noise and
# JPEG blocks stay out. Towards heavy degradation the input has nothing trustworthy left to pull back
# to (back-projection fades to 0: +0.15 dB on the tuning half's heavy row), the network's finest
# invented texture is mostly wrong (its output softened by 0.6 px: +0.2 dB), sharpening only sharpens
# its mistakes (+0.15 dB), and what it is blended over in flat parts (0.85) is its own output blurred
# by 1 input px (a shrinkage of the detail it invents where the input shows none): the network alone
# there scored 0.07 dB lower; the input's bicubic, smoothed by 1 px, as much as this but its JPEG
# block errors showed as broad patches in skies at 100 % (unsmoothed, also as mottling; NIQE reads
# both as natural texture: 0.06 and about 1 lower). The tone guard takes back
# the network's tone shifts in full up to score 0.3 (clean photos whose fine texture reads as mild
# noise) and fades out towards heavy degradation, where it would pull JPEG blocks back in (-0.26 dB
# there).
# Sharpening is uniform (a prompt's "sharper" sharpens everything); the overshoot limit keeps it from
# ringing. That limit lets a pixel leave its input neighbourhood's range by 0.02 plus a share of the
# range: a tenth where the input was blurred (restored edges are steeper than the blurred input's range
# allows: a twentieth cost the mild row 0.12 of NIQE), a twentieth on clean inputs, whose range is the
# scene's own (halo 0.031 -> 0.029 against Lanczos's 0.030, NIQE 0.04 higher, -0.01 dB).
RESTORATION_TABLE: tuple[RestorationRow, ...] = (
    RestorationRow(
        0.0,
        strength=1.0,
        flat_strength=0.25,
        fidelity=1.0,
        fidelity_smoothing=0.0,
        sharpen=0.0,
        tone_guard=1,
        soften=0.0,
        network_base=0.0,
        overshoot_share=0.05,
    ),
    RestorationRow(
        0.3,
        strength=1.0,
        flat_strength=0.75,
        fidelity=0.6,
        fidelity_smoothing=3.0,
        sharpen=0.3,
        tone_guard=1,
        soften=0.0,
        network_base=0.0,
        overshoot_share=0.1,
    ),
    RestorationRow(
        1.0,
        strength=1.0,
        flat_strength=0.85,
        fidelity=0.0,
        fidelity_smoothing=3.0,
        sharpen=0.0,
        tone_guard=0,
        soften=0.6,
        network_base=1.0,
        overshoot_share=0.1,
    ),
)


@dataclass(frozen=True)
class DegradationScale:
    """Noise sigma (8-bit) and JPEG quality mapped to [0, 1]: ``clean_noise`` → 0, ``clean_noise +
    noise_span`` → 1; JPEG quality ``clean_quality`` → 0, ``clean_quality − quality_span`` → 1."""

    # The noise estimator reads 3-4.5 on clean photos downscaled to ~100 px (fine texture), 6-7 with
    # sigma 5 added: the clean end sits above that floor.
    clean_noise: float = 4.5
    noise_span: float = 12.0
    clean_quality: float = 95.0
    quality_span: float = 55.0


DEGRADATION = DegradationScale()


@dataclass(frozen=True)
class TonePolicy:
    """The tone corrections the ``tone`` variation offers (never the ``inferred`` output: exposure,
    contrast and colour are the photographer's, and a night, low-key, high-key, sunset, snow or
    deliberately coloured photo measures exactly like a "defective" one). Each correction starts only
    outside a dead band and is capped. Only under-exposure is corrected by exposure: a bright,
    high-key picture (snow, a white wall) is indistinguishable from an over-exposed one."""

    # Under-exposure: the brightest 0.5 % of pixels below this luma → raise them towards the target
    # (a well-exposed photo darkened by 1.5 EV has its white point near 0.6).
    dim_white_point: float = 0.7
    white_target: float = 0.85
    max_raise_ev: float = 1.5
    # Flat: luma spread (1st-99th percentile) below this → bend the tone curve, up to the cap.
    flat_contrast: float = 0.35
    contrast_per_missing_spread: float = 1.0
    max_contrast: float = 0.2
    # Colour cast: beyond this angle from neutral, remove a share of the excess over ``cast_keep_deg``.
    cast_threshold_deg: float = 20.0
    cast_keep_deg: float = 10.0
    max_white_balance: float = 0.6


TONE = TonePolicy()

# Content decision: the illustration network only when the classifier is confident (a photo through
# the anime network looks painted; an illustration through x4plus merely looks less crisp).
ILLUSTRATION_THRESHOLD = 0.6
# An upscale factor found only from edge blur (no periodic trace: small or JPEG inputs) is trusted from
# this degradation score up: a clean soft, defocused or smooth photo (a night sky, bokeh) reads the same,
# and shrinking it before the network throws its real pixels away (−15 dB on a 64 px aurora photo).
BLUR_ONLY_UPSCALE_MIN_DEGRADATION = 0.5
# Output long side of the "4k" size mode.
UHD_LONG_SIDE = 3840


@dataclass(frozen=True)
class Variation:
    """One output of a request: ``changes`` applied to the inferred parameters (after the prompt).
    ``corrects_tone``: the measured tone corrections (:func:`tone_corrections`) are added first, each
    one only where the prompt left that property alone."""

    name: str
    meaning: str
    changes: tuple[Change, ...]
    corrects_tone: bool = False


# Output i of a request is VARIATIONS[i]; their differences are fixed, so outputs are distinct, and
# every computation is deterministic, so the same request always gives the same bytes.
VARIATIONS: tuple[Variation, ...] = (
    Variation("inferred", "the parameters inferred from the image and the prompt", ()),
    Variation(
        "natural",
        "gentler and more faithful: a quarter of the inferred blend, full back-projection, no sharpening",
        (
            Change("strength", "mul", 0.25),
            Change("flat_strength", "mul", 0.25),
            Change("fidelity", "max", 0.8),
            Change("sharpen", "set", 0.0),
        ),
    ),
    Variation(
        "detail",
        "stronger detail: the network at full strength everywhere, less back-projection, extra sharpening",
        (
            Change("strength", "set", 1.0),
            Change("flat_strength", "set", 1.0),
            Change("fidelity", "mul", 0.5),
            Change("sharpen", "add", 0.35),
            Change("soften", "set", 0.0),
        ),
    ),
    Variation(
        "tone",
        "alternative tone: the measured exposure, contrast and colour-cast corrections and a little more"
        " contrast, on the inferred restoration",
        (Change("contrast", "add", 0.1),),
        corrects_tone=True,
    ),
)

T = TypeVar("T", PlanParameters, OutputParameters)
_PLAN_FIELDS = {f.name for f in fields(PlanParameters)}
_OUTPUT_FIELDS = {f.name for f in fields(OutputParameters)}
# The restoration table's parameters: every field of a row but its score, each an output parameter.
_ROW_FIELDS = tuple(f.name for f in fields(RestorationRow) if f.name != "score")
_LIMITS: dict[str, tuple[float, float]] = {
    "strength": (0.0, 1.0),
    "flat_strength": (0.0, 1.0),
    "tone_guard": (0.0, 1.0),
    "soften": (0.0, 4.0),
    "network_base": (0.0, 1.0),
    "overshoot_share": (0.0, 1.0),
    "fidelity": (0.0, 1.0),
    "fidelity_smoothing": (0.0, 8.0),
    "grain": (0.0, 1.0),
    "sharpen": (0.0, 2.0),
    "exposure_ev": (-2.0, 2.0),
    "contrast": (-0.6, 0.6),
    "white_balance": (0.0, 1.0),
    "warmth": (-1.0, 1.0),
    "denoise": (0.0, 1.0),
    "network_scale": (1.0, 8.0),
}


class UnknownParameterError(KeyError):
    """Raised by :func:`apply_changes` for a change naming a field no parameter set has."""


def apply_changes(params: T, changes: tuple[Change, ...] | list[Change]) -> T:
    """``params`` with the ``changes`` that name its fields applied in order (others are skipped);
    numeric results are clamped to their limits."""
    names = {f.name for f in fields(params)}
    values: dict[str, Any] = {}
    for change in changes:
        if change.target not in _PLAN_FIELDS | _OUTPUT_FIELDS:
            raise UnknownParameterError(f"no parameter called {change.target!r}")
        if change.target not in names:
            continue
        current = values.get(change.target, getattr(params, change.target))
        if change.op == "set":
            new = change.value
        elif isinstance(current, bool) or not isinstance(change.value, int | float):
            raise ValueError(f"{change.op} needs a number for {change.target!r}")
        elif change.op == "add":
            new = current + change.value
        elif change.op == "mul":
            new = current * change.value
        elif change.op == "max":
            new = max(current, change.value)
        else:
            new = min(current, change.value)
        if change.target in _LIMITS and isinstance(new, int | float) and not isinstance(new, bool):
            lo, hi = _LIMITS[change.target]
            new = min(hi, max(lo, float(new)))
        values[change.target] = new
    return replace(params, **values)


def degradation_score(analysis: ImageAnalysis, scale: DegradationScale = DEGRADATION) -> float:
    """0 (clean) .. 1 (heavily degraded): the worse of noise and JPEG compression."""
    noise = (analysis.noise_sigma - scale.clean_noise) / scale.noise_span
    quality = analysis.jpeg.quality
    jpeg = 0.0 if quality is None else (scale.clean_quality - quality) / scale.quality_span
    return min(1.0, max(0.0, noise, jpeg))


def restoration_at(score: float, table: tuple[RestorationRow, ...] = RESTORATION_TABLE) -> RestorationRow:
    """The restoration row at ``score``, linearly interpolated between the table's knots."""
    if score <= table[0].score:
        return table[0]
    for lo, hi in itertools.pairwise(table):
        if score <= hi.score:
            t = (score - lo.score) / (hi.score - lo.score)
            values = {name: getattr(lo, name) + t * (getattr(hi, name) - getattr(lo, name)) for name in _ROW_FIELDS}
            return RestorationRow(score=score, **values)
    return table[-1]


def _srgb_to_linear(v: float) -> float:
    return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4


def tone_corrections(analysis: ImageAnalysis, policy: TonePolicy = TONE) -> tuple[float, float, float]:
    """(exposure_ev, contrast, white_balance) the ``tone`` variation applies; all 0 inside the dead bands."""
    tone = analysis.tone
    exposure = 0.0
    if tone.white_point < policy.dim_white_point and tone.clipped_bright < 0.001:
        wanted = math.log2(_srgb_to_linear(policy.white_target) / max(_srgb_to_linear(tone.white_point), 1e-4))
        exposure = min(policy.max_raise_ev, wanted)
    contrast = 0.0
    if tone.contrast < policy.flat_contrast:
        contrast = min(policy.max_contrast, (policy.flat_contrast - tone.contrast) * policy.contrast_per_missing_spread)
    white_balance = 0.0
    angle = analysis.colour.angle_deg
    if angle > policy.cast_threshold_deg:
        white_balance = min(policy.max_white_balance, (angle - policy.cast_keep_deg) / angle)
    return exposure, contrast, white_balance


@dataclass(frozen=True)
class EnhancePlan:
    """Everything decided for one request: the shared plan, one parameter set per output, and why."""

    plan: PlanParameters
    outputs: tuple[tuple[Variation, OutputParameters], ...]
    degradation: float
    # (exposure_ev, contrast, white_balance) measured for the ``tone`` variation.
    tone_corrections: tuple[float, float, float] = (0.0, 0.0, 0.0)


def infer_parameters(analysis: ImageAnalysis, steering: Steering | None, num_outputs: int) -> EnhancePlan:
    """Parameters for ``num_outputs`` outputs (1..len(VARIATIONS)) from ``analysis`` and ``steering``.

    Order: the tables give the inferred parameters (restoration only: no exposure, contrast or colour
    change, so the photo keeps its own tone); the prompt's changes apply on top; a variation that
    ``corrects_tone`` adds the measured corrections (:func:`tone_corrections`) of the properties the
    prompt did not address; each variation's changes apply next; the prompt's outright settings ("set"
    changes such as "no sharpening") apply again last, so they bind every output. Raises ``ValueError``
    for a bad ``num_outputs``.
    """
    if not 1 <= num_outputs <= len(VARIATIONS):
        raise ValueError(f"num_outputs must be in 1..{len(VARIATIONS)}, got {num_outputs}")
    content: Content = (
        "illustration" if analysis.content.illustration_probability >= ILLUSTRATION_THRESHOLD else "photo"
    )
    score = degradation_score(analysis)
    trusted = analysis.upscale_evidence != "blur" or score >= BLUR_ONLY_UPSCALE_MIN_DEGRADATION
    plan = PlanParameters(content=content, network_scale=max(1.0, analysis.upscale_factor) if trusted else 1.0)
    row = restoration_at(score)
    base = OutputParameters(**{name: getattr(row, name) for name in _ROW_FIELDS})
    if steering is not None:
        plan = apply_changes(plan, steering.changes)
        base = apply_changes(base, steering.changes)
    # What the prompt fixed outright ("don't sharpen", "no colour changes") binds every variation too.
    fixed = [c for c in steering.changes if c.op == "set"] if steering is not None else []
    asked = {c.target for c in steering.changes} if steering is not None else set()
    measured = tone_corrections(analysis)
    corrections = [
        Change(target, "add", value)
        for target, value in zip(("exposure_ev", "contrast", "white_balance"), measured, strict=True)
        if value != 0.0 and target not in asked and not (target == "white_balance" and "warmth" in asked)
    ]
    outputs = []
    for variation in VARIATIONS[:num_outputs]:
        params = apply_changes(base, corrections) if variation.corrects_tone else base
        outputs.append((variation, apply_changes(apply_changes(params, variation.changes), fixed)))
    return EnhancePlan(plan=plan, outputs=tuple(outputs), degradation=score, tone_corrections=measured)


def output_size(
    width: int, height: int, size: SizeMode, *, target_long_side: int = 2048, max_side: int = 4096
) -> tuple[int, int]:
    """Output (width, height) for an input of ``width``×``height`` under the size rule ``size``:
    "auto" is DESIGN.md's rule (long side ``target_long_side`` for smaller inputs, else the input's
    own size); "2x"/"4x" multiply; "4k" makes the long side 3840; "keep" is the input size. Every
    result is capped at ``max_side`` on the long side, aspect ratio kept."""
    if width < 1 or height < 1:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    long_side = max(width, height)
    wanted = {
        "auto": max(long_side, target_long_side),
        "2x": 2 * long_side,
        "4x": 4 * long_side,
        "4k": UHD_LONG_SIDE,
        "keep": long_side,
    }[size]
    out_long = min(wanted, max(max_side, long_side))
    if out_long == long_side:
        return width, height
    ratio = out_long / long_side
    return max(1, round(width * ratio)), max(1, round(height * ratio))
