"""One enhance request, conducted from the file's bytes to the encoded outputs and their explanation.

:func:`enhance_request` is the whole request, in one worker slot, as seven stages in order:
decode, analyse, steer, super-resolve, identify, encode, explain. Each stage is a function of this
module (super-resolve: :func:`models.pipeline.super_resolve`) that can be called on its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal, ParamSpec, TypeVar

import numpy as np
import torch

from models.analysis import FaceBox, ImageAnalysis, analyse_image
from models.faces import (
    DetectedFace,
    FaceModels,
    IdentityPolicy,
    IdentityResult,
    KnownProfile,
    detect_faces,
    identify_outputs,
    to_uint8,
)
from models.imageio import DecodedImage, decode_image, encode_image, flatten_alpha, sniff_format
from models.pipeline._explain import Explanation, RenderTimings, Timings, VariationReport
from models.pipeline._load import default_face_detector
from models.pipeline._policy import EnhancePlan, infer_parameters
from models.pipeline._render import EnhancedImage, EnhanceOptions, Rendered, super_resolve
from models.prompt import Steering, parse_prompt
from models.sr import CancelToken, MemoryBudget, SRModel, TileRunner

OutputFormat = Literal["png", "jpg"]
P = ParamSpec("P")
T = TypeVar("T")


@dataclass(frozen=True)
class PipelineRequest:
    """One request as the pipeline needs it: the image file's ``source`` bytes, how many outputs, the
    caller's ``prompt`` (as :func:`read_prompt` read it, so that it is read once per request; a string
    is read by the steer stage), the ``output_format`` asked for (``None``: ``default_format``, or PNG
    when the input has alpha) and the ``candidates`` (profiles already resolved and READY) to count.

    What the caller measured or knows before the pipeline: ``fetch_s``, the seconds spent getting the
    bytes (URL fetch or base64; reported inside ``decode_s``), ``queued_at``, the
    :func:`time.perf_counter` reading when the request was handed to its worker slot (``enhance_s`` is
    measured from it; ``None``: not reported), and ``mode``, the service's mode ("real", or "test" when
    a stand-in replaced the network; ``None``: unlabelled) that the explanation carries."""

    source: bytes
    num_outputs: int = 1
    prompt: Steering | str | None = None
    output_format: OutputFormat | None = None
    default_format: OutputFormat = "png"
    candidates: Sequence[KnownProfile] = ()
    fetch_s: float = 0.0
    queued_at: float | None = None
    mode: str | None = None


@dataclass(frozen=True)
class EnhancePipeline:
    """The loaded models a request runs through and the operator's knobs: the super-resolution
    ``networks`` by content ("photo", "illustration"), the ``faces`` models (``None``: no identity
    stage), the ``identity`` policy, the ``runner`` that batches network tiles across requests and
    the device ``memory`` budget requests reserve from. Holds no per-request state."""

    networks: SRModel | Mapping[str, SRModel]
    options: EnhanceOptions = field(default_factory=EnhanceOptions)
    faces: FaceModels | None = None
    identity: IdentityPolicy = field(default_factory=IdentityPolicy)
    runner: TileRunner | None = None
    memory: MemoryBudget | None = None


@dataclass(frozen=True)
class Steered:
    """The steer stage's outcome: the parsed prompt (``None`` without one) and the policy's plan."""

    steering: Steering | None
    decided: EnhancePlan


@dataclass(frozen=True)
class PipelineOutcome:
    """The encoded ``outputs`` (one file each, in ``output_format``), ``counts`` of candidates for
    ``known_subjects`` and the request's :class:`Explanation`."""

    outputs: list[bytes]
    output_format: OutputFormat
    counts: dict[str, int]
    explanation: Explanation


