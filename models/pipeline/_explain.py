"""The explanation of one request: what ``X-Enhance-Parameters`` carries, typed, serialised in one place.

:class:`Explanation` is filled by the conductor's stages with the typed values they produced (the
:class:`~models.analysis.ImageAnalysis`, the parsed :class:`~models.prompt.Steering`, the policy's
:class:`~models.pipeline.EnhancePlan`, the :class:`~models.faces.IdentityReport`) and serialised by
:meth:`Explanation.to_json` into the header's JSON. Every key, its order and its rounding are decided
here, and only here (tests/test_explain_header.py holds the header to the shape clients have read).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from models.analysis import ImageAnalysis
from models.faces import FaceReport, IdentityReport, OutputFace
from models.pipeline._policy import EnhancePlan, OutputParameters, Variation
from models.prompt import Steering


@dataclass(frozen=True)
class NetworkRun:
    """The one network pass of a request: which network, where, in what precision and how it was tiled.
    ``fallback`` says why another network than the inferred content's ran (``None``: none did)."""

    network: str
    fallback: str | None
    device: str
    dtype: str
    tile: int
    overlap: int
    tiles: int
    batches: int
    oom_retries: int
    nan_fallbacks: int


@dataclass(frozen=True)
class VariationReport:
    """One output: the variation's name and the parameters it was rendered with."""

    name: str
    parameters: OutputParameters

    @classmethod
    def of(cls, variation: Variation, parameters: OutputParameters) -> VariationReport:
        return cls(name=variation.name, parameters=parameters)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, **{k: _round3(v) for k, v in asdict(self.parameters).items()}}


@dataclass(frozen=True)
class RenderTimings:
    """Seconds of the super-resolve stage's parts: waiting for device memory, preparing the network's
    input, the network pass, rendering the outputs."""

    wait_memory_s: float = 0.0
    prepare_s: float = 0.0
    network_s: float = 0.0
    render_s: float = 0.0


@dataclass(frozen=True)
class Timings:
    """Seconds per stage. The pipeline fills what it runs: ``decode_s`` includes getting the bytes (the
    request's ``fetch_s``: URL fetch or base64), ``enhance_s`` (waiting for a worker slot, analysis,
    steering and super-resolution) is measured from the request's ``queued_at`` when it has one. The
    server adds what happens after the pipeline with :meth:`delivered`: ``store_s`` (``response_mode:
    urls``) and ``total_s``. ``None``: not run."""

    analysis_s: float = 0.0
    wait_memory_s: float = 0.0
    prepare_s: float = 0.0
    network_s: float = 0.0
    render_s: float = 0.0
    decode_s: float | None = None
    enhance_s: float | None = None
    identity_s: float | None = None
    encode_s: float | None = None
    store_s: float | None = None
    total_s: float | None = None

    def delivered(self, *, store_s: float | None, total_s: float) -> Timings:
        """These timings with the delivery's: ``store_s`` (``None``: nothing stored) and ``total_s``."""
        return replace(self, store_s=store_s, total_s=total_s)

    def to_json(self) -> dict[str, float]:
        return {f.name: round(value, 4) for f in fields(self) if (value := getattr(self, f.name)) is not None}


@dataclass
class Explanation:
    """Everything ``X-Enhance-Parameters`` reports about one request.

    Sizes are ``(width, height)``: ``input`` as decoded (after the 4096-px cap), ``network_input`` what
    the network saw, ``output`` what was rendered, ``original_size`` the upright source before the cap.
    ``alpha`` is the note on the input's transparency (``None``: the input has none, or no format was
    chosen yet); ``output_format`` the encoded format (``None`` before encoding). ``estimates`` is what
    the analysis measured, ``prompt`` what the prompt asked (``None``: not parsed), ``decision`` what
    the policy decided and ``identity`` what the identity step did (``None``: no face models).
    """

    input: tuple[int, int]
    network_input: tuple[int, int]
    output: tuple[int, int]
    run: NetworkRun
    estimates: ImageAnalysis
    prompt: Steering | None
    decision: EnhancePlan
    variations: list[VariationReport]
    timings: Timings
    alpha: str | None = None
    source_format: str | None = None
    original_size: tuple[int, int] | None = None
    output_format: str | None = None
    identity: IdentityReport | None = None
    # "real", or "test" when a stand-in replaced the network (the service's test mode); None: unlabelled.
    mode: str | None = None

    def delivered(self, *, store_s: float | None, total_s: float) -> Explanation:
        """This explanation with the delivery's timings (:meth:`Timings.delivered`), after the outputs
        were stored or inlined; everything else is as the pipeline returned it."""
        return replace(self, timings=self.timings.delivered(store_s=store_s, total_s=total_s))

    def to_json(self) -> dict[str, Any]:
        """The header's JSON object (keys in the order the header has always listed them)."""
        run = self.run
        return {
            "input": list(self.input),
            "network_input": list(self.network_input),
            "output": list(self.output),
            **({"mode": self.mode} if self.mode is not None else {}),
            "network": run.network,
            **({"network_fallback": run.fallback} if run.fallback is not None else {}),
            "device": run.device,
            "dtype": run.dtype,
            "tile": run.tile,
            "overlap": run.overlap,
            "tiles": run.tiles,
            "batches": run.batches,
            "oom_retries": run.oom_retries,
            "nan_fallbacks": run.nan_fallbacks,
            "estimates": estimates_json(self.estimates),
            "prompt": prompt_json(self.prompt) if self.prompt is not None else None,
            **decision_json(self.decision),
            "variations": [variation.to_json() for variation in self.variations],
            "alpha": self.alpha,
            "timings": self.timings.to_json(),
            "source_format": self.source_format,
            "original_size": list(self.original_size) if self.original_size is not None else None,
            "output_format": self.output_format,
            "identity": identity_json(self.identity) if self.identity is not None else None,
        }


