"""The service's own domain errors (those of the image and model code are ``models.errors``,
re-exported by ``models.pipeline``): raised by jobs, profiles, the worker and the handlers alike.

Nothing here knows HTTP: ``server.errors`` maps every error class to its status in one table and
writes the answers. Each error carries the API ``code`` it answers with.
"""

from __future__ import annotations

from models.pipeline import EnhanceError


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
