"""The service's one settings class. Built by ``get_settings()`` (reads ``ENHANCE_*`` from the
environment); tests build ``Settings(...)`` directly. Nothing reads the environment at import time."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# The hosted API switched its default output format from png to jpg on this date (API.md).
JPG_DEFAULT_FROM = dt.date(2026, 5, 8)


class Settings(BaseSettings):
    """Every operator setting; docs/configuration.md's table mirrors this class."""

    model_config = SettingsConfigDict(env_prefix="ENHANCE_", extra="ignore")

    api_keys: str = Field(
        default="", description="Comma-separated API keys, each its own account. Empty: a development key."
    )
    data_dir: Path = Field(default=Path("data"), description="Embedded database, files and secrets.")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default: SQLite in the data dir (PostgreSQL works too)."
    )
    weights_dir: Path | None = Field(
        default=None, description="Converted weights; default: weights/files next to the weights package."
    )
    auto_pull_weights: bool = Field(default=True, description="Pull missing weights on start.")
    device: str = Field(default="auto", description="'auto' (CUDA when available, else CPU), 'cpu', 'cuda:N'.")
    half_precision: bool = Field(
        default=True,
        description="Deprecated: true means ENHANCE_PRECISION=auto, false fp32 (a warning at start; "
        "an error beside an ENHANCE_PRECISION that says the opposite).",
    )
    precision: Literal["auto", "fp32", "bf16", "fp16", "int8"] = Field(
        default="auto",
        description="Network number format: 'auto' = bf16 on CPUs with native bfloat16 (avx512_bf16/amx_bf16), "
        "fp16 on CUDA, else fp32. One the device cannot run natively is an error at start.",
    )
    tile_size: int = Field(default=0, ge=0, description="Tile side in network input px; 0 = from free memory.")
    tile_overlap: int = Field(default=24, ge=0, le=128, description="Tile overlap in network input px.")
    tile_batch_size: int = Field(
        default=8, ge=1, le=64, description="Most tiles per network batch (tiles of one shape, from any requests)."
    )
    batch_wait_ms: float = Field(
        default=2.0,
        ge=0,
        le=1000,
        description="How long the network worker waits for more tiles of the oldest tile's shape before a batch.",
    )
    memory_budget_gb: float = Field(
        default=0,
        ge=0,
        description="Peak device memory of the service (weights, network batches, request buffers); "
        "0 = 90% of the GPU (CPU: 8). Requests beyond it wait; the queue bound then gives 503.",
    )
    compile_mode: Literal["off", "default", "max-autotune", "max-autotune-no-cudagraphs"] = Field(
        default="off",
        description="torch.compile the networks for the tile sides below before serving (cached; the first "
        "start takes minutes with max-autotune); 'off' runs eagerly.",
    )
    compile_tile_sides: str = Field(
        default="256,512", description="Comma-separated square tile sides (input px) compiled when compile_mode is on."
    )
    compile_cache_dir: Path | None = Field(
        default=None, description="Compiled kernels, kept across restarts; default: compile-cache in the data dir."
    )
    max_tile_size: int = Field(default=1024, ge=64, description="Upper bound of the automatic tile size.")
    cpu_tile_size: int = Field(
        default=512, ge=32, description="Tile side on CPU (memory is not the limit there: whole images when small)."
    )
    network_max_side: int = Field(
        default=0,
        ge=0,
        description="Long side cap of the network's input (its x4 output is resized to the target); "
        "0 = 1024 on CUDA, 512 on CPU.",
    )
    target_long_side: int = Field(default=2048, ge=64, le=4096, description="Output long side for small inputs.")
    default_output_format: Literal["auto", "png", "jpg"] = Field(
        default="auto", description="'auto' follows the hosted schedule: png before 2026-05-08, jpg from then."
    )
    jpeg_quality: int = Field(default=95, ge=50, le=100)
    png_compress_level: int = Field(default=1, ge=0, le=9)
    max_body_bytes: int = Field(default=64 * 1024 * 1024, ge=1024, description="Larger bodies get 413.")
    allow_private_urls: bool = Field(default=False, description="Let image URLs reach loopback/private addresses.")
    allow_http_callbacks: bool = Field(default=False, description="Allow plain-http callback_url.")
    fetch_max_bytes: int = Field(default=40 * 1024 * 1024, ge=1024)
    fetch_timeout_s: float = Field(default=15.0, gt=0, le=120)
    max_pixels: int = Field(default=100_000_000, ge=1_000_000, description="Decompression bomb limit.")
    url_ttl_s: int = Field(default=24 * 3600, ge=60, description="Lifetime of signed download URLs.")
    signing_secret: str | None = Field(
        default=None, description="HMAC secret for download URLs; default: generated into the data dir."
    )
    public_base_url: str | None = Field(
        default=None, description="Base of download URLs (e.g. https://enhance.example.com); default: request's."
    )
    max_concurrent_jobs: int = Field(
        default=8,
        ge=1,
        le=64,
        description="Enhancements in progress at once (decoding, rendering, waiting for the shared network).",
    )
    max_queued_jobs: int = Field(default=16, ge=0, description="Waiting enhancements; beyond: 503.")
    retry_after_s: int = Field(default=5, ge=1)
    cleanup_interval_s: float = Field(default=300.0, gt=0, description="Expired-file sweep interval.")
    malloc_arena_max: int = Field(
        default=4, ge=0, description="At most this many C heap arenas (glibc; 0: its default, 8 per core)."
    )
    malloc_trim_interval_s: float = Field(
        default=60.0, ge=0, description="Hand free C heap pages back to the system this often (glibc; 0: never)."
    )
    sync_timeout_s: float = Field(
        default=600.0, gt=0, description="A synchronous enhance running longer answers 504 TIMEOUT (hosted: 600 s)."
    )
    job_queue_size: int = Field(
        default=100, ge=1, description="Asynchronous jobs accepted and not finished (queued or running); beyond: 503."
    )
    job_max_attempts: int = Field(
        default=3, ge=1, le=20, description="Starts of one job (runs cut short by a crash count) before it FAILs."
    )
    job_shutdown_grace_s: float = Field(
        default=10.0, ge=0, description="On shutdown, how long running jobs may finish before they are cut short."
    )
    outage_patience_s: float = Field(
        default=300.0,
        ge=0,
        description="How long background work (a job's files and result, a callback's bookkeeping, a profile "
        "build) waits out an outage of the database or the object store before handing the work back; "
        "requests do not wait: they answer 503 with Retry-After.",
    )
    shutdown_grace_s: float = Field(
        default=30.0,
        ge=0,
        description="On SIGTERM: how long requests in flight may finish (new connections are refused at "
        "once) before the process stops; then running jobs get job_shutdown_grace_s.",
    )
    callback_timeout_s: float = Field(default=10.0, gt=0, le=120, description="Time limit of one callback POST.")
    callback_max_attempts: int = Field(default=10, ge=1, le=50, description="Callback POSTs before giving up.")
    callback_retry_base_s: float = Field(
        default=2.0, gt=0, description="Delay before the first callback retry; doubled after each failure."
    )
    callback_retry_max_s: float = Field(default=600.0, gt=0, description="Upper bound of the callback retry delay.")
    callback_concurrency: int = Field(default=8, ge=1, le=256, description="Callback POSTs in flight at once.")
    face_match_threshold: float = Field(
        default=0.55,
        gt=0,
        lt=2,
        description="Largest face-to-profile embedding distance taken as one person (calibrated: docs/identity.md).",
    )
    face_min_size: int = Field(
        default=40, ge=16, le=400, description="Smallest face found, in input px (detection cost grows as it falls)."
    )
    identity_guard: bool = Field(
        default=True, description="Soften the enhancement on faces whose identity embedding it moved too far."
    )
    identity_max_drift: float = Field(
        default=0.2, gt=0, lt=2, description="Embedding drift (input to output) the identity guard tolerates per face."
    )
    log_level: str = Field(default="INFO")
    mode: Literal["real", "test"] = Field(
        default="real",
        description="'test': no network weights are loaded; a cheap deterministic bicubic stand-in replaces the "
        "network and every other stage runs for real (client CI; labelled in headers, /readyz and /metrics).",
    )
    key_cache_ttl_s: float = Field(
        default=2.0,
        gt=0,
        le=60,
        description="How long a process trusts its lookup of a named key: a key created or revoked with "
        "'python -m server keys' takes effect on every process within this time.",
    )
    rate_limit_per_minute: int = Field(
        default=0, ge=0, description="Authenticated requests per account per minute (all replicas); 0 = no limit."
    )
    account_max_concurrent: int = Field(
        default=0, ge=0, description="Synchronous enhancements in progress per account (all replicas); 0 = no limit."
    )
    account_lease_s: float = Field(
        default=60.0,
        ge=5,
        le=3600,
        description="Lifetime of a concurrency slot's lease, renewed while the enhancement runs (a crashed "
        "replica's slots free themselves after it).",
    )
    job_lease_s: float = Field(
        default=30.0,
        ge=1,
        le=3600,
        description="Lease of a claimed job, callback or profile build, renewed every third of it while the "
        "process works; a process that died loses its work to another after this long.",
    )
    job_poll_interval_s: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="How often idle runners look in the database for work (submitted through other processes).",
    )
    storage_url: str = Field(
        default="",
        description="Where files live: empty = the data dir; file:///path; s3://bucket/prefix (S3-compatible store).",
    )
    s3_endpoint_url: str | None = Field(
        default=None, description="S3 endpoint (SeaweedFS, MinIO, ...); default: AWS. Credentials: AWS_* variables."
    )
    s3_public_endpoint_url: str | None = Field(
        default=None, description="Endpoint named in presigned download URLs when clients reach the store elsewhere."
    )
    s3_create_bucket: bool = Field(default=True, description="Create the bucket at start when it does not exist.")
    log_format: Literal["text", "json"] = Field(
        default="text", description="'json': one JSON object per log line (with request id and replica)."
    )
    replicas: int = Field(
        default=0,
        ge=0,
        description="python -m server.cluster: replicas; 0 = one per GPU that Ray sees (no GPU: one CPU replica).",
    )
    min_replicas: int | None = Field(
        default=None, ge=0, description="Autoscaling lower bound (with max_replicas); unset = fixed replica count."
    )
    max_replicas: int | None = Field(default=None, ge=1, description="Autoscaling upper bound (with min_replicas).")
    target_ongoing_requests: float = Field(
        default=4.0, gt=0, description="Autoscaling aim: ongoing requests per replica."
    )
    replica_gpus: float | None = Field(
        default=None, ge=0, description="GPUs each replica reserves; default 1 when Ray sees GPUs, else 0."
    )
    replica_cpus: float = Field(default=1.0, ge=0, description="CPUs each replica reserves in Ray.")
    max_ongoing_requests: int = Field(
        default=0,
        ge=0,
        description="Requests Serve sends one replica at once; 0 = max_concurrent_jobs + max_queued_jobs.",
    )

    @field_validator("signing_secret")
    @classmethod
    def _strong_secret(cls, value: str | None) -> str | None:
        if value is not None and (len(value) < 32 or value.lower() in {"secret", "changeme", "change-me"}):
            raise ValueError("signing_secret must be at least 32 characters of real randomness")
        return value

    @field_validator("compile_tile_sides")
    @classmethod
    def _tile_sides(cls, value: str) -> str:
        try:
            sides = [int(part) for part in value.split(",") if part.strip()]
        except ValueError:
            raise ValueError("compile_tile_sides must be comma-separated integers") from None
        if any(side < 32 or side % 32 for side in sides):
            raise ValueError("compile_tile_sides must be multiples of 32 (tiles are padded to those)")
        return value

    @property
    def compile_tile_side_list(self) -> list[int]:
        return [int(part) for part in self.compile_tile_sides.split(",") if part.strip()]

    @property
    def api_key_list(self) -> list[str]:
        return [key.strip() for key in self.api_keys.split(",") if key.strip()]

    def default_format_on(self, today: dt.date) -> Literal["png", "jpg"]:
        """The ``output_format`` a request gets when it names none, on ``today``."""
        if self.default_output_format != "auto":
            return self.default_output_format
        return "jpg" if today >= JPG_DEFAULT_FROM else "png"


def get_settings() -> Settings:
    """Settings from the environment (``ENHANCE_*``)."""
    return Settings()
