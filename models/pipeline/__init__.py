"""The enhance pipeline, and the one public face of ``models/``: the server imports from here only.

* :func:`enhance_request` (:class:`PipelineRequest`, :class:`EnhancePipeline` → :class:`PipelineOutcome`)
  — the conductor: decode, analyse, steer, super-resolve, identify, encode, explain, in one worker slot.
  The prompt is read once, by :func:`read_prompt` (the candidate ids: :func:`candidate_ids`); the
  explanation is complete when it returns, save the delivery's timings (:meth:`Explanation.delivered`).
* :func:`load_pipeline` → :class:`PipelineModels` — the networks (:class:`NetworkWeights`, or the test
  stand-in) and the face models on a device; :func:`default_face_detector` — analysis's CPU detector.
* :func:`build_identity_profile` → :class:`ProfileOutcome` — the profile conductor: references in,
  embeddings and a picture out (:func:`check_reference`: a reference's decode check).
* :func:`check_source` → :class:`SourceCheck` — the cheap check job submission runs on a source.
* The stages on their own: :func:`decode`, :func:`analyse`, :func:`steer` (→ :class:`Steered`),
  :func:`super_resolve` (→ :class:`Rendered`), :func:`identify`, :func:`choose_format` and
  :func:`encode`, :func:`explain` (→ :class:`Explanation`, what ``X-Enhance-Parameters`` carries;
  its sections serialised by :func:`estimates_json`, :func:`prompt_json`, :func:`decision_json` and
  :func:`identity_json`, the one place the header's JSON is written; :class:`Timings`).
* :func:`enhance_image` → :class:`EnhanceResult` — analyse, steer and super-resolve on an already
  decoded image (benchmarks, pixel tests).
* :func:`infer_parameters` → :class:`EnhancePlan` — the policy (tables in ``_policy``: restoration
  by degradation score, tone limits, size rules, variations).
* :data:`VARIATIONS` — the meaning of output 1..4 of a request.
* Re-exported from the stage packages, for the server: the domain errors (``models.errors``), the
  face types a request or the service holds (``KnownProfile``, ``FaceModels``, ``IdentityPolicy``,
  ``ProfileBuildError``), what the server's runtime drives (``models.sr``: the tile batcher, memory
  budget, cancel token, network registry, tile size and compilation) and
  ``high_bit_depth_available`` (``models.imageio``).
"""

from models.errors import (
    EnhanceError,
    ImageFetchError,
    InvalidImageError,
    ModelOutOfMemoryError,
    RequestCancelledError,
    UnsupportedFormatError,
)
from models.faces import FaceModels, IdentityPolicy, KnownProfile, ProfileBuildError
from models.imageio import high_bit_depth_available
from models.pipeline._conductor import (
    CHECK_SIDE,
    EnhancePipeline,
    EnhanceResult,
    PipelineOutcome,
    PipelineRequest,
    SourceCheck,
    Steered,
    analyse,
    analyse_with_faces,
    candidate_ids,
    check_source,
    choose_format,
    decode,
    encode,
    enhance_image,
    enhance_request,
    explain,
    identify,
    networks_device,
    read_prompt,
    steer,
)
from models.pipeline._explain import (
    Explanation,
    NetworkRun,
    RenderTimings,
    Timings,
    VariationReport,
    decision_json,
    estimates_json,
    identity_json,
    prompt_json,
)
from models.pipeline._load import (
    FACE_DETECTOR_FILE,
    NetworkWeights,
    PipelineModels,
    default_face_detector,
    load_pipeline,
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
from models.pipeline._profile import (
    REFERENCE_MAX_SIDE,
    ProfileOutcome,
    build_identity_profile,
    check_reference,
)
from models.pipeline._render import (
    EnhancedImage,
    EnhanceOptions,
    Rendered,
    plan_output_size,
    request_device_bytes,
    super_resolve,
)
from models.prompt import Steering
from models.sr import (
    COMPILE_MODES,
    TEST_NETWORK,
    BatchStats,
    CancelToken,
    MemoryBudget,
    PrecisionError,
    SRModel,
    SRNetwork,
    TileBatcher,
    UnknownNetworkError,
    choose_precision,
    choose_tile_size,
    compile_network,
    configure_threads,
    detect_capabilities,
    get_network,
    int8_refusal,
    requested_precision,
)

__all__ = [
    "CHECK_SIDE",
    "COMPILE_MODES",
    "DEGRADATION",
    "FACE_DETECTOR_FILE",
    "ILLUSTRATION_THRESHOLD",
    "REFERENCE_MAX_SIDE",
    "RESTORATION_TABLE",
    "TEST_NETWORK",
    "TONE",
    "VARIATIONS",
    "BatchStats",
    "CancelToken",
    "DegradationScale",
    "EnhanceError",
    "EnhanceOptions",
    "EnhancePipeline",
    "EnhancePlan",
    "EnhanceResult",
    "EnhancedImage",
    "Explanation",
    "FaceModels",
    "IdentityPolicy",
    "ImageFetchError",
    "InvalidImageError",
    "KnownProfile",
    "MemoryBudget",
    "ModelOutOfMemoryError",
    "NetworkRun",
    "NetworkWeights",
    "OutputParameters",
    "PipelineModels",
    "PipelineOutcome",
    "PipelineRequest",
    "PlanParameters",
    "PrecisionError",
    "ProfileBuildError",
    "ProfileOutcome",
    "RenderTimings",
    "Rendered",
    "RequestCancelledError",
    "RestorationRow",
    "SRModel",
    "SRNetwork",
    "SourceCheck",
    "Steered",
    "Steering",
    "TileBatcher",
    "Timings",
    "TonePolicy",
    "UnknownNetworkError",
    "UnknownParameterError",
    "UnsupportedFormatError",
    "Variation",
    "VariationReport",
    "analyse",
    "analyse_with_faces",
    "apply_changes",
    "build_identity_profile",
    "candidate_ids",
    "check_reference",
    "check_source",
    "choose_format",
    "choose_precision",
    "choose_tile_size",
    "compile_network",
    "configure_threads",
    "decision_json",
    "decode",
    "default_face_detector",
    "degradation_score",
    "detect_capabilities",
    "encode",
    "enhance_image",
    "enhance_request",
    "estimates_json",
    "explain",
    "get_network",
    "high_bit_depth_available",
    "identify",
    "identity_json",
    "infer_parameters",
    "int8_refusal",
    "load_pipeline",
    "networks_device",
    "output_size",
    "plan_output_size",
    "prompt_json",
    "read_prompt",
    "request_device_bytes",
    "requested_precision",
    "restoration_at",
    "steer",
    "super_resolve",
    "tone_corrections",
]