def estimates_json(analysis: ImageAnalysis) -> dict[str, Any]:
    """The ``estimates`` section: each estimator's result, rounded; at most 8 faces listed."""
    faces: dict[str, Any] = {"estimated": False}
    if analysis.faces is not None:
        shown = analysis.faces[:8]
        faces = {
            "estimated": True,
            "count": len(analysis.faces),
            "sizes": [f.size for f in shown],
            "boxes": [[f.x, f.y, f.size] for f in shown],
        }
    tone, colour = analysis.tone, analysis.colour
    return {
        "noise_sigma": round(analysis.noise_sigma, 2),
        "jpeg_quality": analysis.jpeg.quality,
        "jpeg_quality_source": analysis.jpeg.source,
        "blur_sigma": round(analysis.blur_sigma, 2),
        "upscaled_by": analysis.upscale_factor,
        "upscale_evidence": analysis.upscale_evidence,
        "exposure_ev": round(tone.exposure_ev, 2),
        "contrast": round(tone.contrast, 3),
        "black_point": round(tone.black_point, 3),
        "white_point": round(tone.white_point, 3),
        "cast_gains": [round(g, 3) for g in colour.gains],
        "cast_angle_deg": round(colour.angle_deg, 2),
        "content": analysis.content.kind,
        "illustration_probability": round(analysis.content.illustration_probability, 3),
        "faces": faces,
        "timings": _seconds(analysis.timings),
    }


def prompt_json(steering: Steering) -> dict[str, Any]:
    """The ``prompt`` section: the intents found (a negated one names the intent it negates), the
    clauses not understood and, when any, the words corrected."""
    return {
        "intents": [
            {"name": f.name, "phrase": f.phrase, **({"negated": f.from_intent} if f.negated else {})}
            for f in steering.intents
        ],
        "unrecognised": steering.unrecognised,
        **({"corrected": steering.corrections} if steering.corrections else {}),
    }


def decision_json(decided: EnhancePlan) -> dict[str, Any]:
    """The policy's keys, at the header's top level: ``degradation``, ``plan`` and ``tone_corrections``."""
    exposure, contrast, white_balance = decided.tone_corrections
    return {
        "degradation": round(decided.degradation, 3),
        "plan": {k: _round3(v) for k, v in vars(decided.plan).items()},
        "tone_corrections": {
            "exposure_ev": round(exposure, 3),
            "contrast": round(contrast, 3),
            "white_balance": round(white_balance, 3),
            "applied_in": [v.name for v, _ in decided.outputs if v.corrects_tone],
        },
    }


def identity_json(report: IdentityReport) -> dict[str, Any]:
    """The ``identity`` section: every face with its result on each output; the guard's settings and
    the match threshold when a face was found."""
    policy = report.policy
    settings = (
        {
            "guard": {"enabled": policy.guard, "max_drift": policy.max_drift},
            "match_threshold": policy.match_threshold,
        }
        if policy is not None
        else {}
    )
    return {"faces": [_face_json(face) for face in report.faces], **settings, "timings": _seconds(report.timings)}


def _face_json(face: FaceReport) -> dict[str, Any]:
    return {
        "box": face.face.box.as_list(),
        "confidence": round(face.face.confidence, 2),
        "outputs": [_output_face_json(output) for output in face.outputs],
    }


def _output_face_json(output: OutputFace) -> dict[str, Any]:
    entry: dict[str, Any] = {"drift": round(output.drift, 3)}
    if output.guard is not None:
        entry["guard"] = output.guard.action
        if output.guard.blend:
            entry |= {"blend": output.guard.blend, "drift_after": round(output.guard.drift_after, 3)}
    if output.matched is not None:
        entry |= {"match": output.matched.profile_id, "distance": round(output.matched.distance, 3)}
    return entry


def _seconds(timings: dict[str, float]) -> dict[str, float]:
    return {name: round(value, 4) for name, value in timings.items()}


def _round3(value: Any) -> Any:
    return round(value, 3) if isinstance(value, float) else value
