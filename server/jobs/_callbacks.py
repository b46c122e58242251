"""Job callbacks: checking a ``callback_url`` at submit, signing, and delivering with retries.

A finished job's callback is a row in ``job_callbacks`` (written in the same transaction that ends the
job), so pending deliveries survive a restart. The dispatcher POSTs the job document to the URL, signed
``X-Phota-Signature: sha256=<hex>`` (HMAC-SHA256 of the raw body under the account's webhook secret).
Any 2xx answer is a delivery; anything else (other status, refused address, connection error, time
limit) is retried after ``callback_retry_base_s``, doubled after each failure up to
``callback_retry_max_s``, at most ``callback_max_attempts`` POSTs in all. Redirects are not followed
(a 3xx is a failure). Delivery is at least once: a crash between a POST and its bookkeeping sends it
again, with the same body, signature and ``X-Phota-Job-Id``, so receivers drop repeats by job id.

Several processes on one database share the deliveries: each due callback is claimed under a lease
(:meth:`JobStore.claim_due_callback`, ``callback_timeout_s + job_lease_s``), so one process POSTs it;
when that process dies, the lease runs out and another sends it. Preparing a delivery (reading the job
and its outputs) waits out an outage of the database or the store, possibly longer than the lease, so
the POST goes out only after :meth:`JobStore.hold_callback` has confirmed, just before, that this
process still holds the callback and renewed its lease to cover the POST and its record; and a process
never claims a callback it is delivering already. A POST is therefore sent twice only when the process
that sent it dies, or cannot reach the database for longer than ``job_lease_s``, before recording it.

Addresses follow the image-URL rules of :mod:`server.outbound` (the same module fetches images): the
host is resolved once per connection and the connection goes to the vetted address itself (no DNS
rebinding); TLS still checks the certificate against the host name.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import hmac
import logging
from collections.abc import Callable

import anyio
import anyio.to_thread
import httpcore
import httpx

from server.failures import BadRequestError
from server.jobs._documents import job_document_bytes
from server.outbound import OutboundRefusedError, VettedAsyncBackend, resolve_vetted, tls_context
from server.settings import Settings
from server.storage.jobs import CallbackRecord, JobFiles, JobStore
from server.storage.outages import log_failure, retry_async

logger = logging.getLogger(__name__)

MAX_CALLBACK_URL_LENGTH = 2048
SIGNATURE_HEADER = "X-Phota-Signature"
JOB_ID_HEADER = "X-Phota-Job-Id"
ATTEMPT_HEADER = "X-Phota-Delivery-Attempt"
_USER_AGENT = b"phota-enhance-local/callbacks"
# After a storage failure, the dispatcher looks again this much later.
_IDLE_RECHECK_S = 5.0


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def sign_body(secret: str, body: bytes) -> str:
    """The ``X-Phota-Signature`` value of ``body``: ``sha256=`` and the hex HMAC-SHA256 under ``secret``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


async def check_callback_url(url: str, settings: Settings) -> None:
    """Refuse a ``callback_url`` that could never be delivered to under the operator's settings: not
    https (unless ``allow_http_callbacks``), malformed, with credentials, or whose host is (or resolves
    to) an address the image-URL rules refuse (``allow_private_urls``).

    Raises:
        BadRequestError: with a detail naming the rule.
    """
    if len(url) > MAX_CALLBACK_URL_LENGTH:
        raise BadRequestError(f"callback_url is longer than {MAX_CALLBACK_URL_LENGTH} characters.")
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise BadRequestError("callback_url is not a valid URL.") from exc
    allowed = ("https", "http") if settings.allow_http_callbacks else ("https",)
    if parsed.scheme not in allowed:
        hint = "" if settings.allow_http_callbacks else " (plain http is off: ENHANCE_ALLOW_HTTP_CALLBACKS)"
        raise BadRequestError(f"callback_url must be an {' or '.join(allowed)} URL{hint}.")
    if not parsed.host:
        raise BadRequestError("callback_url has no host.")
    if parsed.userinfo:
        raise BadRequestError("callback_url must not carry credentials (user:password@).")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        await resolve_vetted(parsed.host, port, allow_private=settings.allow_private_urls)
    except OSError as exc:
        raise BadRequestError(f"callback_url host {parsed.host} could not be resolved.") from exc
    except OutboundRefusedError as exc:
        raise BadRequestError(f"callback_url refused: {parsed.host} is a {exc.reason}.") from exc


