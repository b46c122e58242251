"""The cluster's pieces without Ray: the replica plan, merged metrics, the proxies' replica-loss
middleware, and JSON log lines."""

from __future__ import annotations

import io
import json
import logging
import os
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from starlette.types import Message, Receive, Scope, Send

from server.app import load_or_create_signing_secret
from server.cluster import ReplicaLossMiddleware, forwarded_environment, merge_expositions
from server.cluster._command import plan_replicas, share_local_secrets
from server.logs import JsonFormatter, RequestContextFilter
from server.middleware import current_request_id
from server.settings import Settings
from server.storage import create_database, load_or_create_dev_key

# --- the replica plan -----------------------------------------------------------------------------------


def test_plan_has_one_replica_per_gpu_by_default(tmp_path: Path) -> None:
    plan = plan_replicas(Settings(data_dir=tmp_path), gpus_in_cluster=4)
    assert (plan.replicas, plan.num_gpus) == (4, 1.0)
    options = plan.deployment_options()
    assert options["num_replicas"] == 4
    assert options["ray_actor_options"]["num_gpus"] == 1.0
    assert options["max_ongoing_requests"] == 8 + 16  # what the replica's worker admits, no more
    assert options["max_queued_requests"] == 4 * 24  # a proxy holds as many waiting as the replicas hold


def test_plan_without_gpus_is_one_cpu_replica_unless_more_are_asked(tmp_path: Path) -> None:
    plan = plan_replicas(Settings(data_dir=tmp_path), gpus_in_cluster=0)
    assert (plan.replicas, plan.num_gpus) == (1, 0.0)
    assert plan_replicas(Settings(data_dir=tmp_path, replicas=3), gpus_in_cluster=0).replicas == 3
    assert plan_replicas(Settings(data_dir=tmp_path, replicas=3), gpus_in_cluster=0, replicas_flag=2).replicas == 2


def test_plan_with_min_and_max_replicas_autoscales_on_ongoing_requests(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, min_replicas=1, max_replicas=6, target_ongoing_requests=3)
    options = plan_replicas(settings, gpus_in_cluster=8).deployment_options()
    assert "num_replicas" not in options
    assert options["autoscaling_config"] == {
        "min_replicas": 1,
        "initial_replicas": 6,
        "max_replicas": 6,
        "target_ongoing_requests": 3.0,
    }
    with pytest.raises(SystemExit, match="MIN_REPLICAS"):
        plan_replicas(Settings(data_dir=tmp_path, min_replicas=4, max_replicas=2), gpus_in_cluster=0)


def test_replicas_get_the_service_and_store_settings_but_nothing_else() -> None:
    environ = {"ENHANCE_DEVICE": "cuda", "AWS_SECRET_ACCESS_KEY": "s", "HOME": "/root", "PYTHONPATH": "/src"}
    assert forwarded_environment(environ) == {
        "ENHANCE_DEVICE": "cuda",
        "AWS_SECRET_ACCESS_KEY": "s",
        "PYTHONPATH": "/src",
    }


# --- metrics of every replica ------------------------------------------------------------------------------


def _exposition(requests: int, seconds: float) -> str:
    registry = CollectorRegistry()
    counter = Counter("enhance_network_batches", "Network batches run", registry=registry)
    counter.inc(requests)
    histogram = Histogram("enhance_http_request_seconds", "latency", ["route"], registry=registry, buckets=(1, 10))
    histogram.labels(route="/enhance").observe(seconds)
    return generate_latest(registry).decode()


