"""Errors: server-side error classes and the one table that maps every domain error to HTTP."""

from __future__ import annotations

import logging
import math
from typing import Any

import torch
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from models.pipeline import (
    EnhanceError,
    ImageFetchError,
    InvalidImageError,
    ModelOutOfMemoryError,
    RequestCancelledError,
    UnsupportedFormatError,
)
from server.failures import (
    BadRequestError,
    ForbiddenError,
    NotFoundError,
    NotOfferedError,
    NotReadyError,
    OverloadedError,
    PayloadTooLargeError,
    ProfileNotReadyError,
    RateLimitedError,
    RequestTimeoutError,
    UnauthorizedError,
)
from server.runtime import out_of_memory
from server.storage.outages import outage_kind

logger = logging.getLogger(__name__)


class DependencyUnavailableError(EnhanceError):
    """An outage of the database or the object store (``server.storage.outages``): 503 with ``Retry-After``."""

    code = "SERVICE_UNAVAILABLE"


class InsufficientStorageError(EnhanceError):
    """The service's own storage (the local data directory, or the database's disk) is full: 507."""

    code = "INSUFFICIENT_STORAGE"


UNAUTHORIZED_DETAIL = "Missing or invalid API key in the X-API-Key header."

# The one mapping from error class to HTTP status; the first matching class (in MRO order) wins.
STATUS_BY_ERROR: dict[type[EnhanceError], int] = {
    BadRequestError: 400,
    InvalidImageError: 400,
    UnsupportedFormatError: 400,
    ImageFetchError: 400,
    ProfileNotReadyError: 400,
    UnauthorizedError: 401,
    ForbiddenError: 403,
    NotFoundError: 404,
    PayloadTooLargeError: 413,
    RateLimitedError: 429,
    OverloadedError: 503,
    ModelOutOfMemoryError: 503,
    RequestCancelledError: 503,
    NotReadyError: 503,
    DependencyUnavailableError: 503,
    RequestTimeoutError: 504,
    NotOfferedError: 501,
    InsufficientStorageError: 507,
}

_OUTAGE_DETAILS = {
    "database": "The database is unavailable right now; retry after the Retry-After seconds.",
    "store": "The object store is unavailable right now; retry after the Retry-After seconds.",
}


def outage_error(error: BaseException) -> EnhanceError | None:
    """The API error for an outage of a dependency (``server.storage.outages.outage_kind``), or None when
    ``error`` is no outage (then it is a bug: 500)."""
    kind = outage_kind(error)
    if kind is None:
        return None
    if kind == "disk":
        return InsufficientStorageError("The service's storage is full; nothing was stored. Retry once space is freed.")
    return DependencyUnavailableError(_OUTAGE_DETAILS[kind])


def status_for(error: EnhanceError) -> int:
    for cls in type(error).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]  # type: ignore[index]
    return 400


def request_id_of(request: Request) -> str:
    return str(getattr(request.state, "request_id", ""))


def error_response(
    request: Request, status: int, code: str, detail: Any, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        status_code=status,
        content={"code": code, "detail": detail, "request_id": request_id_of(request)},
        headers=headers,
    )


def _finite(value: Any) -> Any:
    """``value`` with non-finite floats (a body's NaN or 1e309, echoed as ``input``) written as strings:
    JSON has no such numbers, so the 422 body could not be sent otherwise."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def install_error_handlers(app: FastAPI, retry_after_s: int) -> None:
    """Register the handlers that turn every failure into the API's error body."""

    @app.exception_handler(EnhanceError)
    async def _domain_error(request: Request, exc: EnhanceError) -> JSONResponse:
        status = status_for(exc)
        headers = {"Retry-After": str(retry_after_s)} if status == 503 else None
        if isinstance(exc, RateLimitedError):
            headers = {"Retry-After": str(exc.retry_after_s)}
        if isinstance(exc, ModelOutOfMemoryError):
            logger.warning("request %s: %s", request_id_of(request), exc.detail)
        return error_response(request, status, exc.code, exc.detail, headers)

    async def _outage(request: Request, exc: Exception) -> JSONResponse:
        error = outage_error(exc)
        if error is None:
            raise exc  # not an outage: the middleware's 500, logged with the request id
        logger.warning("request %s: %s (%s: %s)", request_id_of(request), error.detail, type(exc).__name__, exc)
        return await _domain_error(request, error)

    # Outages of the database, the object store and the disk surface as these libraries' own exceptions.
    outage_classes: list[type[Exception]] = [OSError, SQLAlchemyError]
    try:
        from botocore.exceptions import BotoCoreError, ClientError

        outage_classes += [BotoCoreError, ClientError]
    except ImportError:  # no S3 support installed
        pass
    for outage_class in outage_classes:
        app.add_exception_handler(outage_class, _outage)  # type: ignore[arg-type]

    # Out of device memory outside the pipeline's own handling (which raises ModelOutOfMemoryError):
    # the same answer, through the one conversion (server.runtime.out_of_memory).
    async def _out_of_memory(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, torch.OutOfMemoryError)
        return await _domain_error(request, out_of_memory(exc))

    app.add_exception_handler(torch.OutOfMemoryError, _out_of_memory)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's standard 422 shape, plus the request id.
        from fastapi.encoders import jsonable_encoder

        return JSONResponse(
            status_code=422,
            content={"detail": _finite(jsonable_encoder(exc.errors())), "request_id": request_id_of(request)},
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "NOT_FOUND", 405: "BAD_REQUEST", 401: "UNAUTHORIZED", 413: "PAYLOAD_TOO_LARGE"}
        detail = "Not found." if exc.status_code == 404 else str(exc.detail)
        return error_response(request, exc.status_code, codes.get(exc.status_code, "BAD_REQUEST"), detail)
