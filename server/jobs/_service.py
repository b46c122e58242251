"""Asynchronous enhance jobs: accept (durably), run in the background, resume after a restart, expire.

Life of a job:

1. **Submit** (``POST /v1/phota/enhance`` with ``async: true``): the request gets the synchronous
   checks (field combinations, profiles), its ``callback_url`` is checked, and its image is fetched and
   decoded, so a bad input fails at once with the same 400 a synchronous call gives. The image's bytes
   are written (fsynced) to ``<data_dir>/jobs/<job_id>/source`` and the job row is committed as QUEUED;
   only then is the 202 sent. A job never needs its image URL again.
2. **Run**: ``max_concurrent_jobs`` runners per process claim jobs from the database
   (:meth:`JobStore.claim_next`: the account served least recently first, then the oldest job; one
   process per job, whatever the number of processes on the database), mark them RUNNING under this
   process's lease (counting the attempt) and run the same code path as a synchronous request, through
   the shared worker (so jobs and synchronous requests share the device's slots). A heartbeat renews
   the leases every third of ``job_lease_s``. The result (or the error a synchronous call would have
   answered) ends the job, only if this process still holds it, in one transaction with its callback
   queued.
3. **Take-over**: a job whose process died keeps its lease until it runs out (at once when the dead
   process ran on this host: a restart resumes immediately), then any process claims it again. A job
   started more than ``job_max_attempts`` times FAILs instead of running again, so an input that kills
   the process cannot loop forever.
4. **Expiry**: a finished job, its files and its callback are deleted ``url_ttl_s`` after it ends (the
   lifetime of its download URLs); then its id answers 404 and its ``client_request_id`` is free again.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

import anyio.to_thread

from models.pipeline import EnhanceError, check_source
from server.enhance_bodies import EnhanceRequest
from server.enhancing import load_source, parameters_header, resolve_candidates, run_enhance, validate_request
from server.failures import NotFoundError, OverloadedError
from server.jobs._callbacks import CallbackDispatcher, check_callback_url
from server.jobs._documents import job_document
from server.jobs._schemas import JobResponse
from server.profiles import ProfileCandidates
from server.runtime import ModelRuntime
from server.settings import Settings
from server.storage import Account, LocalFileStore
from server.storage.jobs import JobFiles, JobRecord, JobStore, NewJob, new_job_id
from server.storage.leases import process_owner_id
from server.storage.objects import PatientObjectStore
from server.storage.outages import log_failure, outage_kind, retry_async
from server.stored_text import storable
from server.worker import EnhanceWorker

logger = logging.getLogger(__name__)

# Fields of the request that only concern submission; the rest is what the job runs with.
_SUBMIT_ONLY_FIELDS = {"image", "async_", "callback_url", "client_request_id"}
# What a job's request carries as its image when it runs (never read: its stored bytes are handed over).
_STORED_SOURCE = "stored-source"
# A job directory without a row is left this long before it is swept (a submit may be writing it).
_ORPHAN_MIN_AGE_S = 3600.0


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class JobService:
    """Accepts, runs, resumes and expires asynchronous enhance jobs; delivers their callbacks.

    ``start()`` must be awaited (in the app's lifespan) before jobs run; ``stop()`` cancels the
    background tasks, leaving unfinished work in the database for the next start.
    """

    def __init__(
        self,
        *,
        store: JobStore,
        files: JobFiles,
        runtime: ModelRuntime,
        worker: EnhanceWorker,
        outputs: LocalFileStore,
        settings: Settings,
        clock: Callable[[], dt.datetime] = _utc_now,
        candidates: ProfileCandidates | None = None,
    ) -> None:
        self.store = store
        self.files = files
        self._runtime = runtime
        self._candidates = candidates
        self._lane = worker.background_lane()
        self._outputs = outputs
        self._settings = settings
        self._clock = clock
        self.owner = process_owner_id()  # this process's name on the leases it holds
        # The runners' and the dispatcher's view of the store: waits out an outage (a submit does not).
        self._patient_files = copy.copy(files)
        self._patient_files.objects = PatientObjectStore(files.objects, settings.outage_patience_s)
        self._patient_outputs = copy.copy(outputs)
        self._patient_outputs.objects = PatientObjectStore(outputs.objects, settings.outage_patience_s)
        self.dispatcher = CallbackDispatcher(store, self._patient_files, settings, owner=self.owner, clock=clock)
        self._wake = asyncio.Event()  # a job was submitted here: runners look at once
        self._pending = 0  # unfinished jobs in the database, as of the last look (metrics)
        self._reserved = 0  # submits of this process between their queue check and their commit
        self._tasks: list[asyncio.Task[None]] = []  # the runners first, then the background tasks
        self._runner_count = 0
        self._busy: set[asyncio.Task[Any]] = set()  # runners in the middle of a job
        self._held: set[str] = set()  # ids of the jobs this process runs (their leases are renewed)
        self._stopping = False

    @property
    def pending(self) -> int:
        """Jobs accepted and not finished (queued or running) on the whole database, as of the last
        heartbeat or submit."""
        return self._pending

    # --- lifecycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        """Free the leases of dead processes of this host, then start the runners, the heartbeat, the
        callback dispatcher and the sweeper."""
        now = self._clock()
        freed = await anyio.to_thread.run_sync(self.store.expire_leases_of_dead_processes, self.owner, now)
        self._pending = await anyio.to_thread.run_sync(self.store.count_unfinished)
        if self._pending:
            logger.info(
                "%d unfinished jobs in the database (%d leases of dead processes of this host ended)",
                self._pending,
                freed,
            )
        self._runner_count = self._settings.max_concurrent_jobs
        self._tasks = [asyncio.create_task(self._run_jobs(), name=f"job runner {i}") for i in range(self._runner_count)]
        self._tasks.append(asyncio.create_task(self.dispatcher.run(), name="callback dispatcher"))
        self._tasks.append(asyncio.create_task(self._heartbeat(), name="job heartbeat"))
        self._tasks.append(asyncio.create_task(self._sweep_periodically(), name="job sweeper"))

    def drain(self) -> None:
        """Claim no more jobs (the process is stopping): a runner ends after its current job, an idle one at
        once. Called on the event loop's thread (the SIGTERM handler); :meth:`stop` follows."""
        self._stopping = True
        self._wake.set()

    async def stop(self) -> None:
        """Stop taking jobs, give running ones ``job_shutdown_grace_s`` to finish, then cancel every
        background task. A job cut short goes back to QUEUED (its attempt counted) for any process to
        run; a callback cut short stays PENDING and is sent again."""
        self._stopping = True
        runners, others = self._tasks[: self._runner_count], self._tasks[self._runner_count :]
        idle = [task for task in runners if task not in self._busy]
        busy = [task for task in runners if task in self._busy]
        # The heartbeat keeps the running jobs' leases through the grace period.
        heartbeat = [task for task in others if task.get_name() == "job heartbeat"]
        for task in idle + [task for task in others if task not in heartbeat]:
            task.cancel()
        cut_short: list[str] = []
        if busy:
            _, unfinished = await asyncio.wait(busy, timeout=self._settings.job_shutdown_grace_s)
            cut_short = list(self._held)  # read before the cancelled runners forget their jobs
            for task in unfinished:
                logger.warning("stopping with a job still running: it goes back to the queue")
                task.cancel()
        for task in heartbeat:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5.0)
        self._tasks = []
        if cut_short:
            released = await retry_async(
                lambda: self.store.release(self.owner, cut_short),
                what="handing jobs back",
                patience_s=min(self._settings.outage_patience_s, 10.0),
            )
            logger.info("handed %d unfinished jobs back to the queue", released)
        with contextlib.suppress(Exception):  # best effort: a lease not handed back runs out by itself
            callbacks = await anyio.to_thread.run_sync(self.store.release_callbacks, self.owner)
            if callbacks:
                logger.info("handed %d callbacks back (cut short; they are sent again)", callbacks)

    # --- requests ---------------------------------------------------------------------------------

    async def submit(
        self, body: EnhanceRequest, account: Account, *, base_url: str, today: dt.date, request_id: str
    ) -> JobRecord:
        """Validate and durably store a job; returns it (the original one for a repeated
        ``client_request_id``). Raises the same domain errors as a synchronous request, and
        ``OverloadedError`` when ``job_queue_size`` jobs are already waiting or running."""
        await resolve_candidates(await validate_request(body), account, self._candidates)
        if body.callback_url is not None:
            await check_callback_url(body.callback_url, self._settings)
        if body.client_request_id is not None:
            existing = await self._find_by_client_request(account, body.client_request_id)
            if existing is not None:
                return existing
        self._reserved += 1  # before the first await, so this process's concurrent submits cannot overshoot
        try:
            self._pending = await anyio.to_thread.run_sync(self.store.count_unfinished)
            if self._pending + self._reserved > self._settings.job_queue_size:
                raise OverloadedError(f"The job queue is full ({self._settings.job_queue_size} jobs); retry later.")
            record, created = await self._store_new(
                body, account, base_url=base_url, today=today, request_id=request_id
            )
        finally:
            self._reserved -= 1
        if created:
            self._pending += 1
            self._wake.set()
            logger.info("job %s: accepted for %s (request %s)", record.id, account.id, request_id)
        return record

    async def document(self, job_id: str, account: Account) -> JobResponse:
        """The job document of the account's ``job_id``. Raises ``NotFoundError`` for an unknown, expired
        or other account's job."""
        job = await anyio.to_thread.run_sync(self.store.get, job_id, account.id) if storable(job_id) else None
        if job is None or self._expired(job):
            raise NotFoundError(f"Unknown job id {job_id!r}.")
        images = await anyio.to_thread.run_sync(self.files.read_images, job.id) if job.status == "SUCCEEDED" else []
        return job_document(job, images)

    async def webhook_secret(self, account: Account) -> str:
        """The account's webhook secret (created on first use)."""
        return await anyio.to_thread.run_sync(self.store.webhook_secret, account.id)

    # --- submission helpers -----------------------------------------------------------------------

    def _expired(self, job: JobRecord) -> bool:
        return job.expires_at is not None and job.expires_at <= self._clock()

    async def _find_by_client_request(self, account: Account, client_request_id: str) -> JobRecord | None:
        existing = await anyio.to_thread.run_sync(self.store.find_by_client_request, account.id, client_request_id)
        if existing is not None and self._expired(existing):
            await anyio.to_thread.run_sync(self.sweep, self._clock())  # frees the client_request_id
            return None
        return existing

    async def _store_new(
        self, body: EnhanceRequest, account: Account, *, base_url: str, today: dt.date, request_id: str
    ) -> tuple[JobRecord, bool]:
        """Fetch and decode the image, store its bytes, then the row. Returns (job, created); created is
        False when a concurrent submit with the same ``client_request_id`` stored its job first."""
        settings = self._settings
        data = await load_source(body.image, settings)
        # Checked only to refuse a bad image now; the job hands the stored bytes to the pipeline when it runs.
        await anyio.to_thread.run_sync(check_source, data, self._runtime.options())
        job = NewJob(
            id=new_job_id(),
            account_id=account.id,
            client_request_id=body.client_request_id,
            options=body.model_dump(mode="json", exclude=_SUBMIT_ONLY_FIELDS),
            submitted_on=today,
            base_url=base_url,
            callback_url=body.callback_url,
            request_id=request_id,
            created_at=self._clock(),
        )
        try:
            await anyio.to_thread.run_sync(self.files.save_source, job.id, data)
            record, created = await anyio.to_thread.run_sync(self.store.create, job)
        except BaseException:
            # The store may be the thing that failed: the original error is the answer; a source left
            # behind has no row and is swept as an orphan.
            with contextlib.suppress(Exception):
                await anyio.to_thread.run_sync(self.files.remove, job.id)
            raise
        if not created:
            await anyio.to_thread.run_sync(self.files.remove, job.id)
        return record, created

    # --- running ----------------------------------------------------------------------------------

    async def _run_jobs(self) -> None:
        """One runner: claim jobs from the database and run them until the service stops."""
        runner = asyncio.current_task()
        assert runner is not None
        settings = self._settings
        while not self._stopping:
            self._wake.clear()
            try:
                job = await anyio.to_thread.run_sync(
                    lambda: self.store.claim_next(self.owner, self._clock(), settings.job_lease_s)
                )
            except Exception:
                log_failure(logger, "claiming a job failed; trying again shortly")
                job = None
            if job is None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), settings.job_poll_interval_s)
                continue
            self._busy.add(runner)
            self._held.add(job.id)
            try:
                await self._run_job(job)
            except Exception:
                # Only storage failures get here (the job's own failures end the job); the job stays
                # RUNNING under this process's lease, which runs out, and any process runs it again.
                log_failure(logger, "job %s: could not be run", job.id)
            finally:
                self._held.discard(job.id)
                self._busy.discard(runner)

    async def _heartbeat(self) -> None:
        """Renew the leases of the jobs this process runs, every third of ``job_lease_s``; refresh the
        count of unfinished jobs."""
        settings = self._settings
        while True:
            await asyncio.sleep(settings.job_lease_s / 3)
            try:
                held = list(self._held)
                kept = await anyio.to_thread.run_sync(
                    self.store.renew_leases, self.owner, held, self._clock(), settings.job_lease_s
                )
                for job_id in set(held) - kept:
                    if job_id in self._held:  # still running here, yet no longer ours
                        logger.warning(
                            "job %s: lease lost to another process; this run's outcome will be dropped", job_id
                        )
                self._pending = await anyio.to_thread.run_sync(self.store.count_unfinished)
            except Exception:
                log_failure(logger, "renewing job leases failed; trying again")

    async def _run_job(self, job: JobRecord) -> None:
        if job.attempts > self._settings.job_max_attempts:
            detail = (
                f"The job was interrupted {job.attempts - 1} times (the service stopped while running it) "
                "and was not run again."
            )
            logger.warning("job %s: %s", job.id, detail)
            await self._finish(job, error=("INTERNAL_ERROR", detail))
            return
        logger.info("job %s: attempt %d started", job.id, job.attempts)
        try:
            source = await anyio.to_thread.run_sync(self._patient_files.read_source, job.id)
            # The stored bytes go to the pipeline as they are; the request's image string is not kept.
            body = EnhanceRequest.model_validate({**job.options, "image": _STORED_SOURCE})
            outcome = await run_enhance(
                body,
                source=source,
                runtime=self._runtime,
                worker=self._lane,
                files=self._patient_outputs,
                settings=self._settings,
                today=job.submitted_on,
                base_url=job.base_url,
                account=Account(id=job.account_id),
                candidates=self._candidates,
            )
        except EnhanceError as exc:
            logger.info("job %s: failed with %s: %s", job.id, exc.code, exc.detail)
            await self._finish(job, error=(exc.code, exc.detail))
            return
        except Exception as exc:
            if outage_kind(exc) is not None:
                # The database or the store stayed down longer than outage_patience_s: not the job's fault.
                await self._hand_back(job, exc)
                return
            logger.exception("job %s: unexpected failure (request %s)", job.id, job.request_id)
            await self._finish(job, error=("INTERNAL_ERROR", f"Internal error; quote the job id {job.id}."))
            return
        images = outcome.response.images
        if images:
            try:
                await anyio.to_thread.run_sync(self._patient_files.save_images, job.id, images)
            except Exception as exc:
                if outage_kind(exc) is None:
                    raise
                await self._hand_back(job, exc)
                return
        logger.info("job %s: succeeded; parameters %s", job.id, parameters_header(outcome.explanation))
        await self._finish(job, result=outcome.response.model_dump(mode="json", exclude={"images"}))

    async def _finish(
        self, job: JobRecord, *, result: dict[str, Any] | None = None, error: tuple[str, str] | None = None
    ) -> None:
        self._held.discard(job.id)  # ending it: the heartbeat leaves it alone from now on
        finished = await retry_async(
            lambda: self.store.finish(
                job.id,
                job.attempts,
                owner=self.owner,
                now=self._clock(),
                ttl_s=self._settings.url_ttl_s,
                result=result,
                error=error,
            ),
            what=f"job {job.id}: recording its end",
            patience_s=self._settings.outage_patience_s,
        )
        if finished is None:
            logger.warning("job %s: attempt %d ended after the job had moved on; outcome dropped", job.id, job.attempts)
            return
        self._pending = max(0, self._pending - 1)
        await anyio.to_thread.run_sync(self._patient_files.remove_source, job.id)
        if finished.callback_url:
            self.dispatcher.wake()

    async def _hand_back(self, job: JobRecord, error: Exception) -> None:
        """Give a job that an outage stopped back to the queue (its attempt stays counted), to run again."""
        logger.warning("job %s: a dependency stayed unavailable (%s); handing the job back to the queue", job.id, error)
        self._held.discard(job.id)
        await retry_async(
            lambda: self.store.release(self.owner, [job.id]),
            what=f"job {job.id}: handing it back",
            patience_s=self._settings.outage_patience_s,
        )

    # --- expiry -----------------------------------------------------------------------------------

    def sweep(self, now: dt.datetime) -> int:
        """Delete jobs whose expiry has passed, their files and callbacks, and job directories left
        without a row; returns how many jobs were removed (blocking)."""
        removed = self.store.remove_expired(now)
        for job_id in removed:
            self.files.remove(job_id)
        on_disk = self.files.job_ids_on_disk()
        for job_id in self.files.orphans(self.store.existing_ids(on_disk), _ORPHAN_MIN_AGE_S):
            self.files.remove(job_id)
        return len(removed)

    async def _sweep_periodically(self) -> None:
        while True:
            try:
                removed = await anyio.to_thread.run_sync(self.sweep, self._clock())
                if removed:
                    logger.info("removed %d expired jobs", removed)
            except Exception:
                log_failure(logger, "sweeping expired jobs failed")
            await asyncio.sleep(self._settings.cleanup_interval_s)
