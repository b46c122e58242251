"""One enhance request apart from HTTP: validate, resolve candidates, get the image's bytes, run the
pipeline in one worker slot, deliver (base64 or stored files) and report. The synchronous route and
the job runners both run it; the HTTP side (the time limit, the client's disconnect) is
``server.service``."""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import time
from dataclasses import dataclass

import anyio.to_thread

from models.pipeline import (
    Explanation,
    KnownProfile,
    PipelineRequest,
    Steering,
    candidate_ids,
    read_prompt,
)
from server.enhance_bodies import EditResponse, EnhanceRequest, KnownSubjects
from server.failures import BadRequestError, NotFoundError
from server.image_source import load_image_source
from server.outbound import FetchPolicy
from server.profiles import ProfileCandidates
from server.runtime import ModelRuntime
from server.settings import Settings
from server.storage import Account, LocalFileStore, SignedFile
from server.worker import EnhanceWorker

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EnhanceOutcome:
    """The hosted-shape body and the explanation ``X-Enhance-Parameters`` carries."""

    response: EditResponse
    explanation: Explanation


# The longest prompt read, in characters (a 400 beyond it): the intents of a prompt are a few words, and
# reading one costs time that grows faster than its length.
MAX_PROMPT_CHARS = 10_000


def fetch_policy_of(settings: Settings) -> FetchPolicy:
    return FetchPolicy(
        allow_private=settings.allow_private_urls,
        max_bytes=settings.fetch_max_bytes,
        timeout_s=settings.fetch_timeout_s,
    )


async def read_request_prompt(body: EnhanceRequest) -> Steering:
    """The request's prompt, read (:func:`~models.pipeline.read_prompt`) in a worker thread so that a
    long prompt never holds the event loop. Raises ``BadRequestError`` for a prompt longer than
    :data:`MAX_PROMPT_CHARS`."""
    if body.prompt is not None and len(body.prompt) > MAX_PROMPT_CHARS:
        raise BadRequestError(
            f"prompt is too long: {len(body.prompt):,} characters, at most {MAX_PROMPT_CHARS:,} are accepted."
        )
    return await anyio.to_thread.run_sync(read_prompt, body.prompt)


async def validate_request(body: EnhanceRequest, steering: Steering | None = None) -> list[str]:
    """Checks that need no image and no storage; returns the candidate profile ids (``profile_ids``
    and the prompt's ``[[id]]`` tokens, checked by :func:`resolve_candidates`). ``steering``: the
    prompt as already read (:func:`read_request_prompt`), else it is read here. Raises
    ``BadRequestError``."""
    if body.callback_url is not None and not body.async_:
        raise BadRequestError("callback_url is only valid with async: true.")
    return candidate_ids(body.profile_ids, steering if steering is not None else await read_request_prompt(body))


async def resolve_candidates(
    ids: list[str], account: Account | None, candidates: ProfileCandidates | None
) -> list[KnownProfile]:
    """The profiles ``ids``, all the caller's and READY. Raises ``NotFoundError`` (unknown or another
    account's id; any id when no profile store is given) or ``ProfileNotReadyError``."""
    if not ids:
        return []
    if candidates is None or account is None:
        raise NotFoundError(f"Unknown profile id {ids[0]!r}.")
    return await anyio.to_thread.run_sync(candidates.resolve, account.id, ids)


async def load_source(image: str, settings: Settings) -> bytes:
    """The API's ``image`` string as the file's bytes (URL fetched under the operator's limits, or
    base64 decoded). Raises ``ImageFetchError`` or ``InvalidImageError``."""
    return await anyio.to_thread.run_sync(load_image_source, image, fetch_policy_of(settings))


async def run_enhance(
    body: EnhanceRequest,
    *,
    runtime: ModelRuntime,
    worker: EnhanceWorker,
    files: LocalFileStore,
    settings: Settings,
    today: dt.date,
    base_url: str,
    account: Account | None = None,
    candidates: ProfileCandidates | None = None,
    source: bytes | None = None,
) -> EnhanceOutcome:
    """Run one enhance request. Domain errors propagate to the error table. ``candidates`` (with the
    caller's ``account``) resolves the candidate profiles before the request is admitted. ``source``:
    the image file's bytes when already at hand (a job's stored input; ``body.image`` is then not
    read), else they come from ``body.image``."""
    started = time.perf_counter()
    steering = await read_request_prompt(body)  # read once: the candidates' ids, then the pipeline's steering
    profiles = await resolve_candidates(await validate_request(body, steering), account, candidates)
    mark = time.perf_counter()
    data = source if source is not None else await load_source(body.image, settings)
    fetch_s = time.perf_counter() - mark
    request = PipelineRequest(
        source=data,
        num_outputs=body.num_output_images,
        prompt=steering,
        output_format=body.output_format,
        default_format=settings.default_format_on(today),
        candidates=profiles,
        fetch_s=fetch_s,
        queued_at=time.perf_counter(),
        mode=settings.mode,
    )
    outcome = await worker.run_cancellable(
        lambda cancel: runtime.run(request, cancel), account=account.id if account is not None else None
    )

    response = EditResponse(known_subjects=KnownSubjects(counts=outcome.counts))
    store_s = None
    if body.response_mode == "bytes":
        response.images = [base64.b64encode(blob).decode("ascii") for blob in outcome.outputs]
    else:
        mark = time.perf_counter()
        stored = await anyio.to_thread.run_sync(save_all, files, outcome.outputs, outcome.output_format)
        base = (settings.public_base_url or base_url).rstrip("/")
        response.download_urls = [files.download_url(f, base) for f in stored]
        store_s = time.perf_counter() - mark
    explanation = outcome.explanation.delivered(store_s=store_s, total_s=time.perf_counter() - started)
    return EnhanceOutcome(response=response, explanation=explanation)


def save_all(files: LocalFileStore, blobs: list[bytes], extension: str) -> list[SignedFile]:
    """Store every output, or none: when one cannot be stored (the store is down, the disk full), those
    already stored are deleted again before the error propagates, so no answer's files are half there
    (a deletion the store refuses too leaves a file no URL names, swept when it expires)."""
    stored: list[SignedFile] = []
    try:
        for blob in blobs:
            stored.append(files.save(blob, extension))
    except BaseException:
        for done in stored:
            try:
                files.remove(done)
            except Exception:
                logger.warning("could not delete the unused output %s; it is swept when it expires", done.name)
        raise
    return stored


def parameters_header(explanation: Explanation) -> str:
    """Compact JSON of ``explanation`` for ``X-Enhance-Parameters`` (ASCII only, as HTTP headers must be)."""
    return json.dumps(explanation.to_json(), separators=(",", ":"), ensure_ascii=True)