def enhance_request(
    request: PipelineRequest, pipeline: EnhancePipeline, cancel: CancelToken | None = None
) -> PipelineOutcome:
    """Run one request through the seven stages (blocking; call it in a worker slot). ``cancel``
    stops it at the next checkpoint with ``RequestCancelledError``. Raises the decoder's
    ``InvalidImageError``/``UnsupportedFormatError`` and ``ValueError`` for a bad ``num_outputs``."""
    options = replace(pipeline.options, num_outputs=request.num_outputs)
    decoded, decode_s = _timed(decode, request.source, options)
    (analysis, faces), analysis_s = _timed(
        analyse_with_faces,
        decoded.rgb,
        request.source,
        decoded.alpha,
        pipeline.faces if options.detect_faces else None,
        pipeline.identity,
        detect=options.detect_faces,
        device=networks_device(pipeline.networks),
    )
    steered = steer(analysis, request.prompt, options.num_outputs)
    rendered = super_resolve(
        decoded.rgb,
        decoded.alpha,
        analysis,
        steered.decided,
        pipeline.networks,
        options,
        runner=pipeline.runner,
        memory=pipeline.memory,
        cancel=cancel,
    )
    identified, identity_s = _timed(
        identify,
        decoded.rgb,
        [image.rgb for image in rendered.images],
        pipeline.faces,
        request.candidates,
        pipeline.identity,
        faces,
    )
    fmt, alpha_note = choose_format(request.output_format, request.default_format, decoded.alpha is not None)
    files, encode_s = _timed(encode, identified.images, rendered.images, fmt, decoded.exif, options)
    reported_identity_s = identity_s if identified.report is not None else None
    enhance_s = None
    if request.queued_at is not None:
        # From the hand-over to the slot to now, less the stages reported on their own: waiting for the
        # slot, analysis, steering and super-resolution.
        in_slot = decode_s + (reported_identity_s or 0.0) + encode_s
        enhance_s = max(0.0, time.perf_counter() - request.queued_at - in_slot)
    timings = Timings(
        analysis_s=analysis_s,
        decode_s=decode_s + request.fetch_s,
        enhance_s=enhance_s,
        identity_s=identity_s,
        encode_s=encode_s,
    )
    explanation = explain(
        _size(decoded.rgb),
        analysis,
        steered,
        rendered,
        timings,
        decoded=decoded,
        identified=identified,
        output_format=fmt,
        alpha_note=alpha_note,
        mode=request.mode,
    )
    return PipelineOutcome(files, fmt, identified.counts, explanation)


# The long side a JPEG is decoded to when only checked (:func:`check_source`): small, so that libjpeg's
# DCT scaling decodes it at 1/8 scale (every byte of its data is still read) and the resize after it
# is cheap. Other formats have no reduced decode: they are checked at their own size (no resize).
CHECK_SIDE = 128
_NO_RESIZE = 1 << 30


@dataclass(frozen=True)
class SourceCheck:
    """What checking a source found: its format (as sniffed) and upright size (width, height)."""

    source_format: str
    original_size: tuple[int, int]


def check_source(source: bytes, options: EnhanceOptions) -> SourceCheck:
    """A cheap check that ``source`` is an image the decode stage accepts under ``options`` (format,
    header, pixel count, every byte of pixel data), without analysing or keeping it: what job
    submission runs before it accepts a job. A JPEG is decoded to :data:`CHECK_SIDE` px on its long
    side, other formats at their own size: no resize (the decode stage's errors do not depend on the
    size it scales to). ``tests/benchmarks/bench_source_check.py`` measures it against the full decode.

    Raises:
        InvalidImageError: not an image, empty, truncated, corrupt, or over ``options.max_input_pixels``.
        UnsupportedFormatError: an image in a format or pixel mode that is not decoded here.
    """
    side = CHECK_SIDE if sniff_format(source) == "jpeg" else _NO_RESIZE
    decoded = decode_image(source, max_side=side, max_pixels=options.max_input_pixels)
    return SourceCheck(source_format=decoded.source_format, original_size=decoded.original_size)


# --- the stages, in order ---------------------------------------------------------------------------


def decode(source: bytes, options: EnhanceOptions) -> DecodedImage:
    """Decode stage: the file's bytes to upright sRGB pixels, long side capped at
    ``options.max_input_side``. Raises ``InvalidImageError`` or ``UnsupportedFormatError``."""
    return decode_image(source, max_side=options.max_input_side, max_pixels=options.max_input_pixels)


def analyse(
    rgb: np.ndarray,
    source: bytes | None = None,
    alpha: np.ndarray | None = None,
    *,
    detect: bool = True,
    device: torch.device | str = "cpu",
) -> ImageAnalysis:
    """Analyse stage: every estimator on ``rgb`` (float32 H×W×3 in [0, 1], sRGB), run on ``device``
    (the networks' device). With ``alpha`` (float32 H×W), the image is judged as it is seen: over
    white (hidden pixels carry arbitrary colour). ``source`` (the file's bytes) gives a JPEG's quality
    exactly; ``detect`` finds faces (with the CPU detector of :func:`default_face_detector`: see
    :func:`analyse_with_faces` for the service's)."""
    seen = rgb if alpha is None else (rgb * alpha[:, :, None] + (1.0 - alpha[:, :, None])).astype(np.float32)
    detector = default_face_detector() if detect else None
    return analyse_image(seen, source, detect=detect, face_detector=detector, device=device)


