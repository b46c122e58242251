"""POST /v1/phota/edit, /generate and /remix: routes of the hosted API that this service does not offer.

The hosted API's own clients (SDK providers, node packs) also call these generative routes; a bare 404
would read as a wrong base URL. Each answers 501 ``NOT_IMPLEMENTED`` after authentication (no key:
401 as everywhere), with a detail those clients show their users: what is not offered, what this
service offers instead, and where the route does exist."""

from __future__ import annotations

from typing import Any, NoReturn

from fastapi import APIRouter

from server.deps import CurrentAccount
from server.errors import NotOfferedError
from server.schemas import ErrorResponse

router = APIRouter(tags=["not offered here"])

HOSTED_BASE_URL = "https://api.photalabs.com"
OFFERED_INSTEAD = (
    "This service offers enhancement: POST /v1/phota/enhance restores and upscales a photo (optionally "
    "steered by a prompt), /v1/phota/profiles registers people for it to recognise, and /v1/phota/jobs "
    "follows an enhance sent with async: true."
)


def not_offered_detail(what: str, name: str) -> str:
    """The 501 detail of ``POST /v1/phota/<name>``, whose feature ``what`` describes."""
    return (
        f"{what} (POST /v1/phota/{name}) is a generative feature of the hosted Phota API that this "
        f"self-hosted service does not offer. {OFFERED_INSTEAD} Edit, generate and remix are available on "
        f"the hosted API ({HOSTED_BASE_URL})."
    )


EDIT_DETAIL = not_offered_detail("Editing an image from a prompt", "edit")
GENERATE_DETAIL = not_offered_detail("Generating images from a prompt", "generate")
REMIX_DETAIL = not_offered_detail("Remixing an image", "remix")


def _documented(detail: str) -> dict[int | str, dict[str, Any]]:
    return {
        501: {
            "model": ErrorResponse,
            "description": "NOT_IMPLEMENTED: not offered by this service; the detail says what is offered instead",
            "content": {
                "application/json": {"example": {"code": "NOT_IMPLEMENTED", "detail": detail, "request_id": "…"}}
            },
        }
    }


@router.post(
    "/edit",
    status_code=501,
    response_model=None,
    responses=_documented(EDIT_DETAIL),
    summary="Edit (hosted only: 501 here)",
)
async def edit(account: CurrentAccount) -> NoReturn:
    """The hosted API's prompt-driven edit. Not offered here: 501 ``NOT_IMPLEMENTED``."""
    raise NotOfferedError(EDIT_DETAIL)


@router.post(
    "/generate",
    status_code=501,
    response_model=None,
    responses=_documented(GENERATE_DETAIL),
    summary="Generate (hosted only: 501 here)",
)
async def generate(account: CurrentAccount) -> NoReturn:
    """The hosted API's image generation. Not offered here: 501 ``NOT_IMPLEMENTED``."""
    raise NotOfferedError(GENERATE_DETAIL)


@router.post(
    "/remix",
    status_code=501,
    response_model=None,
    responses=_documented(REMIX_DETAIL),
    summary="Remix (hosted only: 501 here)",
)
async def remix(account: CurrentAccount) -> NoReturn:
    """The hosted API's remix. Not offered here: 501 ``NOT_IMPLEMENTED``."""
    raise NotOfferedError(REMIX_DETAIL)