def _samples(exposition: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    samples = {}
    for line in exposition.splitlines():
        match = re.match(r"^([a-z_]+)\{(.*)\} (\S+)$", line)
        if match:
            labels = frozenset(re.findall(r'(\w+)="([^"]*)"', match.group(2)))
            samples[(match.group(1), labels)] = float(match.group(3))
    return samples


def test_merged_metrics_label_every_sample_with_its_replica() -> None:
    merged = merge_expositions({"replica-b": _exposition(3, 5.0), "replica-a": _exposition(2, 0.5)})
    assert merged.count("# TYPE enhance_network_batches counter") == 1
    assert merged.count("# HELP enhance_http_request_seconds latency") == 1
    samples = _samples(merged)
    assert samples[("enhance_network_batches_total", frozenset({("replica", "replica-a")}))] == 2.0
    assert samples[("enhance_network_batches_total", frozenset({("replica", "replica-b")}))] == 3.0
    bucket = "enhance_http_request_seconds_bucket"
    route = ("route", "/enhance")
    assert samples[(bucket, frozenset({route, ("le", "1.0"), ("replica", "replica-a")}))] == 1.0
    assert samples[(bucket, frozenset({route, ("le", "1.0"), ("replica", "replica-b")}))] == 0.0
    assert samples[(bucket, frozenset({route, ("le", "10.0"), ("replica", "replica-b")}))] == 1.0
    assert all(("replica", "replica-a") in labels or ("replica", "replica-b") in labels for _, labels in samples)


# --- the proxies' middleware -------------------------------------------------------------------------------


class FlakyReplicas:
    """An ASGI app standing in for Serve's proxy: the first ``lost`` calls end without a response (what the
    proxy does when the replica died), later ones answer with the body they received."""

    def __init__(self, lost: int) -> None:
        self.lost = lost
        self.calls = 0
        self.bodies: list[bytes] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.calls += 1
        message = await receive()
        self.bodies.append(message.get("body", b""))
        if self.calls <= self.lost:
            return
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": b'{"ok": true}'})


async def _call(app: Any, method: str, path: str, body: bytes) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://cluster") as client:
        return await client.request(method, path, content=body, headers={"x-request-id": "req-1"})


@pytest.mark.anyio
async def test_synchronous_enhance_of_a_lost_replica_is_retried_with_the_same_body() -> None:
    inner = FlakyReplicas(lost=2)
    body = json.dumps({"image": "abc", "num_output_images": 2}).encode()
    response = await _call(ReplicaLossMiddleware(inner, attempts=3), "POST", "/v1/phota/enhance", body)
    assert response.status_code == 200 and response.json() == {"ok": True}
    assert inner.calls == 3 and inner.bodies == [body] * 3


@pytest.mark.anyio
async def test_async_submit_of_a_lost_replica_is_not_repeated_but_answered_503() -> None:
    inner = FlakyReplicas(lost=1)
    body = json.dumps({"image": "abc", "async": True}).encode()
    response = await _call(ReplicaLossMiddleware(inner, attempts=3), "POST", "/v1/phota/enhance", body)
    assert inner.calls == 1  # it may have been accepted: repeating could run it twice
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert response.json()["code"] == "SERVICE_UNAVAILABLE"
    assert response.json()["request_id"] == response.headers["x-request-id"] == "req-1"


@pytest.mark.anyio
async def test_read_retries_give_up_with_503_after_the_last_attempt() -> None:
    inner = FlakyReplicas(lost=5)
    response = await _call(ReplicaLossMiddleware(inner, attempts=2), "GET", "/v1/phota/jobs/job_x", b"")
    assert inner.calls == 2
    assert response.status_code == 503 and "retry-after" in response.headers


@pytest.mark.anyio
async def test_proxy_backpressure_becomes_the_service_503_without_retries() -> None:
    calls = 0

    async def full_cluster(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal calls
        calls += 1
        await receive()
        await send({"type": "http.response.start", "status": 503, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"Request dropped due to backpressure"})

    response = await _call(ReplicaLossMiddleware(full_cluster), "POST", "/v1/phota/enhance", b"{}")
    assert calls == 1
    assert response.status_code == 503 and response.headers["retry-after"] == "5"
    assert response.json()["code"] == "SERVICE_UNAVAILABLE"


@pytest.mark.anyio
async def test_the_service_own_errors_pass_through_untouched() -> None:
    async def failing_service(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        payload = b'{"code": "INTERNAL_ERROR", "detail": "x", "request_id": "req-1"}'
        start: Message = {
            "type": "http.response.start",
            "status": 500,
            "headers": [(b"content-type", b"application/json")],
        }
        await send(start)
        await send({"type": "http.response.body", "body": payload})

    response = await _call(ReplicaLossMiddleware(failing_service), "POST", "/v1/phota/enhance", b"{}")
    assert response.status_code == 500 and response.json()["code"] == "INTERNAL_ERROR"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# --- JSON logs ---------------------------------------------------------------------------------------------


def test_json_log_line_carries_request_id_and_replica() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RequestContextFilter("replica-7"))
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger("tests.json-logs")
    log.addHandler(handler)
    log.propagate = False
    token = current_request_id.set("req-42")
    try:
        log.warning("first line\nsecond line %d", 2)
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("failed")
    finally:
        current_request_id.reset(token)
        log.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2  # one JSON object per record, even with newlines and a traceback
    first, second = (json.loads(line) for line in lines)
    assert first["message"] == "first line\nsecond line 2"
    assert (first["request_id"], first["replica"], first["level"]) == ("req-42", "replica-7", "WARNING")
    assert "ValueError: boom" in second["exception"]


def test_replicas_share_the_database_secret_and_dev_key_created_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("ENHANCE_SIGNING_SECRET", "ENHANCE_API_KEYS", "ENHANCE_DATA_DIR"):
        # setenv first so that monkeypatch restores the variable's absence afterwards: share_local_secrets
        # writes os.environ itself, and a key left behind changed what later tests' Settings() read.
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    share_local_secrets(Settings(data_dir=Path("relative-data")))
    secret = os.environ["ENHANCE_SIGNING_SECRET"]
    database = create_database(None, tmp_path / "relative-data")
    try:
        stored = load_or_create_signing_secret(database, tmp_path / "relative-data").decode()
        dev_key, created = load_or_create_dev_key(database, tmp_path / "relative-data")
    finally:
        database.dispose()
    assert len(secret) >= 32 and stored == secret  # kept in the database every replica opens
    assert os.environ["ENHANCE_API_KEYS"] == dev_key and not created
    assert os.environ["ENHANCE_DATA_DIR"] == str(tmp_path / "relative-data")  # absolute for the replicas
    monkeypatch.delenv("ENHANCE_SIGNING_SECRET")
    share_local_secrets(Settings(data_dir=tmp_path / "relative-data"))
    assert os.environ["ENHANCE_SIGNING_SECRET"] == secret  # read back, not made again
