"""Request and response schemas of the HTTP layer (errors, the 202 of a job, health, readiness, the
webhook secret), named as in the hosted API's OpenAPI document. The bodies the service's own parts
share live with them: enhance's in ``server.enhance_bodies``, the job document in ``server.jobs``,
the profiles' in ``server.profiles``."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from server.storage.jobs import JobStatus


class ErrorResponse(BaseModel):
    code: str
    detail: str
    request_id: str


class JobAccepted(BaseModel):
    """202 answer of ``POST /v1/phota/enhance`` with ``async: true`` (the job is stored durably first)."""

    job_id: str
    poll_url: str = Field(description="Absolute URL of GET /v1/phota/jobs/{job_id}.")
    status: JobStatus = Field(description="QUEUED for a new job; a resubmission shows the original job's status.")


class WebhookSecretResponse(BaseModel):
    """``GET /v1/phota/webhook-secret``: the key of the callbacks' ``X-Phota-Signature`` HMAC-SHA256."""

    webhook_secret: str


class HealthResponse(BaseModel):
    status: Literal["ok"]


class FeatureStatus(BaseModel):
    """One optional feature of this installation: on, or off and why (see the feature table in docs/install.md)."""

    enabled: bool
    detail: str


class ReadinessResponse(BaseModel):
    status: Literal["ready", "not_ready"]
    device: str | None = None
    network: str | None = None
    mode: Literal["real", "test"] | None = Field(
        default=None, description="'test': the offline test mode, no network loaded (network 'none')."
    )
    precision: str | None = Field(
        default=None, description="What the network computes in: float32, bfloat16, float16 (ENHANCE_PRECISION)."
    )
    precision_reason: str | None = Field(default=None, description="Why that precision was chosen at start.")
    features: dict[str, FeatureStatus] | None = None


# Answers every route behind an API key can give, whatever its own work: documented on each of them
# (merged in where the routers are included) so that clients and schema checkers know them.
AUTHENTICATED_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "Malformed request (e.g. a body that is not UTF-8 JSON)"},
    401: {"model": ErrorResponse, "description": "Missing or invalid API key (UNAUTHORIZED)"},
    413: {"model": ErrorResponse, "description": "Request body larger than ENHANCE_MAX_BODY_BYTES"},
    429: {
        "model": ErrorResponse,
        "description": "RATE_LIMITED: the account passed ENHANCE_RATE_LIMIT_PER_MINUTE or "
        "ENHANCE_ACCOUNT_MAX_CONCURRENT; retry after Retry-After seconds",
        "headers": {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}},
    },
    503: {"model": ErrorResponse, "description": "Starting up or overloaded (Retry-After)"},
}
