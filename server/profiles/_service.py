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

On start, every profile still VALIDATING, QUEUING or IN_PROGRESS (the service stopped mid-build) is
built again from the beginning; a profile started more than ``MAX_ATTEMPTS`` times ends in ERROR so
that an input that kills the process cannot loop forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import anyio.to_thread
import numpy as np

from models.errors import EnhanceError, ImageFetchError
from models.faces import (
    FaceModels,
    ProfileBuildError,
    ReferenceFaces,
    build_profile,
    detect_faces,
    face_picture,
    to_uint8,
)
from models.imageio import decode_image, encode_image
from server.errors import FeatureUnavailableError, NotFoundError, ProfileNotReadyError
from server.features import IDENTITY_OFF
from server.image_source import load_image_source
from server.outbound import FetchPolicy
from server.profiles._schemas import AddProfileRequest
from server.settings import Settings
from server.storage import Account
from server.storage.profiles import ProfileRecord, ProfileStore
from server.worker import EnhanceWorker

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
# References are analysed at most this size (long side): faces of 40 px and more in a 1600-px view.
REFERENCE_MAX_SIDE = 1600
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
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._validating = asyncio.Semaphore(VALIDATION_CONCURRENCY)
        self._computing = asyncio.Lock()

    # --- lifecycle ----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Queue every unfinished profile again (oldest first), sweep leftovers, start the builder."""
        for name in await anyio.to_thread.run_sync(self.store.leftover_directories):
            await anyio.to_thread.run_sync(self.store.remove_directory, name)
        unfinished = await anyio.to_thread.run_sync(self.store.unfinished) if self._models is not None else []
        for record in unfinished:
            logger.info("profile %s was %s when the service stopped: building it again", record.id, record.status)
            self._queue.put_nowait(record.id)
        self._task = asyncio.create_task(self._run(), name="profile-builder")

    async def stop(self) -> None:
        """Cancel the builder; an interrupted build stays unfinished and is redone on the next start."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def idle(self) -> None:
        """Wait until every queued build has ended (tests)."""
        await self._queue.join()

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
        self._queue.put_nowait(record.id)
        return record

    async def get(self, account: Account, profile_id: str) -> ProfileRecord:
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
        if not await anyio.to_thread.run_sync(self.store.delete, account.id, profile_id):
            raise NotFoundError(f"Unknown profile id {profile_id!r}.")
        logger.info("profile %s: deleted with its embeddings, picture and references", profile_id)

    # --- building -----------------------------------------------------------------------------------

    async def _run(self) -> None:
        """Start a build per queued profile: validations overlap (``VALIDATION_CONCURRENCY`` at a time),
        the face work runs one profile at a time."""
        builds: set[asyncio.Task[None]] = set()
        try:
            while True:
                profile_id = await self._queue.get()
                task = asyncio.create_task(self._build_one(profile_id), name=f"profile-{profile_id}")
                builds.add(task)
                task.add_done_callback(builds.discard)
        finally:
            for task in builds:
                task.cancel()
            if builds:
                await asyncio.wait(builds)

    async def _build_one(self, profile_id: str) -> None:
        try:
            await self._build(profile_id)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("profile %s: unexpected failure while building", profile_id)
            message = "Internal error while building the profile; add it again."
            await anyio.to_thread.run_sync(self._fail, profile_id, message)
        finally:
            self._queue.task_done()

    async def _build(self, profile_id: str) -> None:
        async with self._validating:
            record = await anyio.to_thread.run_sync(self.store.start_attempt, profile_id, self._clock())
            if record is None:
                return  # deleted, or already finished
            if record.attempts > MAX_ATTEMPTS:
                message = f"The build was interrupted {record.attempts - 1} times (the service stopped); add it again."
                await anyio.to_thread.run_sync(self._fail, profile_id, message)
                return
            references = await anyio.to_thread.run_sync(self.store.references, profile_id)
            if references is None:
                return
            problems = await anyio.to_thread.run_sync(self._validate_references, profile_id, references)
        if not await anyio.to_thread.run_sync(self.store.set_status, profile_id, "QUEUING", self._clock()):
            return
        async with self._computing:
            await self._lane.run(self._compute, profile_id, problems)

    def _fail(self, profile_id: str, message: str) -> None:
        self.store.finish(profile_id, self._clock(), message=message)

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
                decode_image(data, max_side=REFERENCE_MAX_SIDE, max_pixels=self._settings.max_pixels)
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

    def _decoded_reference(self, profile_id: str, index: int) -> np.ndarray | str:
        data = self.store.reference_image(profile_id, index)
        if data is None:
            return "could not be read back"
        decoded = decode_image(data, max_side=REFERENCE_MAX_SIDE, max_pixels=self._settings.max_pixels)
        return to_uint8(decoded.rgb)

    def _compute(self, profile_id: str, problems: list[str | None]) -> None:
        """IN_PROGRESS: faces and embeddings of every reference, the person, the picture (blocking)."""
        models = self._models
        if models is None:  # never queued with the identity feature off (add refuses, start skips)
            raise FeatureUnavailableError(IDENTITY_OFF)
        if not self.store.set_status(profile_id, "IN_PROGRESS", self._clock()):
            return
        images = [
            problem if problem is not None else self._decoded_reference(profile_id, index)
            for index, problem in enumerate(problems)
        ]
        references = []
        for image in images:
            if isinstance(image, str):
                references.append(ReferenceFaces(problem=image))
                continue
            faces = detect_faces(image, models, min_face=self._settings.face_min_size)
            references.append(ReferenceFaces(faces=faces, embeddings=models.embed(image, [f.box for f in faces])))
        try:
            built = build_profile(references)
        except ProfileBuildError as error:
            logger.info("profile %s: ERROR: %s", profile_id, error)
            self.store.finish(profile_id, self._clock(), message=str(error))
            return
        ref_index, face_index = built.picture_member
        image = images[ref_index]
        assert not isinstance(image, str)
        picture = face_picture(image, references[ref_index].faces[face_index].box)
        jpeg = encode_image(picture.astype(np.float32) / 255.0, None, "jpg", jpeg_quality=90)
        message = None
        if built.left_out:
            message = f"Built from {len(built.members)} of {len(images)} references; " + "; ".join(
                f"#{index + 1} {reason}" for index, reason in sorted(built.left_out.items())
            )
        self.store.finish(profile_id, self._clock(), embeddings=built.embeddings, picture=jpeg, message=message)
        logger.info("profile %s: READY from %d of %d references", profile_id, len(built.members), len(images))
