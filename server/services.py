"""The composition root: :class:`Services`, every long-lived part of the service in one typed object.

``create_app`` makes one (settings, metrics, clock) or is handed one; the app's lifespan fills in, once,
what it does not hold yet (:meth:`Services.start`: database, accounts, object store, files, limits,
worker, models, features, profiles, jobs, background sweeps) and closes it all at shutdown
(:meth:`Services.stop`). A test hands in a ``Services`` whose ``runtime`` (or any other part) is a
stand-in: the lifespan builds the rest around it. Routes reach it through one dependency,
``server.deps.ServicesDep``; a part still starting answers 503 (:class:`NotReadyError`)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import anyio.to_thread
from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from sqlalchemy import Engine as SQLEngine

from models.pipeline import BatchStats, FaceModels
from server import features, memory
from server.errors import NotReadyError
from server.features import IDENTITY, IDENTITY_OFF, Feature
from server.jobs import JobService
from server.profiles import ProfileCandidates, ProfileService
from server.runtime import ModelRuntime
from server.settings import Settings
from server.storage import (
    URL_SIGNING_SECRET,
    AccountLimits,
    AccountRegistry,
    JobFiles,
    JobStore,
    ObjectStore,
    OutputFiles,
    ProfileFiles,
    ProfileStore,
    ServiceSecrets,
    create_database,
    load_or_create_dev_key,
    open_object_store,
)
from server.worker import EnhanceWorker

logger = logging.getLogger(__name__)

SIGNING_SECRET_FILE = "signing-secret"

T = TypeVar("T")


class Metrics:
    """This app's Prometheus registry (one per app, no process globals)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.latency = Histogram(
            "enhance_http_request_seconds",
            "HTTP request latency by route template, method and status",
            ["route", "method", "status"],
            registry=self.registry,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
        )
        self.queue_depth = Gauge("enhance_queue_depth", "Enhancements running or waiting", registry=self.registry)
        self.jobs_pending = Gauge(
            "enhance_jobs_pending", "Asynchronous jobs accepted and not finished", registry=self.registry
        )
        self.gpu_memory = Gauge(
            "enhance_gpu_memory_bytes", "GPU memory allocated by this process", registry=self.registry
        )
        self.gpu_peak_memory = Gauge(
            "enhance_gpu_peak_memory_bytes", "Peak GPU memory reserved by this process", registry=self.registry
        )
        self.memory_budget = Gauge(
            "enhance_memory_budget_bytes", "Device memory budget of the service", registry=self.registry
        )
        self.memory_reserved = Gauge(
            "enhance_memory_reserved_bytes", "Budget bytes held by requests on the device now", registry=self.registry
        )
        self.tiles_queued = Gauge(
            "enhance_network_tiles_queued", "Tiles waiting for the network worker", registry=self.registry
        )
        self.batches = Counter("enhance_network_batches", "Network batches run", registry=self.registry)
        self.batch_tiles = Histogram(
            "enhance_network_batch_tiles",
            "Tiles per network batch",
            registry=self.registry,
            buckets=(1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64),
        )
        self.tile_pixels = Counter(
            "enhance_network_tile_pixels", "Input pixels the network ran, padding included", registry=self.registry
        )
        self.busy_seconds = Counter(
            "enhance_network_busy_seconds", "Device time of network batches", registry=self.registry
        )
        self.mode = Gauge(
            "enhance_mode_info",
            "1 for the service's mode ('test': no network, a stand-in upscaler) and network",
            ["mode", "network"],
            registry=self.registry,
        )
        self.precision = Gauge(
            "enhance_precision_info",
            "1 for what the network computes in (ENHANCE_PRECISION) on which device, and why it was chosen",
            ["precision", "device", "reason"],
            registry=self.registry,
        )

    def observe_batch(self, stats: BatchStats) -> None:
        """Called by the tile batcher's thread after each batch."""
        self.batches.inc()
        self.batch_tiles.observe(stats.tiles)
        self.tile_pixels.inc(stats.pixels)
        self.busy_seconds.inc(stats.seconds)

    def refresh(self, services: Services) -> None:
        """Read the gauges from the services (those not started yet count as empty)."""
        worker, jobs, runtime = services.worker, services.jobs, services.runtime
        self.queue_depth.set(worker.depth if worker else 0)
        self.jobs_pending.set(jobs.pending if jobs else 0)
        if runtime is None:
            return
        self.mode.labels(mode=runtime.settings.mode, network=runtime.model.network.name).set(1)
        model = runtime.model
        labels = {"precision": model.dtype_name, "device": str(model.device), "reason": model.precision_reason}
        self.precision.labels(**labels).set(1)
        if runtime.budget is not None:
            self.memory_budget.set(runtime.budget.total)
        if runtime.memory is not None:
            self.memory_reserved.set(runtime.memory.used_bytes)
        if runtime.batcher is not None:
            self.tiles_queued.set(runtime.batcher.queued)
        if runtime.device.type == "cuda":
            import torch

            self.gpu_memory.set(torch.cuda.memory_allocated(runtime.device))
            self.gpu_peak_memory.set(torch.cuda.max_memory_reserved(runtime.device))


