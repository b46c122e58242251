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

logger = logging.getLogger(__name__)


class BadRequestError(EnhanceError):
    """Raised by handlers for a well-formed request the service refuses (e.g. async before jobs exist)."""

    code = "BAD_REQUEST"


class FeatureUnavailableError(BadRequestError):
    """Raised when a request needs a feature this installation has off (e.g. identity without the face
    models, as after an offline bundle made with ``--without faces``): 400 ``BAD_REQUEST``."""


class UnauthorizedError(EnhanceError):
    """Raised by the API-key dependency when the key is missing or unknown."""

    code = "UNAUTHORIZED"


class NotFoundError(EnhanceError):
    """Raised for an unknown profile, job, file or route (another account's ids included)."""

    code = "NOT_FOUND"


class ForbiddenError(EnhanceError):
    """Raised by signed downloads whose signature is wrong or whose link has expired."""

    code = "FORBIDDEN"


class PayloadTooLargeError(EnhanceError):
    """Raised by the body-size guard when a request body exceeds ``max_body_bytes``."""

    code = "PAYLOAD_TOO_LARGE"


class OverloadedError(EnhanceError):
    """Raised by the enhance worker when its queue is full, and by job submission when the job queue is."""

    code = "SERVICE_UNAVAILABLE"


class NotReadyError(EnhanceError):
    """Raised when a request arrives before the models are loaded."""

    code = "SERVICE_UNAVAILABLE"


class ProfileNotReadyError(EnhanceError):
    """Raised when a request names a profile of the caller that is not READY (enhance candidates, the
    profile picture)."""

    code = "PROFILE_NOT_READY"


class RequestTimeoutError(EnhanceError):
    """Raised when a synchronous enhance runs past ``sync_timeout_s`` (the hosted limit is 600 s)."""

    code = "TIMEOUT"


class RateLimitedError(EnhanceError):
    """Raised when an account passes ``ENHANCE_RATE_LIMIT_PER_MINUTE`` (by the API-key dependency) or
    ``ENHANCE_ACCOUNT_MAX_CONCURRENT`` (by the enhance worker); ``retry_after_s`` becomes ``Retry-After``."""

    code = "RATE_LIMITED"

    def __init__(self, detail: str, retry_after_s: int) -> None:
        super().__init__(detail)
        self.retry_after_s = retry_after_s


class NotOfferedError(EnhanceError):
    """Raised by the hosted routes this service does not offer (``/edit``, ``/generate``, ``/remix``):
    501 ``NOT_IMPLEMENTED``, with a detail saying what the service offers instead."""

    code = "NOT_IMPLEMENTED"


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
