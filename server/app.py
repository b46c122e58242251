"""The FastAPI application factory and its lifespan (models, stores and background sweeps)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import anyio.to_thread
from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from sqlalchemy import Engine as SQLEngine

from models.pipeline import BatchStats
from server import features, memory
from server.errors import install_error_handlers
from server.features import IDENTITY_OFF
from server.jobs import JobService
from server.middleware import RequestContextMiddleware
from server.profiles import ProfileCandidates, ProfileService
from server.routes import (
    enhance_router,
    files_router,
    health_router,
    hosted_router,
    jobs_router,
    page_router,
    profiles_router,
    webhooks_router,
)
from server.runtime import ModelRuntime
from server.schemas import AUTHENTICATED_RESPONSES
from server.settings import Settings
from server.storage import (
    URL_SIGNING_SECRET,
    AccountLimits,
    AccountRegistry,
    JobFiles,
    JobStore,
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

API_PREFIX = "/v1/phota"
SIGNING_SECRET_FILE = "signing-secret"


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

    def refresh(self, app: FastAPI) -> None:
        worker: EnhanceWorker | None = getattr(app.state, "worker", None)
        self.queue_depth.set(worker.depth if worker else 0)
        jobs: JobService | None = getattr(app.state, "jobs", None)
        self.jobs_pending.set(jobs.pending if jobs else 0)
        runtime: ModelRuntime | None = getattr(app.state, "runtime", None)
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


def _utc_today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def create_app(settings: Settings, *, today: Callable[[], dt.date] = _utc_today) -> FastAPI:
    """Build the service. ``today`` is the clock behind the date-based default ``output_format``."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        memory.limit_arenas(settings.malloc_arena_max)
        data_dir = settings.data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        database = create_database(settings.database_url, data_dir)
        keys = settings.api_key_list
        if not keys:
            dev_key, created = await anyio.to_thread.run_sync(load_or_create_dev_key, database, data_dir)
            keys = [dev_key]
            logger.warning(
                "ENHANCE_API_KEYS is empty: using the development key %s (%s the database)",
                dev_key,
                "created in" if created else "stored in",
            )
        app.state.accounts = AccountRegistry(database, keys, cache_ttl_s=settings.key_cache_ttl_s)
        secret = (
            settings.signing_secret.encode()
            if settings.signing_secret
            else await anyio.to_thread.run_sync(load_or_create_signing_secret, database, data_dir)
        )
        objects = await anyio.to_thread.run_sync(open_object_store, settings)
        app.state.objects = objects
        app.state.files = OutputFiles(objects, secret, settings.url_ttl_s)
        app.state.limits = AccountLimits(
            database,
            per_minute=settings.rate_limit_per_minute,
            max_concurrent=settings.account_max_concurrent,
            lease_s=settings.account_lease_s,
        )
        app.state.worker = EnhanceWorker(
            settings.max_concurrent_jobs,
            settings.max_queued_jobs,
            limits=app.state.limits,
            retry_after_s=settings.retry_after_s,
        )
        face_models, identity_feature = await anyio.to_thread.run_sync(features.load_identity, settings)
        app.state.runtime = await anyio.to_thread.run_sync(
            lambda: ModelRuntime.load(settings, on_batch=app.state.metrics.observe_batch, faces=face_models)
        )
        app.state.features = {
            feature.name: feature
            for feature in (
                identity_feature,
                features.high_bit_depth(),
                features.illustration_network(app.state.runtime.models or {}),
            )
        }
        features.log_features(app.state.features)
        profile_store = ProfileStore(database, ProfileFiles(objects))
        app.state.candidates = ProfileCandidates(profile_store, None if identity_feature.enabled else IDENTITY_OFF)
        profiles = ProfileService(store=profile_store, models=face_models, worker=app.state.worker, settings=settings)
        await profiles.start()
        app.state.profiles = profiles
        background = [asyncio.create_task(_sweep_files(app.state.files, settings.cleanup_interval_s))]
        if settings.malloc_trim_interval_s:
            background.append(asyncio.create_task(_trim_heap(settings.malloc_trim_interval_s)))
        jobs = JobService(
            store=JobStore(database),
            files=JobFiles(objects),
            runtime=app.state.runtime,
            worker=app.state.worker,
            outputs=app.state.files,
            settings=settings,
            candidates=app.state.candidates,
        )
        await jobs.start()
        app.state.jobs = jobs
        try:
            yield
        finally:
            await jobs.stop()
            await profiles.stop()
            app.state.worker.close()
            app.state.limits.close()
            await anyio.to_thread.run_sync(app.state.runtime.close)
            for task in background:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            database.dispose()

    app = FastAPI(
        title="Phota enhance (self-hosted)",
        version="0.7.0",
        description="A local drop-in for the hosted Phota Labs enhance API.",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.today = today
    app.state.metrics = Metrics()
    app.add_middleware(
        RequestContextMiddleware, max_body_bytes=settings.max_body_bytes, latency=app.state.metrics.latency
    )
    install_error_handlers(app, settings.retry_after_s)
    app.include_router(enhance_router, prefix=API_PREFIX, responses=AUTHENTICATED_RESPONSES)
    app.include_router(jobs_router, prefix=API_PREFIX, responses=AUTHENTICATED_RESPONSES)
    app.include_router(profiles_router, prefix=API_PREFIX, responses=AUTHENTICATED_RESPONSES)
    app.include_router(webhooks_router, prefix=API_PREFIX, responses=AUTHENTICATED_RESPONSES)
    app.include_router(hosted_router, prefix=API_PREFIX, responses=AUTHENTICATED_RESPONSES)
    app.include_router(files_router, prefix=API_PREFIX)
    app.include_router(health_router)
    app.include_router(page_router)
    return app
