"""Domain errors raised by the image and model code.

Each error carries the API ``code`` it maps to; the server maps error classes to HTTP status in one
table (``server/errors.py``). Library code raises these and never builds HTTP responses itself.
"""

from __future__ import annotations


class EnhanceError(Exception):
    """Base class of every domain error; ``code`` is the API error code, ``detail`` a human message."""

    code: str = "BAD_REQUEST"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class InvalidImageError(EnhanceError):
    """Raised by the decoder when the bytes are not a decodable image (corrupt, truncated, bomb, bad base64)."""

    code = "INVALID_IMAGE"


class UnsupportedFormatError(EnhanceError):
    """Raised by the decoder when the bytes are an image in a format this service does not decode."""

    code = "UNSUPPORTED_FORMAT"


class ImageFetchError(EnhanceError):
    """Raised by the URL fetcher: unreachable, refused address, too large, too slow, bad status."""

    code = "IMAGE_FETCH_FAILED"


class ModelOutOfMemoryError(EnhanceError):
    """Raised by the super-resolution runner when even the smallest tile does not fit in memory."""

    code = "SERVICE_UNAVAILABLE"


class RequestCancelledError(EnhanceError):
    """Raised inside a request's worker thread when its caller went away (client disconnected, job
    stopped): its queued network work is dropped and the thread stops at the next checkpoint."""

    code = "SERVICE_UNAVAILABLE"
