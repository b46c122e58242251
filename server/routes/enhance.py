"""POST /v1/phota/enhance."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from server.deps import CurrentAccount, ServicesDep
from server.enhance_bodies import EditResponse, EnhanceRequest
from server.enhancing import parameters_header, run_enhance
from server.errors import request_id_of
from server.routes.jobs import poll_url_of
from server.schemas import ErrorResponse, JobAccepted
from server.service import run_with_time_limit, wait_for_disconnect

router = APIRouter(tags=["enhance"])

ERRORS = {
    status: {"model": ErrorResponse, "description": description}
    for status, description in {
        400: "Undecodable image, unsupported format, refused URL, bad callback_url, bad field combination, "
        "a candidate profile not READY (PROFILE_NOT_READY)",
        401: "Missing or invalid API key",
        404: "Unknown profile id (another account's included)",
        413: "Request body too large",
        500: "Unexpected failure",
        503: "Overloaded, job queue full or out of GPU memory (Retry-After)",
        504: "A synchronous request ran past the time limit (TIMEOUT)",
    }.items()
}
ACCEPTED = {202: {"model": JobAccepted, "description": "async: true; the job is stored, poll poll_url"}}


@router.post("/enhance", response_model=EditResponse, responses={**ACCEPTED, **ERRORS})  # type: ignore[dict-item]
async def enhance(
    body: EnhanceRequest,
    request: Request,
    response: Response,
    account: CurrentAccount,
    services: ServicesDep,
) -> EditResponse | JSONResponse:
    """Enhance an image: restore and upscale it (2048 px long side for smaller inputs). With
    ``async: true`` the work becomes a job: 202 with its ``poll_url``, and a callback when it ends."""
    runtime, worker, files = services.started_runtime(), services.started_worker(), services.started_files()
    jobs, candidates = services.started_jobs(), services.started_candidates()
    settings, today = services.settings, services.today()
    if body.async_:
        job = await jobs.submit(
            body, account, base_url=str(request.base_url), today=today, request_id=request_id_of(request)
        )
        poll_url = poll_url_of(request, settings, job.id)
        accepted = JobAccepted(job_id=job.id, poll_url=poll_url, status=job.status)
        return JSONResponse(accepted.model_dump(), status_code=202, headers={"Location": poll_url})
    outcome = await run_with_time_limit(
        run_enhance(
            body,
            runtime=runtime,
            worker=worker,
            files=files,
            settings=settings,
            today=today,
            base_url=str(request.base_url),
            account=account,
            candidates=candidates,
        ),
        settings.sync_timeout_s,
        abandon_when=wait_for_disconnect(request.receive),
    )
    response.headers["X-Enhance-Parameters"] = parameters_header(outcome.explanation)
    return outcome.response
