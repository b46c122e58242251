"""Matching faces to candidate profiles: one-to-one, under a calibrated distance threshold.

A profile is represented by the mean (centroid) of its references' embeddings; a face's distance to
a profile is the Euclidean distance from its embedding to that centroid. The threshold was chosen on
labelled real photos with augmentations (``tests/benchmarks/bench_faces.py``; rates in docs/identity.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from models.faces._models import EMBEDDING_SIZE

# Calibrated on augmented real photos (see the module docstring): no different-person pair fell
# below it, and it keeps the true-match rate of profile-to-face distances measured in docs/identity.md.
MATCH_THRESHOLD = 0.55
_INFEASIBLE = 1e6


@dataclass(frozen=True)
class KnownProfile:
    """A candidate identity: ``profile_id`` and ``centroid``, float32 (128,)."""

    profile_id: str
    centroid: np.ndarray

    def __post_init__(self) -> None:
        if self.centroid.shape != (EMBEDDING_SIZE,):
            raise ValueError(f"a centroid has shape ({EMBEDDING_SIZE},), got {self.centroid.shape}")


@dataclass(frozen=True)
class FaceMatch:
    """Face ``face`` (index into the embeddings) is profile ``profile_id`` at ``distance``."""

    face: int
    profile_id: str
    distance: float


def profile_distances(embeddings: np.ndarray, profiles: Sequence[KnownProfile]) -> np.ndarray:
    """Distances (N, P) from each embedding (N, 128) to each profile's centroid."""
    if embeddings.ndim != 2 or embeddings.shape[1] != EMBEDDING_SIZE:
        raise ValueError(f"embeddings must be (N, {EMBEDDING_SIZE}), got {embeddings.shape}")
    if not profiles or not len(embeddings):
        return np.zeros((len(embeddings), len(profiles)), dtype=np.float32)
    centroids = np.stack([profile.centroid for profile in profiles])
    return np.linalg.norm(embeddings[:, None, :] - centroids[None, :, :], axis=2)


def match_faces(
    embeddings: np.ndarray, profiles: Sequence[KnownProfile], threshold: float = MATCH_THRESHOLD
) -> list[FaceMatch]:
    """Assign faces to profiles one-to-one: each face to at most one profile, each profile to at most
    one face, only pairs closer than ``threshold``; among such assignments, as many pairs as possible,
    then the smallest total distance (Hungarian algorithm). Sorted by face index."""
    distances = profile_distances(embeddings, profiles)
    if distances.size == 0:
        return []
    cost = np.where(distances < threshold, distances, _INFEASIBLE)
    rows, cols = linear_sum_assignment(cost)
    matches = [
        FaceMatch(face=int(r), profile_id=profiles[c].profile_id, distance=float(distances[r, c]))
        for r, c in zip(rows, cols, strict=True)
        if distances[r, c] < threshold
    ]
    return sorted(matches, key=lambda match: match.face)


def count_known_subjects(matches_per_output: Sequence[Sequence[FaceMatch]]) -> dict[str, int]:
    """``known_subjects.counts``: for each profile, the number of outputs it was matched in (at most
    once per output, whatever the number of faces)."""
    counts: dict[str, int] = {}
    for matches in matches_per_output:
        for profile_id in {match.profile_id for match in matches}:
            counts[profile_id] = counts.get(profile_id, 0) + 1
    return counts
