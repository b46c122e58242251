"""Profiles: accept (durably), build in the background, resume after a restart, answer, delete.

Life of a profile:

1. **Add**: the body is validated (5..50 references, the tier's range), the references are written to
   disk (fsynced) and the row committed as VALIDATING; only then is ``{"profile_id"}`` answered.
2. **VALIDATING**: each reference is fetched or decoded (same decoder and URL limits as enhance); the
   bytes of the usable ones are kept in the profile's directory. Two profiles validate at a time.
3. **QUEUING**: waiting for the face work, which runs one profile at a time, through a slot of the
   shared worker (profiles and enhancements share the device).
4. **IN_PROGRESS**: faces are found and embedded in every reference; ``build_profile`` picks the
   person present across them and rejects outliers.
5. **READY** (embeddings and a profile picture stored) or **ERROR** with a message saying why.

Builds are claimed from the database (:meth:`ProfileStore.claim_next`) under a lease that a heartbeat
renews, so any number of processes on one database share them and each profile is built by one. A
profile whose builder died (the service stopped mid-build) is claimed again when the lease runs out
(at once when the dead process ran on this host) and built from the beginning; a profile started more
than ``MAX_ATTEMPTS`` times ends in ERROR so that an input that kills the process cannot loop forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import anyio.to_thread

from models.pipeline import (
    EnhanceError,
    FaceModels,
    ImageFetchError,
    ProfileBuildError,
    build_identity_profile,
    check_reference,
)
from server.failures import FeatureUnavailableError, NotFoundError, ProfileNotReadyError
from server.features import IDENTITY_OFF
from server.image_source import load_image_source
from server.outbound import FetchPolicy
from server.profiles._schemas import AddProfileRequest
from server.settings import Settings
from server.storage import Account
from server.storage.leases import process_owner_id
from server.storage.outages import log_failure, outage_kind, retry_async
from server.storage.profiles import ProfileRecord, ProfileStatus, ProfileStore
from server.stored_text import storable
from server.worker import EnhanceWorker

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
FETCH_THREADS = 4
VALIDATION_CONCURRENCY = 2


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class ProfileService:
    """The profiles of every account, and the background task that builds them."""

    def __init__(
        self,
        *,
        store: ProfileStore,
        models: FaceModels | None,
        worker: EnhanceWorker,
        settings: Settings,
        clock: Callable[[], dt.datetime] = _utc_now,
    ) -> None:
        self.store = store
        self._models = models
        self._lane = worker.background_lane()
        self._settings = settings
        self._clock = clock
        self.owner = process_owner_id()  # this process's name on the leases it holds
        self._wake = asyncio.Event()  # a profile was added here: claim at once
        self._tasks: list[asyncio.Task[None]] = []
        self._held: set[str] = set()  # profiles this process builds (their leases are renewed)
        self._validating = asyncio.Semaphore(VALIDATION_CONCURRENCY)
        self._computing = asyncio.Lock()
        self._draining = False  # stopping: claim nothing more

    # --- lifecycle ----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Sweep leftovers, free the leases of dead processes of this host, start the builder and its
        heartbeat."""
        for name in await anyio.to_thread.run_sync(self.store.leftover_directories):
            await anyio.to_thread.run_sync(self.store.remove_directory, name)
        await anyio.to_thread.run_sync(self.store.expire_leases_of_dead_processes, self.owner, self._clock())
        if self._models is None:  # identity off: no builds here (add refuses); processes with it build them
            return
        self._tasks = [
            asyncio.create_task(self._run(), name="profile-builder"),
            asyncio.create_task(self._heartbeat(), name="profile-heartbeat"),
        ]

    def drain(self) -> None:
        """Claim no more builds (the process is stopping); builds under way go on until :meth:`stop`."""
        self._draining = True
        self._wake.set()

    async def stop(self) -> None:
        """Cancel the builder; an interrupted build stays unfinished, its lease handed back, and is built
        again by the next process that claims it."""
        cut_short = list(self._held)  # read before the cancelled builds forget their profiles
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if cut_short:
            await anyio.to_thread.run_sync(self.store.release, self.owner, cut_short)

    async def idle(self) -> None:
        """Wait until no profile is unfinished in the database (tests)."""
        while True:
            if not self._held and not await anyio.to_thread.run_sync(self.store.unfinished):
                return
            await asyncio.sleep(0.05)

    # --- requests ---------------------------------------------------------------------------------

    async def add(self, body: AddProfileRequest, account: Account) -> ProfileRecord:
        if self._models is None:
            raise FeatureUnavailableError(IDENTITY_OFF)
        record = await anyio.to_thread.run_sync(
            lambda: self.store.create(
                account.id, body.image_urls, training_tier=body.training_tier, tag=body.tag, now=self._clock()
            )
        )
        logger.info("profile %s: accepted with %d references", record.id, record.reference_count)
        self._wake.set()
        return record

    async def get(self, account: Account, profile_id: str) -> ProfileRecord:
        record = None
        if storable(profile_id):  # an id with NUL was never stored, and PostgreSQL cannot even look it up
            record = await anyio.to_thread.run_sync(self.store.get, account.id, profile_id)
        if record is None:
            raise NotFoundError(f"Unknown profile id {profile_id!r}.")
        return record

    async def ids(self, account: Account, tag: str | None) -> list[str]:
        return await anyio.to_thread.run_sync(self.store.ids, account.id, tag)

    async def picture(self, account: Account, profile_id: str) -> bytes:
        record = await self.get(account, profile_id)
        picture = await anyio.to_thread.run_sync(self.store.picture, account.id, profile_id)
        if picture is None:
            raise ProfileNotReadyError(f"Profile {profile_id!r} is {record.status}: it has no picture until READY.")
        return picture

    async def delete(self, account: Account, profile_id: str) -> None:
        if not storable(profile_id) or not await anyio.to_thread.run_sync(self.store.delete, account.id, profile_id):
            raise NotFoundError(f"Unknown profile id {profile_id!r}.")
        logger.info("profile %s: deleted with its embeddings, picture and references", profile_id)

    # --- building -----------------------------------------------------------------------------------

    async def _run(self) -> None:
        """Claim and build profiles: validations overlap (``VALIDATION_CONCURRENCY`` at a time), the
        face work runs one profile at a time."""
        builds: set[asyncio.Task[None]] = set()
        settings = self._settings
        try:
            while True:
                if self._draining:  # builds under way go on; stop() cancels this wait
                    await asyncio.get_running_loop().create_future()
                await self._validating.acquire()
                self._wake.clear()
                try:
                    record = await anyio.to_thread.run_sync(
                        lambda: self.store.claim_next(self.owner, self._clock(), settings.job_lease_s)
                    )
                except Exception:
                    log_failure(logger, "claiming a profile build failed; trying again shortly")
                    record = None
                if record is None:
                    self._validating.release()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), settings.job_poll_interval_s)
                    continue
                self._held.add(record.id)
                task = asyncio.create_task(self._build_one(record), name=f"profile-{record.id}")
                builds.add(task)
                task.add_done_callback(builds.discard)
        finally:
            for task in builds:
                task.cancel()
            if builds:
                await asyncio.wait(builds)

    async def _heartbeat(self) -> None:
        """Renew the leases of the profiles this process builds, every third of ``job_lease_s``."""
        lease_s = self._settings.job_lease_s
        while True:
            await asyncio.sleep(lease_s / 3)
            try:
                held = list(self._held)
                await anyio.to_thread.run_sync(self.store.renew_leases, self.owner, held, self._clock(), lease_s)
            except Exception:
                log_failure(logger, "renewing profile leases failed; trying again")

    async def _build_one(self, record: ProfileRecord) -> None:
        slot_held = True

        def release_slot() -> None:
            nonlocal slot_held
            if slot_held:
                slot_held = False
                self._validating.release()

        try:
            await self._build(record, release_slot)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if outage_kind(exc) is not None:
                # The database or the store went away mid-build: not the profile's fault; built again later.
                logger.warning("profile %s: build interrupted by an outage (%s); handed back", record.id, exc)
                await retry_async(
                    lambda: self.store.release(self.owner, [record.id]),
                    what=f"profile {record.id}: handing it back",
                    patience_s=self._settings.outage_patience_s,
                )
                return
            logger.exception("profile %s: unexpected failure while building", record.id)
            message = "Internal error while building the profile; add it again."
            await anyio.to_thread.run_sync(self._fail, record.id, message)
        finally:
            release_slot()
            self._held.discard(record.id)

    async def _build(self, record: ProfileRecord, release_slot: Callable[[], None]) -> None:
        """Build the claimed profile; ``release_slot`` hands the validation slot back once validation ends."""
        profile_id = record.id
        if record.attempts > MAX_ATTEMPTS:
            message = f"The build was interrupted {record.attempts - 1} times (the service stopped); add it again."
            logger.warning("profile %s: %s", profile_id, message)
            await anyio.to_thread.run_sync(self._fail, profile_id, message)
            return
        references = await anyio.to_thread.run_sync(self.store.references, profile_id)
        if references is None:
            return
        problems = await anyio.to_thread.run_sync(self._validate_references, profile_id, references)
        release_slot()
        if not await anyio.to_thread.run_sync(self._set_status, profile_id, "QUEUING"):
            return
        async with self._computing:
            await self._lane.run(self._compute, profile_id, problems)

    def _set_status(self, profile_id: str, status: ProfileStatus) -> bool:
        if self.store.set_status(profile_id, status, self._clock(), owner=self.owner):
            return True
        logger.warning("profile %s: deleted, or its lease lost to another process; this build stops", profile_id)
        return False

    def _fail(self, profile_id: str, message: str) -> None:
        self.store.finish(profile_id, self._clock(), owner=self.owner, message=message)

    def _validate_references(self, profile_id: str, references: list[str]) -> list[str | None]:
        """VALIDATING: fetch or decode every reference (same decoder and URL limits as enhance), keep
        the bytes of the usable ones in the profile's directory; returns why each one is unusable (None
        when it is usable)."""
        policy = FetchPolicy(
            allow_private=self._settings.allow_private_urls,
            max_bytes=self._settings.fetch_max_bytes,
            timeout_s=self._settings.fetch_timeout_s,
        )

        def validate(index: int, reference: str) -> str | None:
            try:
                data = load_image_source(reference, policy)
                check_reference(data, max_pixels=self._settings.max_pixels)
            except ImageFetchError as error:
                logger.info("profile %s: reference #%d could not be fetched: %s", profile_id, index + 1, error.detail)
                return "could not be fetched"
            except EnhanceError as error:
                logger.info("profile %s: reference #%d is not usable: %s", profile_id, index + 1, error.detail)
                return "is not a decodable image"
            self.store.save_reference_image(profile_id, index, data)
            return None

        with ThreadPoolExecutor(max_workers=FETCH_THREADS) as pool:
            return list(pool.map(validate, range(len(references)), references))

    def _reference(self, profile_id: str, index: int) -> bytes | str:
        """The usable reference's stored bytes, or why it cannot be used."""
        data = self.store.reference_image(profile_id, index)
        return data if data is not None else "could not be read back"

    def _compute(self, profile_id: str, problems: list[str | None]) -> None:
        """IN_PROGRESS: faces and embeddings of every reference, the person, the picture (blocking)."""
        models = self._models
        if models is None:  # never queued with the identity feature off (add refuses, start skips)
            raise FeatureUnavailableError(IDENTITY_OFF)
        if not self._set_status(profile_id, "IN_PROGRESS"):
            return
        references = [
            problem if problem is not None else self._reference(profile_id, index)
            for index, problem in enumerate(problems)
        ]
        try:
            built = build_identity_profile(
                references, models, min_face=self._settings.face_min_size, max_pixels=self._settings.max_pixels
            )
        except ProfileBuildError as error:
            logger.info("profile %s: ERROR: %s", profile_id, error)
            self.store.finish(profile_id, self._clock(), owner=self.owner, message=str(error))
            return
        message = None
        if built.left_out:
            message = f"Built from {built.used} of {built.references} references; " + "; ".join(
                f"#{index + 1} {reason}" for index, reason in sorted(built.left_out.items())
            )
        if not self.store.finish(
            profile_id,
            self._clock(),
            owner=self.owner,
            embeddings=built.embeddings,
            picture=built.picture,
            message=message,
        ):
            logger.warning("profile %s: deleted, or its lease lost to another process; result dropped", profile_id)
            return
        logger.info("profile %s: READY from %d of %d references", profile_id, built.used, built.references)
