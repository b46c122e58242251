"""The enhance pipeline: from a decoded image to enhanced outputs and a report of what was done.

* :func:`enhance_image` — analyse, decide, one network pass, one render per output.
* :func:`infer_parameters` → :class:`EnhancePlan` — the policy (tables in ``_policy``: restoration
  by degradation score, tone limits, size rules, variations).
* :data:`VARIATIONS` — the meaning of output 1..4 of a request.
"""

from models.pipeline._enhance import (
    EnhancedImage,
    EnhanceOptions,
    EnhanceResult,
    enhance_image,
    plan_output_size,
    request_device_bytes,
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

__all__ = [
    "DEGRADATION",
    "ILLUSTRATION_THRESHOLD",
    "RESTORATION_TABLE",
    "TONE",
    "VARIATIONS",
    "DegradationScale",
    "EnhanceOptions",
    "EnhancePlan",
    "EnhanceResult",
    "EnhancedImage",
    "OutputParameters",
    "PlanParameters",
    "RestorationRow",
    "TonePolicy",
    "UnknownParameterError",
    "Variation",
    "apply_changes",
    "degradation_score",
    "enhance_image",
    "infer_parameters",
    "output_size",
    "plan_output_size",
    "request_device_bytes",
    "restoration_at",
    "tone_corrections",
]
