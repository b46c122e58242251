"""Errors: server-side error classes and the one table that maps every domain error to HTTP."""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
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

logger = logging.getLogger(__name__)


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
    RequestTimeoutError: 504,
    NotOfferedError: 501,
}


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
