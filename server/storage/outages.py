"""Outages of the service's own dependencies, recognised in one place: the database unreachable (stopped,
restarting, connections cut, SQLite locked), the object store unreachable (refused connections, time
limits, 5xx answers), and the local disk full.

Everything that touches the database or the store lets their exceptions (SQLAlchemy's, botocore's,
``OSError``) propagate as they are; :func:`outage_kind` says whether one is an outage rather than a bug.
The error table (``server.errors``) answers an outage 503 ``SERVICE_UNAVAILABLE`` with ``Retry-After``
(507 ``INSUFFICIENT_STORAGE`` for a full disk) instead of 500; the background work (jobs, callbacks,
profile builds) waits it out with :func:`retry_blocking` / :func:`retry_async` instead of failing the
work. The pools recover by themselves: the engine pings a pooled connection before lending it
(``pool_pre_ping``), so the connections that died with the server are replaced on first use.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Literal, TypeVar

import anyio.to_thread
from sqlalchemy import exc as sa_exc

logger = logging.getLogger(__name__)

T = TypeVar("T")
OutageKind = Literal["database", "store", "disk"]

_DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}
# SQLite's own words for a full disk, and for a database another writer holds or cannot be opened.
_SQLITE_FULL = ("database or disk is full", "disk is full", "no space left")
_SQLITE_UNAVAILABLE = ("database is locked", "unable to open database", "disk i/o error", "database is busy")
# S3 error codes that mean "the store is not answering properly now", whatever the HTTP status.
_S3_TRANSIENT_CODES = {"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "503", "500", "502", "504"}
# First and longest pause between retries through an outage.
RETRY_FIRST_S = 0.25
RETRY_MAX_S = 2.0


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _database_outage(error: sa_exc.SQLAlchemyError) -> OutageKind | None:
    if isinstance(error, sa_exc.DisconnectionError | sa_exc.TimeoutError):
        return "database"  # a pooled connection found dead, or no connection free in time
    if not isinstance(error, sa_exc.DBAPIError):
        return None
    text = str(error.orig).lower()
    if any(words in text for words in _SQLITE_FULL) or "could not extend file" in text:
        return "disk"
    if error.connection_invalidated:
        return "database"
    if isinstance(error, sa_exc.OperationalError | sa_exc.InterfaceError):
        module = type(error.orig).__module__ if error.orig is not None else ""
        if module.startswith("sqlite3"):
            # SQLite's OperationalError also covers schema mistakes (ours): only its outage words count.
            return "database" if any(words in text for words in _SQLITE_UNAVAILABLE) else None
        return "database"  # the server went away, refused the connection, or is shutting down
    return None


def _store_outage(error: BaseException) -> OutageKind | None:
    try:
        from botocore import exceptions as boto
    except ImportError:  # no S3 support installed: no S3 outage either
        return None
    if isinstance(error, boto.ConnectionError | boto.HTTPClientError | boto.ConnectionClosedError):
        return "store"
    if isinstance(error, boto.ClientError):
        answer = error.response or {}
        status = int(answer.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        code = str(answer.get("Error", {}).get("Code", ""))
        if status >= 500 or code in _S3_TRANSIENT_CODES:
            return "store"
    return None


def outage_kind(error: BaseException) -> OutageKind | None:
    """``"database"``, ``"store"`` or ``"disk"`` when ``error`` (or an error it was raised from) is an
    outage of that dependency; None for anything else (a bug, a bad request)."""
    for link in _chain(error):
        if isinstance(link, OSError) and link.errno in _DISK_FULL_ERRNOS:
            return "disk"
        if isinstance(link, sa_exc.SQLAlchemyError):
            kind = _database_outage(link)
            if kind is not None:
                return kind
        kind = _store_outage(link)
        if kind is not None:
            return kind
    return None


def _pause(attempt: int) -> float:
    return float(min(RETRY_MAX_S, RETRY_FIRST_S * 2**attempt))


def retry_blocking(call: Callable[[], T], *, what: str, patience_s: float) -> T:
    """``call()``, tried again while it fails with an outage, for up to ``patience_s`` seconds (then the
    outage's exception propagates). Other exceptions propagate at once. Blocking: run it in a thread."""
    deadline = time.monotonic() + patience_s
    attempt = 0
    while True:
        try:
            return call()
        except Exception as error:
            kind = outage_kind(error)
            if kind is None or time.monotonic() >= deadline:
                raise
            if attempt == 0:
                logger.warning("%s: %s unavailable (%s); retrying for up to %g s", what, kind, error, patience_s)
            time.sleep(_pause(attempt))
            attempt += 1


async def retry_async(
    call: Callable[[], T] | Callable[[], Awaitable[T]],
    *,
    what: str,
    patience_s: float,
    blocking: bool = True,
) -> T:
    """As :func:`retry_blocking` from the event loop: a ``blocking`` ``call`` runs in a worker thread (an
    async one is awaited), and the pauses do not block the loop."""
    deadline = time.monotonic() + patience_s
    attempt = 0
    while True:
        try:
            if blocking:
                return await anyio.to_thread.run_sync(call)  # type: ignore[arg-type]
            return await call()  # type: ignore[misc, no-any-return]
        except Exception as error:
            kind = outage_kind(error)
            if kind is None or time.monotonic() >= deadline:
                raise
            if attempt == 0:
                logger.warning("%s: %s unavailable (%s); retrying for up to %g s", what, kind, error, patience_s)
            await asyncio.sleep(_pause(attempt))
            attempt += 1


def log_failure(log: logging.Logger, message: str, *args: object) -> None:
    """Log the exception being handled: one warning line for an outage (a background loop meets it at every
    turn while the dependency is down), the whole traceback for anything else."""
    import sys

    error = sys.exc_info()[1]
    kind = outage_kind(error) if error is not None else None
    if kind is None:
        log.exception(message, *args)
    else:
        log.warning(message + " (%s unavailable: %s)", *args, kind, error)
