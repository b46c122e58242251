"""What Serve's HTTP proxies add in front of the replicas (``RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH``
names :func:`proxy_middlewares`; ``python -m server.cluster`` sets it for the Ray it starts).

When a replica dies with requests in flight (killed, out of host memory, its node lost), Serve's proxy
sends no response for those requests (the HTTP server then answers a bare ``500 Internal Server
Error``); when no replica is available it answers a plain-text 503. :class:`ReplicaLossMiddleware` turns
that into what one process does when it cannot take work: a retry on another replica when the request
is safe to repeat (reads, and synchronous enhancements, which store nothing a client has seen), else
``503 SERVICE_UNAVAILABLE`` with ``Retry-After`` and the error body of the API. Responses of the
service itself (JSON, its own 500s included) pass through untouched.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from typing import Any

from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger(__name__)

RETRYABLE_METHODS = frozenset({"GET", "HEAD"})
ENHANCE_PATH = "/v1/phota/enhance"


def _retry_after_s() -> int:
    return int(os.environ.get("ENHANCE_RETRY_AFTER_S", "5"))


def _max_body_bytes() -> int:
    return int(os.environ.get("ENHANCE_MAX_BODY_BYTES", str(64 * 1024 * 1024)))


def _is_synchronous_enhance(path: str, body: bytes) -> bool:
    if path != ENHANCE_PATH:
        return False
    try:
        document = json.loads(body)
    except ValueError:
        return True  # the replica answers 4xx without side effects: safe to repeat
    return not (isinstance(document, dict) and document.get("async") is True)


def _proxy_error(start: Message) -> bool:
    """A response Serve's proxy made up (a replica died, none is available), not one of the service's."""
    headers = Headers(raw=start.get("headers", []))
    return start["status"] in (500, 503) and headers.get("content-type", "").startswith("text/plain")


class ReplicaLossMiddleware:
    """Retries requests that are safe to repeat when their replica died (``attempts`` in all), and answers
    the rest (and the last failure) 503 with ``Retry-After``."""

    def __init__(self, app: ASGIApp, attempts: int = 3) -> None:
        self.app = app
        self.attempts = attempts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body, complete = await self._read_body(receive)
        if not complete:  # too large to keep: forward once, as it comes (the service answers 413)
            await self.app(scope, self._replay(body, receive, more=True), send)
            return
        retryable = scope["method"] in RETRYABLE_METHODS or (
            scope["method"] == "POST" and _is_synchronous_enhance(scope["path"], body)
        )
        attempts = self.attempts if retryable else 1
        for attempt in range(1, attempts + 1):
            outcome = await self._attempt(scope, body, receive, send)
            if outcome == "answered":
                return
            if outcome == "busy":
                break  # every replica is full and the proxy's queue too: no point in asking again now
            logger.warning(
                "%s %s: the replica was lost (attempt %d of %d)", scope["method"], scope["path"], attempt, attempts
            )
        await self._unavailable(scope, send)

    async def _read_body(self, receive: Receive) -> tuple[bytes, bool]:
        chunks: list[bytes] = []
        size = 0
        limit = _max_body_bytes()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return b"".join(chunks), True
            chunk = message.get("body", b"")
            chunks.append(chunk)
            size += len(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks), True
            if size > limit:
                return b"".join(chunks), False

    @staticmethod
    def _replay(body: bytes, receive: Receive, *, more: bool = False) -> Receive:
        """The buffered body first, then the client's own messages (a disconnect, once the body is read)."""
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": more}
            return await receive()

        return replay

    async def _attempt(self, scope: Scope, body: bytes, receive: Receive, send: Send) -> str:
        """Run the request once: "answered", or, when nothing was sent to the client, "busy" (the proxy
        refused it: every replica full) or "lost" (the replica died)."""
        state: dict[str, Any] = {"outcome": "lost", "swallow": False}

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start" and _proxy_error(message):
                state["outcome"], state["swallow"] = ("busy" if message["status"] == 503 else "lost"), True
            if state["swallow"]:
                return  # the proxy's bare error; the caller retries or answers 503
            state["outcome"] = "answered"
            await send(message)

        await self.app(dict(scope), self._replay(body, receive), watch)
        # Serve's proxy sends nothing at all when the replica died (the server would then answer a bare 500).
        return str(state["outcome"])

    @staticmethod
    async def _unavailable(scope: Scope, send: Send) -> None:
        headers = Headers(scope=scope)
        request_id = headers.get("x-request-id") or uuid.uuid4().hex
        retry_after = _retry_after_s()
        payload = json.dumps(
            {
                "code": "SERVICE_UNAVAILABLE",
                "detail": f"Every replica is busy or the one serving this request stopped; retry in {retry_after} s.",
                "request_id": request_id,
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 503,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                    (b"retry-after", str(retry_after).encode()),
                    (b"x-request-id", request_id.encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})


def proxy_middlewares() -> list[Middleware]:
    """The Starlette middlewares of every Serve HTTP proxy (the callback Serve imports)."""
    return [Middleware(ReplicaLossMiddleware)]
