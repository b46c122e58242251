"""Request and response schemas, named as in the hosted API's OpenAPI document."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from server.stored_text import StoredText


class EnhanceRequest(BaseModel):
    """Body of ``POST /v1/phota/enhance``. Unknown fields are ignored."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    image: str = Field(description="Raw base64, a data URL, or an http(s) URL of the image.")
    profile_ids: list[str] | None = Field(default=None, description="Candidate identities.")
    num_output_images: int = Field(default=1, ge=1, le=4)
    output_format: Literal["png", "jpg"] | None = Field(
        default=None, description="png or jpg; default png before 2026-05-08, jpg from then."
    )
    response_mode: Literal["bytes", "urls"] = "bytes"
    prompt: StoredText | None = None
    async_: bool = Field(default=False, alias="async")
    callback_url: StoredText | None = None
    client_request_id: StoredText | None = None


class KnownSubjects(BaseModel):
    counts: dict[str, int] = Field(default_factory=dict)


class EditResponse(BaseModel):
    """Response of enhance (shared with the hosted edit/generate endpoints)."""

    known_subjects: KnownSubjects = Field(default_factory=KnownSubjects)
    images: list[str] = Field(default_factory=list)
    download_urls: list[str] = Field(default_factory=list)


class ErrorResponse(BaseModel):
    code: str
    detail: str
    request_id: str


JobStatus = Literal["QUEUED", "RUNNING", "SUCCEEDED", "FAILED"]


class JobAccepted(BaseModel):
    """202 answer of ``POST /v1/phota/enhance`` with ``async: true`` (the job is stored durably first)."""

    job_id: str
    poll_url: str = Field(description="Absolute URL of GET /v1/phota/jobs/{job_id}.")
    status: JobStatus = Field(description="QUEUED for a new job; a resubmission shows the original job's status.")


class JobError(BaseModel):
    """Why a job FAILED: the same ``code`` and ``detail`` a synchronous request would have answered."""

    code: str
    detail: str


class JobResponse(BaseModel):
    """``GET /v1/phota/jobs/{job_id}``, and the body POSTed to the job's ``callback_url`` when it ends."""

    job_id: str
    status: JobStatus
    result: EditResponse | None = Field(default=None, description="The EditResponse, once SUCCEEDED.")
    error: JobError | None = Field(default=None, description="Set when FAILED.")
    created_at: dt.datetime
    completed_at: dt.datetime | None = None


class WebhookSecretResponse(BaseModel):
    """``GET /v1/phota/webhook-secret``: the key of the callbacks' ``X-Phota-Signature`` HMAC-SHA256."""

    webhook_secret: str


class HealthResponse(BaseModel):
    status: Literal["ok"]


class FeatureStatus(BaseModel):
    """One optional feature of this installation: on, or off and why (see the README's feature table)."""

    enabled: bool
    detail: str


class ReadinessResponse(BaseModel):
    status: Literal["ready", "not_ready"]
    device: str | None = None
    network: str | None = None
    mode: Literal["real", "test"] | None = Field(
        default=None, description="'test': the offline test mode, no network loaded (network 'none')."
    )
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