async def post_callback(url: str, body: bytes, headers: dict[str, str], settings: Settings) -> int:
    """POST ``body`` to ``url`` through a vetted connection and return the HTTP status (the response body
    is not read). Raises ``OutboundRefusedError``, or ``httpcore``/``TimeoutError`` errors on failure."""
    target = httpx.URL(url)
    request_headers = [(b"Host", target.netloc), (b"User-Agent", _USER_AGENT)]
    request_headers += [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]
    request_headers.append((b"Content-Length", str(len(body)).encode()))
    pool = httpcore.AsyncConnectionPool(
        ssl_context=tls_context() if target.scheme == "https" else None,
        network_backend=VettedAsyncBackend(settings.allow_private_urls),
        retries=0,
        http1=True,
        http2=False,
    )
    timeout = settings.callback_timeout_s
    request_url = httpcore.URL(
        scheme=target.raw_scheme, host=target.raw_host, port=target.port, target=target.raw_path or b"/"
    )
    async with pool:
        with anyio.fail_after(timeout):
            async with pool.stream(
                "POST",
                request_url,
                headers=request_headers,
                content=body,
                extensions={"timeout": {"connect": timeout, "read": timeout, "write": timeout, "pool": timeout}},
            ) as response:
                return response.status


def _failure_reason(exc: BaseException, timeout_s: float) -> str:
    """A short description of a failed delivery for the log and the database (no internal text)."""
    if isinstance(exc, OutboundRefusedError):
        return f"refused: {exc}"
    if isinstance(exc, TimeoutError | httpcore.TimeoutException):
        return f"no answer within {timeout_s:g} s"
    if isinstance(exc, httpcore.ConnectError):
        return "could not connect"
    if isinstance(exc, httpcore.ProtocolError):
        return "invalid HTTP response"
    if isinstance(exc, httpcore.NetworkError):
        return "connection failed"
    return type(exc).__name__