def networks_device(networks: SRModel | Mapping[str, SRModel]) -> torch.device:
    """The device the super-resolution networks run on (the first one's, for a mapping by content)."""
    first = next(iter(networks.values()), None) if isinstance(networks, Mapping) else networks
    return torch.device(getattr(first, "device", "cpu"))


def analyse_with_faces(
    rgb: np.ndarray,
    source: bytes | None,
    alpha: np.ndarray | None,
    faces: FaceModels | None,
    identity: IdentityPolicy,
    *,
    detect: bool = True,
    device: torch.device | str = "cpu",
) -> tuple[ImageAnalysis, list[DetectedFace] | None]:
    """Analyse stage with the service's face models: the faces are found ONCE, by the identity's
    detector on its device and budget (``identity.min_face``, ``identity.max_work_pixels``), and serve
    both the analysis (protect-faces, the report) and the identify stage. Without ``faces`` (or with
    ``detect`` off) this is :func:`analyse` and no faces are handed on."""
    if faces is None or not detect:
        return analyse(rgb, source, alpha, detect=detect, device=device), None
    started = time.perf_counter()
    found = detect_faces(to_uint8(rgb), faces, min_face=identity.min_face, max_work_pixels=identity.max_work_pixels)
    detected_s = time.perf_counter() - started
    analysis = analyse(rgb, source, alpha, detect=False, device=device)
    boxes = [FaceBox(x=round(f.box.left), y=round(f.box.top), size=round(f.box.width)) for f in found]
    # Reported where the estimators' own detection reports it (last of estimates.timings).
    return replace(analysis, faces=boxes, timings={**analysis.timings, "faces_s": detected_s}), found


def read_prompt(prompt: str | None) -> Steering:
    """Read a request's prompt: its ``[[id]]`` tokens, the intents it names (with negation) and the text
    not understood. Read once per request: the server takes the candidate ids from it
    (:func:`candidate_ids`) and hands it to the pipeline in :attr:`PipelineRequest.prompt`. Never raises."""
    return parse_prompt(prompt)


def candidate_ids(profile_ids: Sequence[str] | None, steering: Steering) -> list[str]:
    """A request's candidate profile ids: ``profile_ids`` then the prompt's ``[[id]]`` tokens (from
    :func:`read_prompt`), deduplicated, in order."""
    return list(dict.fromkeys([*(profile_ids or []), *steering.profile_ids]))


def steer(analysis: ImageAnalysis, prompt: str | Steering | None, num_outputs: int) -> Steered:
    """Steer stage: the prompt (read here when given as text: :func:`read_prompt`) and the policy's
    decision of every output's parameters."""
    steering = read_prompt(prompt) if isinstance(prompt, str) or prompt is None else prompt
    return Steered(steering=steering, decided=infer_parameters(analysis, steering, num_outputs))


def identify(
    source: np.ndarray,
    outputs: list[np.ndarray],
    faces: FaceModels | None,
    candidates: Sequence[KnownProfile],
    policy: IdentityPolicy,
    found: Sequence[DetectedFace] | None = None,
) -> IdentityResult:
    """Identify stage: find the input's faces, guard them on every output (softening a face whose
    identity drifted) and count the ``candidates`` seen (``models.faces.identify_outputs``). Without
    face models the outputs pass unchanged, nothing counted and no report. ``found``: the faces the
    analyse stage already found on ``source`` with the same detector (not detected again)."""
    if faces is None:
        return IdentityResult(list(outputs), {}, None)
    return identify_outputs(source, outputs, faces, candidates, policy, faces=found)


def choose_format(
    requested: OutputFormat | None, default: OutputFormat, has_alpha: bool
) -> tuple[OutputFormat, str | None]:
    """The output format and the note on the input's alpha: the caller's choice (jpg flattens alpha
    onto white), else PNG when the input has alpha, else ``default``."""
    if requested is not None:
        return requested, ("flattened onto white: jpg has no alpha" if requested == "jpg" and has_alpha else None)
    if has_alpha:
        return "png", "kept: png chosen because the input has alpha"
    return default, None


