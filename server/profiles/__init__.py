"""Profiles (known identities) and the identity side of enhance.

* :class:`ProfileService` — add, list, status, picture, delete; background builds that survive restarts.
* :class:`Identity` — a request's candidate profiles (404 / 400 ``PROFILE_NOT_READY``), the identity
  guard and ``known_subjects.counts`` on its outputs.
* :func:`load_face_models` — dlib's face models from the weights folder.
* The bodies of the profiles endpoints (:class:`AddProfileRequest`, ...).
"""

from server.profiles._identity import Identity, identity_policy_of, load_face_models
from server.profiles._schemas import (
    TIER_RANGES,
    AddProfileRequest,
    AddProfileResponse,
    DeleteProfileResponse,
    ProfileIdsResponse,
    ProfileStatusResponse,
)
from server.profiles._service import ProfileService

__all__ = [
    "TIER_RANGES",
    "AddProfileRequest",
    "AddProfileResponse",
    "DeleteProfileResponse",
    "Identity",
    "ProfileIdsResponse",
    "ProfileService",
    "ProfileStatusResponse",
    "identity_policy_of",
    "load_face_models",
]
