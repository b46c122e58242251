"""ASGI middleware: request ids, the deprecation header, the body-size limit and request metrics."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from contextvars import ContextVar

from prometheus_client import Histogram
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger(__name__)

DEPRECATION_DATE = "2026-05-08"
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_IMAGE_ROUTES = re.compile(r"^/v1/phota/(enhance|jobs/[^/]+)$")

# The id of the request being handled (None outside a request); log records carry it (server.logs).
current_request_id: ContextVar[str | None] = ContextVar("current_request_id", default=None)


class _BodyTooLarge(HTTPException):
    """Raised from ``receive`` when a streamed body passes the limit; the framework re-raises HTTP
    exceptions from body parsing, so the error handler answers 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=f"Request body exceeds {limit} bytes.")


class RequestContextMiddleware:
    """Gives every request an id (the client's own when sane), echoes it in ``X-Request-Id``, adds
    ``X-Phota-Deprecation-Date`` on the image endpoints, refuses bodies over ``max_body_bytes``
    with 413, and records latency by route and status."""

    def __init__(self, app: ASGIApp, max_body_bytes: int, latency: Histogram) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.latency = latency

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        client_id = headers.get("x-request-id", "")
        request_id = client_id if _SANE_REQUEST_ID.match(client_id) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        current_request_id.set(request_id)
        path = scope["path"]
        status_holder = {"status": 500}
        response_started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
                status_holder["status"] = message["status"]
                out = MutableHeaders(scope=message)
                out["X-Request-Id"] = request_id
                if _IMAGE_ROUTES.match(path):
                    out["X-Phota-Deprecation-Date"] = DEPRECATION_DATE
            await send(message)

        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await self._too_large(send_with_headers, request_id)
            self._observe(scope, status_holder["status"], started)
            return

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise _BodyTooLarge(self.max_body_bytes)
            return message

        try:
            await self.app(scope, limited_receive, send_with_headers)
        except _BodyTooLarge:
            if not response_started:
                await self._too_large(send_with_headers, request_id)
        except Exception as exc:
            # The one fallback for unexpected failures: logged with the request id, generic body.
            logger.exception("request %s failed", request_id, exc_info=exc)
            if not response_started:
                await self._send_json(
                    send_with_headers,
                    500,
                    {
                        "code": "INTERNAL_ERROR",
                        "detail": "Internal error; quote the request id.",
                        "request_id": request_id,
                    },
                )
        finally:
            self._observe(scope, status_holder["status"], started)

    async def _too_large(self, send: Send, request_id: str) -> None:
        await self._send_json(
            send,
            413,
            {
                "code": "PAYLOAD_TOO_LARGE",
                "detail": f"Request body exceeds {self.max_body_bytes} bytes.",
                "request_id": request_id,
            },
        )

    @staticmethod
    async def _send_json(send: Send, status: int, content: dict[str, str]) -> None:
        body = json.dumps(content).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def _observe(self, scope: Scope, status: int, started: float) -> None:
        route = scope.get("route")
        template = getattr(route, "path", None) or "unmatched"
        self.latency.labels(template, scope["method"], str(status)).observe(time.perf_counter() - started)
