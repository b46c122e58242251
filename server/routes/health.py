"""Health, readiness and metrics, outside /v1/phota and without a key."""

from __future__ import annotations

import anyio.to_thread
from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from server.deps import ServicesDep
from server.schemas import FeatureStatus, HealthResponse, ReadinessResponse

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=HealthResponse)
async def healthz() -> HealthResponse:
    """The process is up."""
    return HealthResponse(status="ok")


@router.get("/readyz", response_model=ReadinessResponse, responses={503: {"model": ReadinessResponse}})
async def readyz(services: ServicesDep) -> Response:
    """Ready when the models are loaded and a tiny operation on the device succeeds."""
    runtime = services.runtime
    if runtime is None:
        return JSONResponse(ReadinessResponse(status="not_ready").model_dump(), status_code=503)
    try:
        await anyio.to_thread.run_sync(runtime.probe)
    except Exception:
        return JSONResponse(ReadinessResponse(status="not_ready").model_dump(), status_code=503)
    features = {
        name: FeatureStatus(enabled=feature.enabled, detail=feature.detail)
        for name, feature in services.features.items()
    }
    body = ReadinessResponse(
        status="ready",
        device=str(runtime.device),
        network=runtime.model.network.name,
        mode=runtime.settings.mode,
        precision=runtime.model.dtype_name,
        precision_reason=runtime.model.precision_reason,
        features=features or None,
    )
    return JSONResponse(body.model_dump())


@router.get("/metrics", include_in_schema=False)
async def metrics(services: ServicesDep) -> Response:
    """Prometheus metrics of this process (under ``python -m server.cluster``: of every replica, labelled)."""
    if services.metrics_exposition is not None:
        return Response(await services.metrics_exposition(), media_type=CONTENT_TYPE_LATEST)
    services.metrics.refresh(services)
    return Response(generate_latest(services.metrics.registry), media_type=CONTENT_TYPE_LATEST)
