"""The HTTP side of a synchronous enhance request: the time limit it runs under and the client's
disconnect that cancels it. The request itself (validate, candidates, bytes, one worker slot,
delivery) is ``server.enhancing``, which the job runners share."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from starlette.types import Message

from models.pipeline import RequestCancelledError
from server.errors import RequestTimeoutError

logger = logging.getLogger(__name__)

T = TypeVar("T")


async def wait_for_disconnect(receive: Callable[[], Awaitable[Message]]) -> None:
    """Return when the client has gone away (ASGI ``http.disconnect``; the body was already read)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


async def run_with_time_limit(
    work: Coroutine[Any, Any, T], limit_s: float, *, abandon_when: Awaitable[None] | None = None
) -> T:
    """Await ``work`` for at most ``limit_s`` seconds, else raise ``RequestTimeoutError`` at once. The
    model call cannot be interrupted mid-thread, so the work finishes in the background and its result
    is dropped (its slot is freed when it ends); a cancelled caller cancels the work. When
    ``abandon_when`` (e.g. :func:`wait_for_disconnect`) completes first, the work is cancelled (its
    queued network tiles are dropped) and ``RequestCancelledError`` is raised."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(abandon_when) if abandon_when is not None else None
    try:
        done, _ = await asyncio.wait(
            {task} if watcher is None else {task, watcher}, timeout=limit_s, return_when=asyncio.FIRST_COMPLETED
        )
    except asyncio.CancelledError:
        task.cancel()
        raise
    finally:
        if watcher is not None:
            watcher.cancel()
    if task in done:
        return task.result()
    if watcher is not None and watcher in done:
        task.cancel()
        task.add_done_callback(_drop_outcome)
        raise RequestCancelledError("The client disconnected; the request was cancelled.")
    if not done:
        task.add_done_callback(_drop_outcome)
        raise RequestTimeoutError(
            f"The request ran past the {limit_s:g} s limit of synchronous requests; send it with async: true."
        )
    return task.result()


def _drop_outcome(task: asyncio.Future[Any]) -> None:
    """Retrieve an abandoned request's outcome so that its exception, if any, is not reported as lost."""
    if not task.cancelled() and task.exception() is not None:
        logger.info("an abandoned request (timed out or disconnected) failed afterwards: %r", task.exception())
