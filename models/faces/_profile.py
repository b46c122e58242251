"""Building a profile: find the person present across the references, reject outliers, keep embeddings."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from models.faces._detect import DetectedFace
from models.faces._match import MATCH_THRESHOLD

# Two faces closer than this are taken for the same person while grouping references.
SAME_PERSON = MATCH_THRESHOLD
# A face further than this from the centroid of the others is an outlier (another person, or a bad crop).
OUTLIER_DISTANCE = MATCH_THRESHOLD
# A second person present in at least this share of the references the first is in: no one dominates.
AMBIGUITY_RATIO = 0.75
MIN_USABLE = 3
MIN_USABLE_SHARE = 0.5


class ProfileBuildError(ValueError):
    """Raised by :func:`build_profile` when the references do not define one person; the message is
    for people (it becomes the profile's ERROR message)."""


@dataclass(frozen=True)
class ReferenceFaces:
    """What one reference gave: its faces and their embeddings (float32 (len(faces), 128)), or the
    reason it could not be used (``problem``: "could not be fetched", ...)."""

    faces: list[DetectedFace] = field(default_factory=list)
    embeddings: np.ndarray = field(default_factory=lambda: np.zeros((0, 128), dtype=np.float32))
    problem: str | None = None


@dataclass(frozen=True)
class BuiltProfile:
    """The person found: one embedding per kept reference (float32 (K, 128)), their centroid (128,),
    ``members`` (reference index, face index) in the same order, and the references left out with why."""

    embeddings: np.ndarray
    centroid: np.ndarray
    members: list[tuple[int, int]]
    left_out: dict[int, str]

    @property
    def picture_member(self) -> tuple[int, int]:
        """The member closest to the centroid (its face becomes the profile picture)."""
        distances = np.linalg.norm(self.embeddings - self.centroid, axis=1)
        return self.members[int(np.argmin(distances))]


def _numbers(indices: Sequence[int]) -> str:
    return ", ".join(f"#{i + 1}" for i in sorted(indices))


def _group(faces: list[tuple[int, int, np.ndarray]], references: int) -> tuple[dict[int, int], np.ndarray]:
    """The largest group of mutually close faces, at most one per reference: {reference: face}, centroid."""
    vectors = np.stack([vector for _, _, vector in faces])
    close = np.linalg.norm(vectors[:, None] - vectors[None], axis=2) < SAME_PERSON
    owners = np.array([ref for ref, _, _ in faces])
    support = [len(set(owners[close[i]].tolist())) for i in range(len(faces))]
    anchor = int(np.argmax(support))
    centroid = vectors[anchor]
    chosen: dict[int, int] = {}
    for _ in range(3):  # refine: nearest face per reference to the current centroid
        chosen = {}
        distances = np.linalg.norm(vectors - centroid, axis=1)
        for ref in range(references):
            candidates = [i for i in range(len(faces)) if owners[i] == ref and distances[i] < SAME_PERSON]
            if candidates:
                chosen[ref] = min(candidates, key=lambda i: distances[i])
        if not chosen:
            break
        centroid = vectors[list(chosen.values())].mean(axis=0)
    return chosen, centroid


def build_profile(references: Sequence[ReferenceFaces]) -> BuiltProfile:
    """Decide which person ``references`` are about and keep one embedding per reference showing them.

    The person is the one whose face occurs in the most references (faces within ``SAME_PERSON`` of
    each other, at most one per reference); each kept face must lie within ``OUTLIER_DISTANCE`` of the
    centroid of the other kept faces. Needs at least ``max(3, half the references)`` kept faces.

    Raises:
        ProfileBuildError: too few references show a usable face, no single person dominates, or a
            second person is present about as often as the first.
    """
    total = len(references)
    needed = max(MIN_USABLE, math.ceil(MIN_USABLE_SHARE * total))
    left_out = {i: ref.problem for i, ref in enumerate(references) if ref.problem is not None}
    left_out |= {i: "no face found" for i, ref in enumerate(references) if ref.problem is None and not ref.faces}
    faces = [
        (ref_index, face_index, ref.embeddings[face_index])
        for ref_index, ref in enumerate(references)
        for face_index in range(len(ref.faces))
    ]
    if len({ref for ref, _, _ in faces}) < needed:
        raise ProfileBuildError(_too_few(total, needed, left_out, kept=len({ref for ref, _, _ in faces})))
    chosen, _ = _group(faces, total)
    vectors = {ref: faces[i][2] for ref, i in chosen.items()}
    for ref in list(vectors):  # leave-one-out outlier rejection
        others = [vector for other, vector in vectors.items() if other != ref]
        if others and np.linalg.norm(vectors[ref] - np.mean(others, axis=0)) > OUTLIER_DISTANCE:
            del vectors[ref]
    for ref_index in {ref for ref, _, _ in faces} - set(vectors):
        left_out[ref_index] = "shows someone else"
    if len(vectors) < needed:
        raise ProfileBuildError(_too_few(total, needed, left_out, kept=len(vectors)))
    leader = {chosen[ref] for ref in vectors}
    rest = [face for index, face in enumerate(faces) if index not in leader]
    if rest:
        second, _ = _group(rest, total)
        if len(second) >= AMBIGUITY_RATIO * len(vectors):
            raise ProfileBuildError(
                f"The references show more than one person about equally often: one person is in "
                f"{len(vectors)} of {total} references, another in {len(second)}. Use references where "
                "the same one person is present in most photos."
            )
    members = sorted(vectors)
    embeddings = np.stack([vectors[ref] for ref in members]).astype(np.float32)
    return BuiltProfile(
        embeddings=embeddings,
        centroid=embeddings.mean(axis=0),
        members=[(ref, faces[chosen[ref]][1]) for ref in members],
        left_out=left_out,
    )


def _too_few(total: int, needed: int, left_out: dict[int, str], *, kept: int) -> str:
    reasons: dict[str, list[int]] = {}
    for index, reason in left_out.items():
        reasons.setdefault(reason, []).append(index)
    detail = "; ".join(f"{reason}: {len(indices)} ({_numbers(indices)})" for reason, indices in sorted(reasons.items()))
    return (
        f"Only {kept} of {total} references show the same person's face; at least {needed} are needed. "
        f"{detail or 'No single person appears in enough references'}."
    )
