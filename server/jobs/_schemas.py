"""The job document: the body of ``GET /v1/phota/jobs/{job_id}`` and of the POST to a job's
``callback_url`` (API.md, named as in the hosted API's OpenAPI document)."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field

from server.enhance_bodies import EditResponse
from server.storage.jobs import JobStatus


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