class CallbackDispatcher:
    """Delivers due callbacks in the background, ``callback_concurrency`` at a time; never blocks jobs."""

    def __init__(
        self,
        store: JobStore,
        files: JobFiles,
        settings: Settings,
        *,
        owner: str = "",
        clock: Callable[[], dt.datetime] = _utc_now,
    ) -> None:
        self._store = store
        self._files = files
        self._settings = settings
        self._owner = owner
        self._clock = clock
        self._wake = asyncio.Event()
        self._in_flight: set[str] = set()
        self._deliveries: set[asyncio.Task[None]] = set()

    @property
    def deliveries_in_flight(self) -> int:
        """Deliveries running now (each one: prepare, POST, record)."""
        return len(self._deliveries)

    def wake(self) -> None:
        """Look for due callbacks now (a job has just ended)."""
        self._wake.set()

    def lease_s(self) -> float:
        """A delivery's lease: one POST's time limit, and ``job_lease_s`` more for its bookkeeping."""
        return self._settings.callback_timeout_s + self._settings.job_lease_s

    def retry_delay_s(self, failed_attempts: int) -> float:
        """Seconds to wait after the ``failed_attempts``-th failure (1, 2, ...)."""
        s = self._settings
        return min(s.callback_retry_max_s, s.callback_retry_base_s * 2 ** (failed_attempts - 1))

    async def run(self) -> None:
        """The dispatch loop (runs until cancelled; then in-flight deliveries are cancelled too and stay
        PENDING in the database, to be sent again after a restart)."""
        try:
            while True:
                self._wake.clear()
                try:
                    timeout = await self._dispatch_due()
                except Exception:
                    log_failure(logger, "looking for due callbacks failed; trying again shortly")
                    timeout = _IDLE_RECHECK_S
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout)
        finally:
            for task in list(self._deliveries):
                task.cancel()

    async def _dispatch_due(self) -> float | None:
        """Start the due deliveries there is room for; returns how long to sleep (None: until woken)."""
        free = self._settings.callback_concurrency - len(self._in_flight)
        if free <= 0:
            return None  # no free slot: a finished delivery wakes the loop
        lease_s = self.lease_s()
        for _ in range(free):
            now = self._clock()
            # Never a callback this process is delivering already: its lease may have run out while the
            # delivery waited out an outage, and a second delivery would POST it twice.
            in_flight = frozenset(self._in_flight)
            record = await anyio.to_thread.run_sync(
                self._store.claim_due_callback, self._owner, now, lease_s, in_flight
            )
            if record is None:
                break
            self._start(record)
        if len(self._in_flight) >= self._settings.callback_concurrency:
            return None
        # Other processes' jobs end too, without waking this loop: look again at least this often.
        poll_s = self._settings.job_poll_interval_s
        now = self._clock()
        next_due = await anyio.to_thread.run_sync(self._store.next_callback_due, now)
        if next_due is None:
            return poll_s
        return min(poll_s, max(0.01, (next_due - self._clock()).total_seconds()))

    def _start(self, record: CallbackRecord) -> None:
        self._in_flight.add(record.job_id)
        task = asyncio.create_task(self._deliver(record), name=f"callback {record.job_id}")
        self._deliveries.add(task)

        def _done(finished: asyncio.Task[None]) -> None:
            self._deliveries.discard(finished)
            self._in_flight.discard(record.job_id)
            self._wake.set()

        task.add_done_callback(_done)

    async def _deliver(self, record: CallbackRecord) -> None:
        """One POST of one callback, and its bookkeeping (a storage failure is logged; the callback stays
        PENDING and is tried again after ``_IDLE_RECHECK_S``)."""
        try:
            await self._deliver_once(record)
        except Exception:
            log_failure(logger, "job %s: callback delivery failed before it was recorded", record.job_id)
            await asyncio.sleep(_IDLE_RECHECK_S)  # keeps the job in flight meanwhile: no hot loop

    async def _deliver_once(self, record: CallbackRecord) -> None:
        store, settings = self._store, self._settings
        patience_s = settings.outage_patience_s
        what = f"job {record.job_id}: callback"
        job = await retry_async(lambda: store.get(record.job_id), what=what, patience_s=patience_s)
        if job is None:
            return  # expired and swept meanwhile: its callback row went with it
        images = await anyio.to_thread.run_sync(self._files.read_images, job.id)
        body = job_document_bytes(job, images)
        secret = await retry_async(lambda: store.webhook_secret(job.account_id), what=what, patience_s=patience_s)
        attempt = record.attempts + 1
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign_body(secret, body),
            JOB_ID_HEADER: job.id,
            ATTEMPT_HEADER: str(attempt),
        }
        # The preparation above may have waited out an outage for longer than the lease: the POST goes out
        # only if this process still holds the callback, under a lease renewed to cover it and its record.
        held = await retry_async(
            lambda: store.hold_callback(
                job.id, owner=self._owner, attempts=record.attempts, now=self._clock(), lease_s=self.lease_s()
            ),
            what=what,
            patience_s=patience_s,
        )
        if not held:
            logger.warning(
                "job %s: callback taken over by another process while it was prepared; not sent here", job.id
            )
            return
        error: str | None = None
        try:
            status = await post_callback(record.url, body, headers, settings)
            if not 200 <= status < 300:
                error = f"answered HTTP {status}"
        except Exception as exc:
            error = _failure_reason(exc, settings.callback_timeout_s)
        now = self._clock()
        retry_at = None
        if error is not None and attempt < settings.callback_max_attempts:
            retry_at = now + dt.timedelta(seconds=self.retry_delay_s(attempt))
        # Waits out a database outage: a POST that was answered but not recorded would be sent again.
        recorded = await retry_async(
            lambda: store.record_callback_attempt(
                job.id, owner=self._owner, delivered=error is None, now=now, error=error, retry_at=retry_at
            ),
            what=f"job {job.id}: recording a callback attempt",
            patience_s=patience_s,
        )
        if not recorded:
            logger.warning("job %s: callback attempt %d ended after its lease ran out; not counted", job.id, attempt)
        elif error is None:
            logger.info("job %s: callback delivered (attempt %d)", job.id, attempt)
        elif retry_at is not None:
            logger.info("job %s: callback attempt %d failed (%s); retrying at %s", job.id, attempt, error, retry_at)
        else:
            logger.warning("job %s: callback gave up after %d attempts (%s)", job.id, attempt, error)
