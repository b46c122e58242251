"""Optional features of this installation and whether each is on.

An offline bundle can leave out what only one feature needs (``python -m weights bundle --without
imagecodecs|faces``, or ``--only realesrgan-x4plus``); the service then starts with that feature off,
logs it at start, lists it in ``/readyz`` and answers a request that needs it with a clear 400.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

import weights
from models.pipeline import FaceModels, high_bit_depth_available
from server.runtime import load_face_models
from server.settings import Settings

logger = logging.getLogger(__name__)

IDENTITY = "identity"
HIGH_BIT_DEPTH = "high_bit_depth"
ILLUSTRATION_NETWORK = "illustration_network"
# What a request that needs identity gets (400 BAD_REQUEST) when the face models are not installed.
IDENTITY_OFF = (
    "Identity features are off on this server: its face models are not installed (an offline install "
    "made without faces). Profiles, profile_ids and [[profile_id]] tokens need them; see GET /readyz."
)


@dataclass(frozen=True)
class Feature:
    """One optional feature: on or off, and a sentence saying what that means here."""

    name: str
    enabled: bool
    detail: str


def load_identity(settings: Settings) -> tuple[FaceModels | None, Feature]:
    """The face models, or ``None`` with the identity feature off when they cannot be had here (the
    runtime is not installed, or the model files are missing and cannot be pulled). Blocking."""
    try:
        models = load_face_models(settings)
    except ImportError as error:  # a library the face models need was left out
        detail = f"{error.name or error} is not installed: profiles and profile_ids are refused"
        return None, Feature(IDENTITY, False, detail)
    except weights.WeightsError as error:
        detail = f"face model files unavailable ({error}): profiles and profile_ids are refused"
        return None, Feature(IDENTITY, False, detail)
    return models, Feature(IDENTITY, True, "face models loaded: profiles, known_subjects counts, identity guard")


def high_bit_depth() -> Feature:
    """Whether 16-bit PNG/TIFF inputs keep 16-bit precision (imagecodecs installed)."""
    if high_bit_depth_available():
        return Feature(HIGH_BIT_DEPTH, True, "imagecodecs installed: 16-bit PNG/TIFF inputs keep 16-bit precision")
    return Feature(HIGH_BIT_DEPTH, False, "imagecodecs is not installed: 16-bit PNG/TIFF inputs are decoded at 8 bits")


def illustration_network(loaded: Mapping[str, object]) -> Feature:
    """Whether illustrations get their own network (``loaded``: the engine's networks by content)."""
    if "illustration" in loaded and loaded["illustration"] is not loaded.get("photo"):
        return Feature(ILLUSTRATION_NETWORK, True, "illustrations use realesrgan-x4plus-anime")
    return Feature(
        ILLUSTRATION_NETWORK, False, "no realesrgan-x4plus-anime network loaded: illustrations use the photo network"
    )


def log_features(features: Mapping[str, Feature]) -> None:
    """One line per feature at start: off ones as warnings."""
    for feature in features.values():
        if feature.enabled:
            logger.info("feature %s on: %s", feature.name, feature.detail)
        else:
            logger.warning("feature %s OFF: %s", feature.name, feature.detail)