def load_or_create_signing_secret(database: SQLEngine, data_dir: Path) -> bytes:
    """The URL signing secret shared by every process on the database (a first-release
    ``signing-secret`` file in ``data_dir`` is taken over once)."""
    value, _ = ServiceSecrets(database).get_or_create(
        URL_SIGNING_SECRET, lambda: secrets.token_hex(32), legacy_file=data_dir / SIGNING_SECRET_FILE
    )
    return value.encode()


def services_of(app: FastAPI) -> Services:
    """The app's one :class:`Services`: the only attribute ``create_app`` puts on ``app.state``."""
    services: Services = app.state.services
    return services


def utc_today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def _started(part: T | None, what: str) -> T:
    if part is None:
        raise NotReadyError(f"The {what}; retry shortly.")
    return part


@dataclass
class Services:
    """Everything a request or a background task of this app uses, built once per app.

    ``settings``, ``metrics`` and ``today`` (the clock behind the date-based default
    ``output_format``) exist from the start; the other parts are ``None`` until :meth:`start` has
    built them (or were handed in). ``replica`` and ``metrics_exposition`` are set by the cluster
    (``server.cluster``): the replica's id and the exposition of every replica's metrics."""

    settings: Settings
    metrics: Metrics = field(default_factory=Metrics)
    today: Callable[[], dt.date] = utc_today
    runtime: ModelRuntime | None = None
    accounts: AccountRegistry | None = None
    objects: ObjectStore | None = None
    files: OutputFiles | None = None
    limits: AccountLimits | None = None
    worker: EnhanceWorker | None = None
    features: dict[str, Feature] = field(default_factory=dict)
    candidates: ProfileCandidates | None = None
    profiles: ProfileService | None = None
    jobs: JobService | None = None
    replica: str | None = None
    metrics_exposition: Callable[[], Awaitable[str]] | None = None
    _database: SQLEngine | None = field(default=None, repr=False)
    _background: list[asyncio.Task[None]] = field(default_factory=list, repr=False)

    # What a request needs, or 503 while it is still starting.
    def started_runtime(self) -> ModelRuntime:
        return _started(self.runtime, "models are still loading")

    def started_accounts(self) -> AccountRegistry:
        return _started(self.accounts, "account registry is still starting")

    def started_worker(self) -> EnhanceWorker:
        return _started(self.worker, "worker is still starting")

    def started_files(self) -> OutputFiles:
        return _started(self.files, "file store is still starting")

    def started_jobs(self) -> JobService:
        return _started(self.jobs, "job service is still starting")

    def started_candidates(self) -> ProfileCandidates:
        return _started(self.candidates, "profile store is still starting")

    def started_profiles(self) -> ProfileService:
        return _started(self.profiles, "profile service is still starting")

    async def start(self) -> None:
        """Build, once, every part not handed in, and start the job runners, the profile builder and
        the background sweeps (blocking steps run in a thread)."""
        settings = self.settings
        memory.limit_arenas(settings.malloc_arena_max)
        data_dir = settings.data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        database = self._database = create_database(settings.database_url, data_dir)
        if self.accounts is None:
            keys = settings.api_key_list
            if not keys:
                dev_key, created = await anyio.to_thread.run_sync(load_or_create_dev_key, database, data_dir)
                keys = [dev_key]
                logger.warning(
                    "ENHANCE_API_KEYS is empty: using the development key %s (%s the database)",
                    dev_key,
                    "created in" if created else "stored in",
                )
            self.accounts = AccountRegistry(database, keys, cache_ttl_s=settings.key_cache_ttl_s)
        if self.objects is None:
            self.objects = await anyio.to_thread.run_sync(open_object_store, settings)
        objects = self.objects
        if self.files is None:
            secret = (
                settings.signing_secret.encode()
                if settings.signing_secret
                else await anyio.to_thread.run_sync(load_or_create_signing_secret, database, data_dir)
            )
            self.files = OutputFiles(objects, secret, settings.url_ttl_s)
        if self.limits is None:
            self.limits = AccountLimits(
                database,
                per_minute=settings.rate_limit_per_minute,
                max_concurrent=settings.account_max_concurrent,
                lease_s=settings.account_lease_s,
            )
        if self.worker is None:
            self.worker = EnhanceWorker(
                settings.max_concurrent_jobs,
                settings.max_queued_jobs,
                limits=self.limits,
                retry_after_s=settings.retry_after_s,
            )
        face_models: FaceModels | None
        if self.runtime is None:
            face_models, identity_feature = await anyio.to_thread.run_sync(features.load_identity, settings)
            self.runtime = await anyio.to_thread.run_sync(
                lambda: ModelRuntime.load(settings, on_batch=self.metrics.observe_batch, faces=face_models)
            )
        else:
            face_models = self.runtime.faces
            identity_feature = Feature(
                IDENTITY,
                face_models is not None,
                "face models handed in with the runtime"
                if face_models is not None
                else "no face models handed in with the runtime: profiles and profile_ids are refused",
            )
        if not self.features:
            self.features = {
                feature.name: feature
                for feature in (
                    identity_feature,
                    features.high_bit_depth(),
                    features.illustration_network(self.runtime.models or {}),
                )
            }
        features.log_features(self.features)
        if self.candidates is None or self.profiles is None:
            profile_store = ProfileStore(database, ProfileFiles(objects))
            if self.candidates is None:
                self.candidates = ProfileCandidates(
                    profile_store, None if self.features[IDENTITY].enabled else IDENTITY_OFF
                )
            if self.profiles is None:
                self.profiles = ProfileService(
                    store=profile_store, models=face_models, worker=self.worker, settings=settings
                )
        await self.profiles.start()
        self._background = [asyncio.create_task(_sweep_files(self.files, settings.cleanup_interval_s))]
        if settings.malloc_trim_interval_s:
            self._background.append(asyncio.create_task(_trim_heap(settings.malloc_trim_interval_s)))
        if self.jobs is None:
            self.jobs = JobService(
                store=JobStore(database),
                files=JobFiles(objects),
                runtime=self.runtime,
                worker=self.worker,
                outputs=self.files,
                settings=settings,
                candidates=self.candidates,
            )
        await self.jobs.start()

    def drain(self) -> None:
        """Stop claiming jobs and profile builds at once (SIGTERM): the work waits in the database."""
        for service in (self.jobs, self.profiles):
            if service is not None:
                service.drain()

    async def stop(self) -> None:
        """Stop and close what :meth:`start` started, in the reverse order."""
        if self.jobs is not None:
            await self.jobs.stop()
        if self.profiles is not None:
            await self.profiles.stop()
        if self.worker is not None:
            self.worker.close()
        if self.limits is not None:
            self.limits.close()
        if self.runtime is not None:
            await anyio.to_thread.run_sync(self.runtime.close)
        for task in self._background:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._background = []
        if self._database is not None:
            self._database.dispose()


async def _trim_heap(interval_s: float) -> None:
    while True:
        await asyncio.sleep(interval_s)
        await anyio.to_thread.run_sync(memory.trim_heap)


async def _sweep_files(files: OutputFiles, interval_s: float) -> None:
    while True:
        removed = await anyio.to_thread.run_sync(files.remove_expired)
        if removed:
            logger.info("removed %d expired files", removed)
        await asyncio.sleep(interval_s)
