"""The profiles endpoints: add, list ids, status, profile picture, delete."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import Response

from server.deps import CurrentAccount, ServicesDep
from server.profiles import (
    AddProfileRequest,
    AddProfileResponse,
    DeleteProfileResponse,
    ProfileIdsResponse,
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


@router.post("/add", response_model=AddProfileResponse, responses=_UNAUTHORIZED)
async def add_profile(body: AddProfileRequest, account: CurrentAccount, services: ServicesDep) -> AddProfileResponse:
    """Create a profile from 5..50 reference photos of one person (standard tier 10..50, fast 5..10).
    Answers at once; poll ``/profiles/{profile_id}/status`` until READY or ERROR."""
    record = await services.started_profiles().add(body, account)
    return AddProfileResponse(profile_id=record.id)


@router.get("/ids", response_model=ProfileIdsResponse, responses=_UNAUTHORIZED)
async def profile_ids(
    account: CurrentAccount,
    services: ServicesDep,
    tag: Annotated[Label | None, Query(max_length=128, description="Only profiles with this tag.")] = None,
) -> ProfileIdsResponse:
    """The caller's profile ids, oldest first."""
    return ProfileIdsResponse(profiles=await services.started_profiles().ids(account, tag))


@router.get(
    "/{profile_id}/status",
    response_model=ProfileStatusResponse,
    responses={**_UNAUTHORIZED, **_NOT_FOUND},
)
async def profile_status(profile_id: str, account: CurrentAccount, services: ServicesDep) -> ProfileStatusResponse:
    """VALIDATING → QUEUING → IN_PROGRESS → READY, or ERROR with a message saying why."""
    record = await services.started_profiles().get(account, profile_id)
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
async def profile_picture(profile_id: str, account: CurrentAccount, services: ServicesDep) -> Response:
    """A JPEG of the subject's face, once the profile is READY."""
    picture = await services.started_profiles().picture(account, profile_id)
    return Response(content=picture, media_type="image/jpeg")


@router.delete(
    "/{profile_id}",
    response_model=DeleteProfileResponse,
    responses={**_UNAUTHORIZED, **_NOT_FOUND},
)
async def delete_profile(profile_id: str, account: CurrentAccount, services: ServicesDep) -> DeleteProfileResponse:
    """Delete the profile and everything derived from its references (embeddings, picture), for good."""
    await services.started_profiles().delete(account, profile_id)
    return DeleteProfileResponse(profile_id=profile_id)
