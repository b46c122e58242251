"""POST /v1/phota/enhance."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from server.deps import CurrentAccount, EngineDep, FilesDep, SettingsDep, TodayDep, WorkerDep
from server.schemas import EditResponse, EnhanceRequest, ErrorResponse
from server.service import parameters_header, run_enhance

router = APIRouter(tags=["enhance"])

ERRORS = {
    status: {"model": ErrorResponse, "description": description}
    for status, description in {
        400: "Undecodable image, unsupported format, refused URL, bad field combination",
        401: "Missing or invalid API key",
        404: "Unknown profile id",
        413: "Request body too large",
        500: "Unexpected failure",
        503: "Overloaded or out of GPU memory (Retry-After)",
    }.items()
}


@router.post("/enhance", response_model=EditResponse, responses=ERRORS)  # type: ignore[arg-type]
async def enhance(
    body: EnhanceRequest,
    request: Request,
    response: Response,
    _account: CurrentAccount,
    engine: EngineDep,
    worker: WorkerDep,
    files: FilesDep,
    settings: SettingsDep,
    today: TodayDep,
) -> EditResponse:
    """Enhance an image: restore and upscale it (2048 px long side for smaller inputs)."""
    outcome = await run_enhance(
        body,
        engine=engine,
        worker=worker,
        files=files,
        settings=settings,
        today=today,
        base_url=str(request.base_url),
    )
    response.headers["X-Enhance-Parameters"] = parameters_header(outcome.parameters)
    return outcome.response
