"""One enhance request's identity step: detect on the input, guard each output, count candidates."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

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
class IdentityResult:
    """The outputs after the guard, each in the dtype it was given (uint8 h×w×3, or float h×w×3 in
    [0, 1]; the given arrays themselves unless a face on them was softened), ``counts`` for
    ``known_subjects``, and ``report`` for ``X-Enhance-Parameters``."""

    images: list[np.ndarray]
    counts: dict[str, int]
    report: dict[str, Any]


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
        return IdentityResult(list(outputs), {}, {"faces": [], "timings": _rounded(timings)})
    mark = time.perf_counter()
    references = models.embed(source_u8, [face.box for face in faces])
    images: list[np.ndarray] = []
    per_output: list[list[FaceMatch]] = []
    face_reports: list[dict[str, Any]] = [
        {"box": face.box.as_list(), "confidence": round(face.confidence, 2), "outputs": []} for face in faces
    ]
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
                    output, output_u8, source_u8, box, references[index], models,
                    max_drift=policy.max_drift, blend_steps=policy.blend_steps,
                    embedding=None if softened else embeddings[index],
                )  # fmt: skip
                softened = softened or guarded.blend > 0
                decisions.append(guarded)
            else:
                decisions.append(None)
        matches = match_faces(embeddings, candidates, policy.match_threshold)
        by_face = {match.face: match for match in matches}
        for index, decision in enumerate(decisions):
            entry: dict[str, Any] = {"drift": round(float(np.linalg.norm(embeddings[index] - references[index])), 3)}
            if decision is not None:
                entry = {"drift": round(decision.drift, 3), "guard": decision.action}
                if decision.blend:
                    entry |= {"blend": decision.blend, "drift_after": round(decision.drift_after, 3)}
            if index in by_face:
                entry |= {"match": by_face[index].profile_id, "distance": round(by_face[index].distance, 3)}
            face_reports[index]["outputs"].append(entry)
        images.append(output_u8 if quantised else output)
        per_output.append(matches)
    timings["embed_guard_match_s"] = time.perf_counter() - mark
    report = {
        "faces": face_reports,
        "guard": {"enabled": policy.guard, "max_drift": policy.max_drift},
        "match_threshold": policy.match_threshold,
        "timings": _rounded(timings),
    }
    return IdentityResult(images, count_known_subjects(per_output), report)


def _rounded(timings: dict[str, float]) -> dict[str, float]:
    return {key: round(value, 4) for key, value in timings.items()}
