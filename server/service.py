"""One synchronous enhance request, end to end: validate, fetch, decode, enhance, encode, deliver."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import anyio.to_thread
from starlette.types import Message

from models.errors import RequestCancelledError
from models.faces import KnownProfile
from models.imageio import FetchPolicy, decode_image, encode_image, flatten_alpha, load_image_source
from models.pipeline import EnhanceResult
from models.prompt import merge_candidate_ids
from server.engine import Engine
from server.errors import BadRequestError, NotFoundError, RequestTimeoutError
from server.profiles import Identity
from server.schemas import EditResponse, EnhanceRequest, KnownSubjects
from server.settings import Settings
from server.storage import Account, LocalFileStore
from server.worker import EnhanceWorker

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class EnhanceOutcome:
    """The hosted-shape body and the ``X-Enhance-Parameters`` report of one request."""

    response: EditResponse
    parameters: dict[str, Any]


def fetch_policy_of(settings: Settings) -> FetchPolicy:
    return FetchPolicy(
        allow_private=settings.allow_private_urls,
        max_bytes=settings.fetch_max_bytes,
        timeout_s=settings.fetch_timeout_s,
    )


def validate_request(body: EnhanceRequest) -> list[str]:
    """Checks that need no image and no storage; returns the candidate profile ids (checked by
    :func:`resolve_candidates`). Raises ``BadRequestError``."""
    if body.callback_url is not None and not body.async_:
        raise BadRequestError("callback_url is only valid with async: true.")
    return merge_candidate_ids(body.profile_ids, body.prompt)


async def resolve_candidates(
    body: EnhanceRequest, account: Account | None, identity: Identity | None
) -> list[KnownProfile]:
    """The request's candidate profiles (``profile_ids`` and ``[[id]]`` tokens), all the caller's and
    READY. Raises ``NotFoundError`` (unknown or another account's id; any id when no profile store is
    given) or ``ProfileNotReadyError``."""
    ids = merge_candidate_ids(body.profile_ids, body.prompt)
    if not ids:
        return []
    if identity is None or account is None:
        raise NotFoundError(f"Unknown profile id {ids[0]!r}.")
    return await anyio.to_thread.run_sync(identity.candidates, account.id, ids)


def _encode_outputs(
    result: EnhanceResult, fmt: Literal["png", "jpg"], exif: bytes | None, settings: Settings
) -> list[bytes]:
    encoded = []
    for image in result.images:
        rgb, alpha = image.rgb, image.alpha
        if fmt == "jpg" and alpha is not None:
            rgb, alpha = flatten_alpha(rgb, alpha), None
        encoded.append(
            encode_image(
                rgb,
                alpha,
                fmt,
                exif=exif,
                jpeg_quality=settings.jpeg_quality,
                png_compress_level=settings.png_compress_level,
            )
        )
    return encoded


async def run_enhance(
    body: EnhanceRequest,
    *,
    engine: Engine,
    worker: EnhanceWorker,
    files: LocalFileStore,
    settings: Settings,
    today: dt.date,
    base_url: str,
    account: Account | None = None,
    identity: Identity | None = None,
) -> EnhanceOutcome:
    """Run one synchronous enhance request. Domain errors propagate to the error table. ``identity``
    (with the caller's ``account``) resolves the candidate profiles, guards faces and counts them."""
    started = time.perf_counter()
    validate_request(body)
    candidates = await resolve_candidates(body, account, identity)
    timings: dict[str, float] = {}

    mark = time.perf_counter()
    data = await anyio.to_thread.run_sync(load_image_source, body.image, fetch_policy_of(settings))
    decoded = await anyio.to_thread.run_sync(lambda: decode_image(data, max_side=4096, max_pixels=settings.max_pixels))
    timings["decode_s"] = time.perf_counter() - mark

    fmt: Literal["png", "jpg"]
    alpha_note = None
    if body.output_format is not None:
        fmt = body.output_format
        if fmt == "jpg" and decoded.alpha is not None:
            alpha_note = "flattened onto white: jpg has no alpha"
    elif decoded.alpha is not None:
        fmt, alpha_note = "png", "kept: png chosen because the input has alpha"
    else:
        fmt = settings.default_format_on(today)

    mark = time.perf_counter()
    result = await worker.run_cancellable(
        lambda cancel: engine.enhance(
            decoded.rgb, decoded.alpha, body.num_output_images, prompt=body.prompt, source=data, cancel=cancel
        )
    )
    timings["enhance_s"] = time.perf_counter() - mark

    counts: dict[str, int] = {}
    identity_report = None
    if identity is not None:
        mark = time.perf_counter()
        # Through the worker's waiting lane: this request already holds its place, it must not be refused now.
        result, counts, identity_report = await worker.background_lane().run(
            identity.apply, decoded.rgb, result, candidates
        )
        timings["identity_s"] = time.perf_counter() - mark

    mark = time.perf_counter()
    encoded = await anyio.to_thread.run_sync(_encode_outputs, result, fmt, decoded.exif, settings)
    timings["encode_s"] = time.perf_counter() - mark

    response = EditResponse(known_subjects=KnownSubjects(counts=counts))
    if body.response_mode == "bytes":
        response.images = [base64.b64encode(blob).decode("ascii") for blob in encoded]
    else:
        mark = time.perf_counter()
        stored = [await anyio.to_thread.run_sync(files.save, blob, fmt) for blob in encoded]
        base = (settings.public_base_url or base_url).rstrip("/")
        response.download_urls = [files.download_url(f, base) for f in stored]
        timings["store_s"] = time.perf_counter() - mark
    timings["total_s"] = time.perf_counter() - started

    parameters = {
        **result.report,
        "source_format": decoded.source_format,
        "original_size": list(decoded.original_size),
        "output_format": fmt,
        "alpha": alpha_note,
        "identity": identity_report,
        "timings": {**result.report["timings"], **{k: round(v, 4) for k, v in timings.items()}},
    }
    return EnhanceOutcome(response=response, parameters=parameters)


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


def parameters_header(parameters: dict[str, Any]) -> str:
    """Compact JSON for ``X-Enhance-Parameters`` (ASCII only, as HTTP headers must be)."""
    return json.dumps(parameters, separators=(",", ":"), ensure_ascii=True)
