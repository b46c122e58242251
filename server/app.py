"""The FastAPI application factory: the routes, the middleware and the lifespan that starts and stops the
app's one :class:`~server.services.Services` (the composition root)."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Callable

from fastapi import FastAPI

from server.errors import install_error_handlers
from server.middleware import RequestContextMiddleware
from server.routes import (
    enhance_router,
    files_router,
    health_router,
    hosted_router,
    jobs_router,
    page_router,
    profiles_router,
    webhooks_router,
)
from server.schemas import AUTHENTICATED_RESPONSES
from server.services import Metrics, Services, load_or_create_signing_secret, services_of, utc_today
from server.settings import Settings

__all__ = ["API_PREFIX", "Metrics", "Services", "create_app", "load_or_create_signing_secret", "services_of"]

API_PREFIX = "/v1/phota"


def create_app(
    settings: Settings, services: Services | None = None, *, today: Callable[[], dt.date] = utc_today
) -> FastAPI:
    """Build the service. ``services``: the parts to serve with (tests hand in stand-ins, e.g. a
    ``Services(settings, runtime=...)``); the lifespan builds, once, every part it does not hold yet,
    and closes them all at shutdown. ``today`` is the clock behind the date-based default
    ``output_format`` (used when ``services`` is not handed in)."""
    root = services if services is not None else Services(settings, today=today)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await root.start()
        try:
            yield
        finally:
            await root.stop()

    app = FastAPI(
        title="Phota enhance (self-hosted)",
        version="0.7.0",
        description="A local drop-in for the hosted Phota Labs enhance API.",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.services = root
    app.add_middleware(RequestContextMiddleware, max_body_bytes=settings.max_body_bytes, latency=root.metrics.latency)
    install_error_handlers(app, settings.retry_after_s)
    app.include_router(enhance_router, prefix=API_PREFIX, responses=AUTHENTICATED_RESPONSES)
    app.include_router(jobs_router, prefix=API_PREFIX, responses=AUTHENTICATED_RESPONSES)
    app.include_router(profiles_router, prefix=API_PREFIX, responses=AUTHENTICATED_RESPONSES)
    app.include_router(webhooks_router, prefix=API_PREFIX, responses=AUTHENTICATED_RESPONSES)
    app.include_router(hosted_router, prefix=API_PREFIX, responses=AUTHENTICATED_RESPONSES)
    app.include_router(files_router, prefix=API_PREFIX)
    app.include_router(health_router)
    app.include_router(page_router)
    return app
