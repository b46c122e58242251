"""The profiles endpoints: add, list ids, status, profile picture, delete."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from server.deps import CurrentAccount
from server.errors import NotReadyError
from server.profiles import (
    AddProfileRequest,
    AddProfileResponse,
    DeleteProfileResponse,
    ProfileIdsResponse,
    ProfileService,
    ProfileStatusResponse,
)
from server.schemas import ErrorResponse
from server.stored_text import Label

router = APIRouter(prefix="/profiles", tags=["profiles"])

_UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "Missing or invalid API key"}
}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "Unknown profile id, or another account's"}
}


def profiles_of(request: Request) -> ProfileService:
    service: ProfileService | None = getattr(request.app.state, "profiles", None)
    if service is None:
        raise NotReadyError("The profile service is still starting; retry shortly.")
    return service


ProfilesDep = Annotated[ProfileService, Depends(profiles_of)]


@router.post("/add", response_model=AddProfileResponse, responses=_UNAUTHORIZED)
async def add_profile(body: AddProfileRequest, account: CurrentAccount, profiles: ProfilesDep) -> AddProfileResponse:
    """Create a profile from 5..50 reference photos of one person (standard tier 10..50, fast 5..10).
    Answers at once; poll ``/profiles/{profile_id}/status`` until READY or ERROR."""
    record = await profiles.add(body, account)
    return AddProfileResponse(profile_id=record.id)


@router.get("/ids", response_model=ProfileIdsResponse, responses=_UNAUTHORIZED)
async def profile_ids(
    account: CurrentAccount,
    profiles: ProfilesDep,
    tag: Annotated[Label | None, Query(max_length=128, description="Only profiles with this tag.")] = None,
) -> ProfileIdsResponse:
    """The caller's profile ids, oldest first."""
    return ProfileIdsResponse(profiles=await profiles.ids(account, tag))


@router.get(
    "/{profile_id}/status",
    response_model=ProfileStatusResponse,
    responses={**_UNAUTHORIZED, **_NOT_FOUND},
)
async def profile_status(profile_id: str, account: CurrentAccount, profiles: ProfilesDep) -> ProfileStatusResponse:
    """VALIDATING → QUEUING → IN_PROGRESS → READY, or ERROR with a message saying why."""
    record = await profiles.get(account, profile_id)
    return ProfileStatusResponse(profile_id=record.id, status=record.status, message=record.message)


@router.get(
    "/{profile_id}/profile_picture",
    response_class=Response,
    responses={
        200: {"content": {"image/jpeg": {}}, "description": "A JPEG of the subject's face"},
        400: {"model": ErrorResponse, "description": "The profile is not READY (PROFILE_NOT_READY)"},
        **_UNAUTHORIZED,
        **_NOT_FOUND,
    },
)
async def profile_picture(profile_id: str, account: CurrentAccount, profiles: ProfilesDep) -> Response:
    """A JPEG of the subject's face, once the profile is READY."""
    picture = await profiles.picture(account, profile_id)
    return Response(content=picture, media_type="image/jpeg")


@router.delete(
    "/{profile_id}",
    response_model=DeleteProfileResponse,
    responses={**_UNAUTHORIZED, **_NOT_FOUND},
)
async def delete_profile(profile_id: str, account: CurrentAccount, profiles: ProfilesDep) -> DeleteProfileResponse:
    """Delete the profile and everything derived from its references (embeddings, picture), for good."""
    await profiles.delete(account, profile_id)
    return DeleteProfileResponse(profile_id=profile_id)
