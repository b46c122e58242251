"""One enhance request's identity step: detect on the input, guard each output, count candidates."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from models.faces._detect import DetectedFace, detect_faces
from models.faces._guard import GuardDecision, guard_face, to_uint8
from models.faces._match import MATCH_THRESHOLD, FaceMatch, KnownProfile, count_known_subjects, match_faces
from models.faces._models import FaceModels


@dataclass(frozen=True)
class IdentityPolicy:
    """``match_threshold``: largest face-to-profile distance counted as a match; ``guard``: run the
    identity guard; ``max_drift``: the embedding drift (input → output) it tolerates per face;
    ``blend_steps``: weights of the softer face it tries, in order; ``min_face``: smallest face, px;
    ``max_work_pixels``: the detector's working-copy budget (None: by device, see ``detect_faces``)."""

    match_threshold: float = MATCH_THRESHOLD
    guard: bool = True
    max_drift: float = 0.2
    blend_steps: tuple[float, ...] = (0.5, 0.75, 1.0)
    min_face: int = 40
    max_work_pixels: float | None = None


@dataclass(frozen=True)
class OutputFace:
    """One input face as it came out on one output: its identity ``drift`` (embedding distance, input
    → output as enhanced), what the ``guard`` did (``None``: the guard is off) and the candidate it
    ``matched`` (``None``: none within the threshold)."""

    drift: float
    guard: GuardDecision | None = None
    matched: FaceMatch | None = None


@dataclass(frozen=True)
class FaceReport:
    """One face found on the input (``face``: its box in the input's pixels and the detector's
    confidence) and how it came out on each output, in output order."""

    face: DetectedFace
    outputs: list[OutputFace]


@dataclass(frozen=True)
class IdentityReport:
    """The identity step of one request, for ``X-Enhance-Parameters``: the ``faces`` found on the input,
    the ``policy`` they were guarded and matched under (``None`` when no face was found: nothing was
    guarded or matched), and seconds per step (``detect_s``; ``embed_guard_match_s`` when faces were
    found)."""

    faces: list[FaceReport]
    policy: IdentityPolicy | None
    timings: dict[str, float]


@dataclass(frozen=True)
class IdentityResult:
    """The outputs after the guard, each in the dtype it was given (uint8 h×w×3, or float h×w×3 in
    [0, 1]; the given arrays themselves unless a face on them was softened), ``counts`` for
    ``known_subjects``, and the ``report`` of the step (``None``: no identity step ran, as when the
    service has no face models)."""

    images: list[np.ndarray]
    counts: dict[str, int]
    report: IdentityReport | None


def identify_outputs(
    source: np.ndarray,
    outputs: Sequence[np.ndarray],
    models: FaceModels,
    candidates: Sequence[KnownProfile],
    policy: IdentityPolicy,
    faces: Sequence[DetectedFace] | None = None,
) -> IdentityResult:
    """Detect faces on ``source`` (the input, float32 H×W×3 in [0, 1], sRGB), map them onto every
    output (h×w×3, the same aspect, RGB: uint8 as the pipeline quantises them, or float in [0, 1]),
    embed them on each output, guard them, and match them one-to-one against ``candidates``. Only
    candidates can be counted or named in the report. ``faces``: the faces already detected on
    ``source`` (by the same detector, e.g. during analysis), to skip detecting them again.

    Each returned image has its output's dtype. A uint8 output is embedded as is and converted to
    float only when a face on it is softened; the softened result is re-quantised with
    :func:`to_uint8`. With no face found, the outputs are returned untouched (the same arrays).

    Raises:
        ValueError: ``source`` is not floating point, or an output is neither uint8 nor floating point.
    """
    if not np.issubdtype(source.dtype, np.floating):
        raise ValueError(f"source must be floating point in [0, 1] (float32), got dtype {source.dtype}")
    for given in outputs:
        if given.dtype != np.uint8 and not np.issubdtype(given.dtype, np.floating):
            raise ValueError(f"outputs must be uint8 or floating point in [0, 1], got dtype {given.dtype}")
    timings: dict[str, float] = {}
    mark = time.perf_counter()
    source_u8 = to_uint8(source)
    if faces is None:
        faces = detect_faces(source_u8, models, min_face=policy.min_face, max_work_pixels=policy.max_work_pixels)
    timings["detect_s"] = time.perf_counter() - mark
    if not faces:
        return IdentityResult(list(outputs), {}, IdentityReport(faces=[], policy=None, timings=timings))
    mark = time.perf_counter()
    references = models.embed(source_u8, [face.box for face in faces])
    images: list[np.ndarray] = []
    per_output: list[list[FaceMatch]] = []
    per_face: list[list[OutputFace]] = [[] for _ in faces]
    for given in outputs:
        scale = given.shape[1] / source.shape[1]
        boxes = [face.box.scaled(scale) for face in faces]
        quantised = given.dtype == np.uint8
        output = given
        output_u8 = given if quantised else to_uint8(given)
        # Every face of the output in one batch; after a face is softened the output has changed, so
        # the faces after it are embedded again on the softened output.
        embeddings = models.embed(output_u8, boxes)
        decisions: list[GuardDecision | None] = []
        softened = False
        for index, box in enumerate(boxes):
            if policy.guard:
                output, output_u8, embeddings[index], guarded = guard_face(
                    output,
                    output_u8,
                    source_u8,
                    box,
                    references[index],
                    models,
                    max_drift=policy.max_drift,
                    blend_steps=policy.blend_steps,
                    embedding=None if softened else embeddings[index],
                )
                softened = softened or guarded.blend > 0
                decisions.append(guarded)
            else:
                decisions.append(None)
        matches = match_faces(embeddings, candidates, policy.match_threshold)
        by_face = {match.face: match for match in matches}
        for index, decision in enumerate(decisions):
            drift = (
                decision.drift if decision is not None else float(np.linalg.norm(embeddings[index] - references[index]))
            )
            per_face[index].append(OutputFace(drift=drift, guard=decision, matched=by_face.get(index)))
        images.append(output_u8 if quantised else output)
        per_output.append(matches)
    timings["embed_guard_match_s"] = time.perf_counter() - mark
    report = IdentityReport(
        faces=[FaceReport(face, outputs) for face, outputs in zip(faces, per_face, strict=True)],
        policy=policy,
        timings=timings,
    )
    return IdentityResult(images, count_known_subjects(per_output), report)
