"""GET /v1/phota/webhook-secret: the key that signs this account's job callbacks."""

from __future__ import annotations

from fastapi import APIRouter

from server.deps import CurrentAccount, ServicesDep
from server.schemas import ErrorResponse, WebhookSecretResponse

router = APIRouter(tags=["webhooks"])


@router.get(
    "/webhook-secret",
    response_model=WebhookSecretResponse,
    responses={401: {"model": ErrorResponse, "description": "Missing or invalid API key"}},
)
async def get_webhook_secret(account: CurrentAccount, services: ServicesDep) -> WebhookSecretResponse:
    """The account's webhook secret: callbacks carry ``X-Phota-Signature: sha256=<hex>``, the
    HMAC-SHA256 of the raw request body under this secret. Created on first use, then stable."""
    return WebhookSecretResponse(webhook_secret=await services.started_jobs().webhook_secret(account))
