"""GET /v1/phota/jobs/{job_id}: the document of an asynchronous enhance job."""

from __future__ import annotations

from fastapi import APIRouter, Request

from server.deps import CurrentAccount, ServicesDep
from server.jobs import JobResponse
from server.schemas import ErrorResponse
from server.settings import Settings

router = APIRouter(tags=["jobs"])

GET_JOB_ROUTE = "get_job"


def poll_url_of(request: Request, settings: Settings, job_id: str) -> str:
    """The absolute URL of the job's document (behind ``public_base_url`` when one is configured)."""
    base = (settings.public_base_url or str(request.base_url)).rstrip("/")
    return base + request.app.url_path_for(GET_JOB_ROUTE, job_id=job_id)


@router.get(
    "/jobs/{job_id}",
    name=GET_JOB_ROUTE,
    response_model=JobResponse,
    responses={
        401: {"model": ErrorResponse, "description": "Missing or invalid API key"},
        404: {"model": ErrorResponse, "description": "Unknown or expired job id, or another account's"},
    },
)
async def get_job(job_id: str, account: CurrentAccount, services: ServicesDep) -> JobResponse:
    """Status of an asynchronous enhance job and, once SUCCEEDED, its EditResponse."""
    return await services.started_jobs().document(job_id, account)
