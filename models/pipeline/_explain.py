"""The explanation of one request: what ``X-Enhance-Parameters`` carries, typed, built in one place.

:class:`Explanation` is filled by the conductor's stages and serialised by :meth:`Explanation.to_json`
into the header's JSON (keys, nesting and rounding as the header has always had). The sections that
another package measures or decides keep that package's own JSON shape: ``estimates``
(:meth:`models.analysis.ImageAnalysis.report`), ``prompt`` (:meth:`models.prompt.Steering.report`),
``degradation`` and ``plan`` (:meth:`models.pipeline.EnhancePlan.report`) and ``identity``
(:attr:`models.faces.IdentityResult.report`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from models.pipeline._policy import OutputParameters, Variation

# A section whose JSON shape belongs to the package that produced it.
Section = Mapping[str, Any]


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


@dataclass
class Timings:
    """Seconds per stage. The pipeline fills what it runs; the server adds ``enhance_s`` (waiting for a
    worker slot, analysis, steering and super-resolution), ``store_s`` (``response_mode: urls``) and
    ``total_s``; ``decode_s`` includes getting the bytes (URL fetch or base64). ``None``: not run."""

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

    def to_json(self) -> dict[str, float]:
        return {f.name: round(value, 4) for f in fields(self) if (value := getattr(self, f.name)) is not None}


@dataclass
class Explanation:
    """Everything ``X-Enhance-Parameters`` reports about one request.

    Sizes are ``(width, height)``: ``input`` as decoded (after the 4096-px cap), ``network_input`` what
    the network saw, ``output`` what was rendered, ``original_size`` the upright source before the cap.
    ``alpha`` is the note on the input's transparency (``None``: the input has none, or no format was
    chosen yet); ``output_format`` the encoded format (``None`` before encoding).
    """

    input: tuple[int, int]
    network_input: tuple[int, int]
    output: tuple[int, int]
    run: NetworkRun
    estimates: Section
    prompt: Section | None
    decision: Section
    variations: list[VariationReport]
    timings: Timings
    alpha: str | None = None
    source_format: str | None = None
    original_size: tuple[int, int] | None = None
    output_format: str | None = None
    identity: Section | None = None
    # "real", or "test" when a stand-in replaced the network (the service's test mode); None: unlabelled.
    mode: str | None = None

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
            "estimates": dict(self.estimates),
            "prompt": dict(self.prompt) if self.prompt is not None else None,
            **self.decision,
            "variations": [variation.to_json() for variation in self.variations],
            "alpha": self.alpha,
            "timings": self.timings.to_json(),
            "source_format": self.source_format,
            "original_size": list(self.original_size) if self.original_size is not None else None,
            "output_format": self.output_format,
            "identity": dict(self.identity) if self.identity is not None else None,
        }


def _round3(value: Any) -> Any:
    return round(value, 3) if isinstance(value, float) else value
