"""The enhance pipeline: one request from the image file's bytes to encoded outputs and their explanation.

* :func:`enhance_request` (:class:`PipelineRequest`, :class:`EnhancePipeline` → :class:`PipelineOutcome`)
  — the conductor: decode, analyse, steer, super-resolve, identify, encode, explain, in one worker slot.
* The stages on their own: :func:`decode`, :func:`analyse`, :func:`steer` (→ :class:`Steered`),
  :func:`super_resolve` (→ :class:`Rendered`), :func:`identify`, :func:`choose_format` and
  :func:`encode`, :func:`explain` (→ :class:`Explanation`, what ``X-Enhance-Parameters`` carries;
  its sections serialised by :func:`estimates_json`, :func:`prompt_json`, :func:`decision_json` and
  :func:`identity_json`, the one place the header's JSON is written).
* :func:`enhance_image` → :class:`EnhanceResult` — analyse, steer and super-resolve on an already
  decoded image (benchmarks, pixel tests).
* :func:`infer_parameters` → :class:`EnhancePlan` — the policy (tables in ``_policy``: restoration
  by degradation score, tone limits, size rules, variations).
* :data:`VARIATIONS` — the meaning of output 1..4 of a request.
"""

from models.pipeline._conductor import (
    EnhancePipeline,
    EnhanceResult,
    PipelineOutcome,
    PipelineRequest,
    Steered,
    analyse,
    analyse_with_faces,
    choose_format,
    decode,
    encode,
    enhance_image,
    enhance_request,
    explain,
    identify,
    networks_device,
    steer,
)
from models.pipeline._explain import (
    Explanation,
    NetworkRun,
    Timings,
    VariationReport,
    decision_json,
    estimates_json,
    identity_json,
    prompt_json,
)
from models.pipeline._policy import (
    DEGRADATION,
    ILLUSTRATION_THRESHOLD,
    RESTORATION_TABLE,
    TONE,
    VARIATIONS,
    DegradationScale,
    EnhancePlan,
    OutputParameters,
    PlanParameters,
    RestorationRow,
    TonePolicy,
    UnknownParameterError,
    Variation,
    apply_changes,
    degradation_score,
    infer_parameters,
    output_size,
    restoration_at,
    tone_corrections,
)
from models.pipeline._render import (
    EnhancedImage,
    EnhanceOptions,
    Rendered,
    plan_output_size,
    request_device_bytes,
    super_resolve,
)

__all__ = [
    "DEGRADATION",
    "ILLUSTRATION_THRESHOLD",
    "RESTORATION_TABLE",
    "TONE",
    "VARIATIONS",
    "DegradationScale",
    "EnhanceOptions",
    "EnhancePipeline",
    "EnhancePlan",
    "EnhanceResult",
    "EnhancedImage",
    "Explanation",
    "NetworkRun",
    "OutputParameters",
    "PipelineOutcome",
    "PipelineRequest",
    "PlanParameters",
    "Rendered",
    "RestorationRow",
    "Steered",
    "Timings",
    "TonePolicy",
    "UnknownParameterError",
    "Variation",
    "VariationReport",
    "analyse",
    "analyse_with_faces",
    "apply_changes",
    "choose_format",
    "decision_json",
    "decode",
    "degradation_score",
    "encode",
    "enhance_image",
    "enhance_request",
    "estimates_json",
    "explain",
    "identify",
    "identity_json",
    "infer_parameters",
    "networks_device",
    "output_size",
    "plan_output_size",
    "prompt_json",
    "request_device_bytes",
    "restoration_at",
    "steer",
    "super_resolve",
    "tone_corrections",
]
