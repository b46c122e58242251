"""The identity side of enhance: the face models, the candidates' profiles, the guard and the counts."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import weights
from models.faces import FaceModelFiles, FaceModels, IdentityPolicy, KnownProfile, identify_outputs
from models.pipeline import EnhanceResult
from server.errors import FeatureUnavailableError, NotFoundError, ProfileNotReadyError
from server.settings import Settings
from server.storage.profiles import ProfileStore

logger = logging.getLogger(__name__)

IDENTITY_OFF = (
    "Identity features are off on this server: its face models are not installed (an offline install "
    "made without faces). Profiles, profile_ids and [[profile_id]] tokens need them; see GET /readyz."
)

FACE_FILES = {
    "embedder": "dlib-face-recognition-resnet-v1",
    "landmarks": "dlib-shape-predictor-5",
    "detector": "dlib-mmod-face-detector",
}


def load_face_models(settings: Settings) -> FaceModels:
    """dlib's face models from the weights folder (pulled first when missing and allowed)."""
    directory = settings.weights_dir or weights.default_weights_dir()
    names = list(FACE_FILES.values())
    if settings.auto_pull_weights:
        try:
            weights.verify_model_files(directory, names)
        except weights.WeightsError:
            logger.info("face model files missing or invalid in %s: pulling them now", directory)
            weights.pull_model_files(directory, names)
    paths: dict[str, Path] = {role: weights.model_file_path(name, directory) for role, name in FACE_FILES.items()}
    return FaceModels(FaceModelFiles(**paths))


def identity_policy_of(settings: Settings) -> IdentityPolicy:
    return IdentityPolicy(
        match_threshold=settings.face_match_threshold,
        guard=settings.identity_guard,
        max_drift=settings.identity_max_drift,
        min_face=settings.face_min_size,
    )


class Identity:
    """Resolves a request's candidate profiles and runs the identity step on its outputs."""

    def __init__(self, models: FaceModels | None, store: ProfileStore, settings: Settings) -> None:
        self.models = models
        self._store = store
        self._policy = identity_policy_of(settings)

    def candidates(self, account_id: str, profile_ids: list[str]) -> list[KnownProfile]:
        """The account's READY profiles ``profile_ids`` (blocking).

        Raises:
            NotFoundError: an id is unknown or belongs to another account.
            ProfileNotReadyError: a profile exists but is not READY.
        """
        if self.models is None and profile_ids:
            raise FeatureUnavailableError(IDENTITY_OFF)
        found = self._store.ready_embeddings(account_id, profile_ids)
        for profile_id in profile_ids:
            if profile_id not in found:
                raise NotFoundError(f"Unknown profile id {profile_id!r}.")
        for profile_id in profile_ids:
            status, _ = found[profile_id]
            if status != "READY":
                raise ProfileNotReadyError(
                    f"Profile {profile_id!r} is {status}, not READY; poll GET /v1/phota/profiles/{profile_id}/status."
                )
        return [
            KnownProfile(profile_id=profile_id, centroid=embeddings.mean(axis=0))
            for profile_id in profile_ids
            for _, embeddings in [found[profile_id]]
            if embeddings is not None
        ]

    def apply(
        self, source: Any, result: EnhanceResult, candidates: list[KnownProfile]
    ) -> tuple[EnhanceResult, dict[str, int], dict[str, Any]]:
        """Guard and count on ``result``'s outputs (blocking; run it through the worker). ``source`` is
        the decoded input (float32 H×W×3 in [0, 1]). Returns the guarded result, the counts and the
        report for ``X-Enhance-Parameters``. With the identity feature off: unchanged, no counts."""
        if self.models is None:
            return result, {}, {"enabled": False}
        outcome = identify_outputs(
            source, [image.rgb for image in result.images], self.models, candidates, self._policy
        )
        images = [replace(image, rgb=rgb) for image, rgb in zip(result.images, outcome.images, strict=True)]
        return replace(result, images=images), outcome.counts, outcome.report