def encode(
    images: Sequence[np.ndarray],
    rendered: Sequence[EnhancedImage],
    output_format: OutputFormat,
    exif: bytes | None,
    options: EnhanceOptions,
) -> list[bytes]:
    """Encode stage: each output (``images``, after identity; alpha from ``rendered``) as a PNG or JPEG
    file with the sRGB profile and the source's EXIF; JPEG flattens alpha onto white."""
    encoded = []
    for rgb, image in zip(images, rendered, strict=True):
        pixels, alpha = rgb, image.alpha
        if output_format == "jpg" and alpha is not None:
            pixels, alpha = flatten_alpha(pixels, alpha), None
        encoded.append(
            encode_image(
                pixels,
                alpha,
                output_format,
                exif=exif,
                jpeg_quality=options.jpeg_quality,
                png_compress_level=options.png_compress_level,
            )
        )
    return encoded


def explain(
    input_size: tuple[int, int],
    analysis: ImageAnalysis,
    steered: Steered,
    rendered: Rendered,
    timings: Timings,
    *,
    decoded: DecodedImage | None = None,
    identified: IdentityResult | None = None,
    output_format: OutputFormat | None = None,
    alpha_note: str | None = None,
    mode: str | None = None,
) -> Explanation:
    """Explain stage: what was measured, decided and done, for ``X-Enhance-Parameters``.
    ``input_size`` is the decoded image's (width, height); without ``identified`` (or without its
    report: no face models) there is no identity section and no ``identity_s``; ``rendered`` gives the
    super-resolve stage's timings and ``mode`` labels the service's mode. The explanation holds the
    stages' own typed results; :meth:`Explanation.to_json` writes the header's JSON."""
    identity = identified.report if identified is not None else None
    parts: RenderTimings = rendered.timings
    return Explanation(
        input=input_size,
        network_input=rendered.network_input,
        output=rendered.output,
        run=rendered.run,
        estimates=analysis,
        prompt=steered.steering,
        decision=steered.decided,
        variations=[VariationReport.of(image.variation, image.parameters) for image in rendered.images],
        timings=replace(
            timings,
            wait_memory_s=parts.wait_memory_s,
            prepare_s=parts.prepare_s,
            network_s=parts.network_s,
            render_s=parts.render_s,
            identity_s=timings.identity_s if identity is not None else None,
        ),
        alpha=alpha_note,
        source_format=decoded.source_format if decoded is not None else None,
        original_size=decoded.original_size if decoded is not None else None,
        output_format=output_format,
        identity=identity,
        mode=mode,
    )


@dataclass(frozen=True)
class EnhanceResult:
    """An already-decoded image's outputs (uint8 on the host, not encoded) and their explanation."""

    images: list[EnhancedImage]
    explanation: Explanation


def enhance_image(
    rgb: np.ndarray,
    alpha: np.ndarray | None,
    models: SRModel | Mapping[str, SRModel],
    options: EnhanceOptions,
    *,
    steering: Steering | None = None,
    source: bytes | None = None,
    analysis: ImageAnalysis | None = None,
    runner: TileRunner | None = None,
    memory: MemoryBudget | None = None,
    cancel: CancelToken | None = None,
) -> EnhanceResult:
    """The analyse, steer and super-resolve stages on an already-decoded image (no identity, no
    encoding): what the quality benchmark and the pixel tests run. ``rgb``, ``alpha``: as
    :func:`super_resolve` takes them; ``steering``: the parsed prompt; ``source``: the original file
    bytes (JPEG tables); ``analysis``: a precomputed analysis (else it is computed here)."""
    timings = Timings()
    if analysis is not None:
        measured = analysis
    else:
        measured, analysis_s = _timed(
            analyse,
            rgb,
            source,
            alpha,
            detect=options.detect_faces,
            device=networks_device(models),
        )
        timings = Timings(analysis_s=analysis_s)
    steered = (
        steer(measured, steering, options.num_outputs)
        if steering is not None
        else Steered(None, infer_parameters(measured, None, options.num_outputs))
    )
    rendered = super_resolve(
        rgb, alpha, measured, steered.decided, models, options, runner=runner, memory=memory, cancel=cancel
    )
    return EnhanceResult(rendered.images, explain(_size(rgb), measured, steered, rendered, timings))


def _size(rgb: np.ndarray) -> tuple[int, int]:
    return int(rgb.shape[1]), int(rgb.shape[0])


def _timed(stage: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> tuple[T, float]:
    """Run ``stage``; its value and the seconds it took."""
    started = time.perf_counter()
    value = stage(*args, **kwargs)
    return value, time.perf_counter() - started
