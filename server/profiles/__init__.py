"""Profiles (known identities) and the candidates of an enhance request.

* :class:`ProfileService` — add, list, status, picture, delete; background builds that survive restarts.
* :class:`ProfileCandidates` — a request's candidate profiles (404 / 400 ``PROFILE_NOT_READY``),
  resolved before it is admitted; the identity stage itself is ``models.pipeline.identify``.
* The bodies of the profiles endpoints (:class:`AddProfileRequest`, ...).
"""

from server.profiles._candidates import ProfileCandidates
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
    "ProfileCandidates",
    "ProfileIdsResponse",
    "ProfileService",
    "ProfileStatusResponse",
]
