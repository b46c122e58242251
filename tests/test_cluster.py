"""``python -m server.cluster`` end to end on CPU: two replicas on a local Ray instance, the real x4plus
network on tiny images. One cluster serves the whole module (Ray and two replicas take a minute or two
to start on a busy 2-core machine)."""

from __future__ import annotations

import base64
import io
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from server import Settings, create_app
from tests.faults.components import replica_pids, start_cluster

KEY = "cluster-test-key"
HEADERS = {"X-API-Key": KEY}
START_TIMEOUT_S = 420.0
REQUEST_TIMEOUT_S = 240.0
PER_REPLICA_SLOTS = 3  # ENHANCE_MAX_CONCURRENT_JOBS 2 + ENHANCE_MAX_QUEUED_JOBS 1


@dataclass
class Cluster:
    url: str
    process: subprocess.Popen[bytes]
    log: Path
    settings: Settings


def cluster_environment(data_dir: Path, weights_dir: Path) -> dict[str, str]:
    return {
        "ENHANCE_DATA_DIR": str(data_dir),
        "ENHANCE_WEIGHTS_DIR": str(weights_dir),
        "ENHANCE_API_KEYS": KEY,
        "ENHANCE_DEVICE": "cpu",
        "ENHANCE_NETWORK_MAX_SIDE": "48",  # the real network, about a second per request
        "ENHANCE_CPU_TILE_SIZE": "64",
        "ENHANCE_TARGET_LONG_SIDE": "64",
        "ENHANCE_MAX_CONCURRENT_JOBS": "2",
        "ENHANCE_MAX_QUEUED_JOBS": "1",
        "ENHANCE_RETRY_AFTER_S": "7",
        "ENHANCE_REPLICAS": "2",
        "ENHANCE_LOG_FORMAT": "json",
    }


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, weights_dir: Path) -> Iterator[Cluster]:
    directory = tmp_path_factory.mktemp("cluster")
    environment = cluster_environment(directory / "data", weights_dir)
    started = start_cluster(environment, directory / "cluster.log", replicas=2, timeout_s=START_TIMEOUT_S)
    try:
        settings = Settings(**{k[len("ENHANCE_") :].lower(): v for k, v in environment.items()})  # type: ignore[arg-type]
        yield Cluster(url=started.url, process=started.process, log=started.log, settings=settings)
    finally:
        started.stop()


@pytest.fixture(scope="module")
def photo_b64(chelsea: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(chelsea[40:120, 150:270]).save(buffer, format="JPEG", quality=90)  # 120×80, the cat's face
    return base64.b64encode(buffer.getvalue()).decode()


def enhance(cluster: Cluster, photo_b64: str, **fields: object) -> httpx.Response:
    return httpx.post(
        f"{cluster.url}/v1/phota/enhance",
        json={"image": photo_b64, "output_format": "png", **fields},
        headers=HEADERS,
        timeout=REQUEST_TIMEOUT_S,
    )


def enhance_counts_by_replica(cluster: Cluster) -> dict[str, float]:
    """Successful enhancements per replica, from the cluster's merged /metrics."""
    text = httpx.get(f"{cluster.url}/metrics", timeout=30).text
    counts: dict[str, float] = {}
    for line in text.splitlines():
        if (
            line.startswith("enhance_http_request_seconds_count{")
            and 'route="/enhance"' in line
            and 'status="200"' in line
        ):
            replica = re.search(r'replica="([^"]+)"', line)
            assert replica is not None, line
            counts[replica.group(1)] = counts.get(replica.group(1), 0.0) + float(line.rsplit(" ", 1)[1])
    return counts


def wait_for_counts(cluster: Cluster, predicate: object, timeout_s: float = 60.0) -> dict[str, float]:
    deadline = time.monotonic() + timeout_s
    while True:
        counts = enhance_counts_by_replica(cluster)
        if predicate(counts):  # type: ignore[operator]
            return counts
        if time.monotonic() > deadline:
            raise AssertionError(f"metrics never showed it: {counts}")
        time.sleep(1.0)  # replicas publish every few seconds


def test_cluster_answers_concurrent_enhancements_on_both_replicas(cluster: Cluster, photo_b64: str) -> None:
    before = enhance_counts_by_replica(cluster)
    # Serve picks the less loaded of two replicas, at random between idle ones: a few rounds of 4
    # concurrent requests reach both (4 always fit: each replica admits 3).
    outputs: list[np.ndarray] = []
    for _ in range(4):
        with ThreadPoolExecutor(4) as pool:
            responses = list(pool.map(lambda _: enhance(cluster, photo_b64), range(4)))
        assert [response.status_code for response in responses] == [200] * 4
        outputs += [np.asarray(Image.open(io.BytesIO(base64.b64decode(r.json()["images"][0])))) for r in responses]
        wanted = sum(before.values()) + len(outputs)
        counts = wait_for_counts(cluster, lambda c, wanted=wanted: sum(c.values()) >= wanted)
        if len([value for value in counts.values() if value > 0]) >= 2:
            break
    assert len(counts) == 2, counts  # both replicas served and report under their own label
    for output in outputs:
        assert output.shape == (80, 120, 3)
    # The same request gives the same image whichever replica ran it, up to the ±1 level that batching
    # tiles with other requests' may cost (docs/gpu.md, GPU throughput).
    for output in outputs[1:]:
        assert int(np.abs(output.astype(np.int16) - outputs[0].astype(np.int16)).max()) <= 1


def test_cluster_keeps_the_single_process_contract(cluster: Cluster, photo_b64: str) -> None:
    single = create_app(cluster.settings).openapi()
    assert httpx.get(f"{cluster.url}/v1/phota/openapi.json").json() == single
    refused = httpx.post(
        f"{cluster.url}/v1/phota/enhance", json={"image": photo_b64}, headers={"X-Request-Id": "abc-1"}
    )
    assert refused.status_code == 401
    assert refused.json() == {
        "detail": "Missing or invalid API key in the X-API-Key header.",
        "code": "UNAUTHORIZED",
        "request_id": "abc-1",
    }
    assert refused.headers.get_list("x-request-id") == ["abc-1"]  # once, not once per layer
    invalid = httpx.post(f"{cluster.url}/v1/phota/enhance", json={"image": "bm90IGFuIGltYWdl"}, headers=HEADERS)
    assert invalid.status_code == 400 and invalid.json()["code"] == "INVALID_IMAGE"
    assert invalid.headers["x-phota-deprecation-date"] == "2026-05-08"


def test_full_cluster_answers_503_with_retry_after(cluster: Cluster, photo_b64: str) -> None:
    burst = 3 * 2 * PER_REPLICA_SLOTS  # the replicas' slots, as many waiting in the proxy, and as many more
    # A request takes about a second here; on a busy machine a burst's threads can start so far apart that
    # the first ones finish before the last arrive, and nothing is full. So up to three bursts, each of which
    # must answer only 200 or 503; at least one must find the cluster full.
    bursts: list[list[int]] = []
    for _ in range(3):
        with ThreadPoolExecutor(burst) as pool:
            responses = list(pool.map(lambda _: enhance(cluster, photo_b64), range(burst)))
        statuses = [response.status_code for response in responses]
        bursts.append(statuses)
        assert set(statuses) <= {200, 503}, statuses
        assert statuses.count(200) >= 2, statuses
        refused = [response for response in responses if response.status_code == 503]
        if refused:
            break
    assert refused, bursts
    for response in refused:
        assert response.headers["retry-after"] == "7"
        assert response.json()["code"] == "SERVICE_UNAVAILABLE"


def test_killed_replica_costs_no_hung_request_and_is_replaced(cluster: Cluster, photo_b64: str) -> None:
    original = replica_pids()
    assert len(original) == 2
    before = enhance_counts_by_replica(cluster)
    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(enhance, cluster, photo_b64) for _ in range(4)]
        time.sleep(1.5)
        os.kill(original[0], signal.SIGKILL)
        responses = [future.result() for future in futures]  # each answers within REQUEST_TIMEOUT_S
    for response in responses:
        assert response.status_code in (200, 503), response.text
        if response.status_code == 503:
            assert response.headers["retry-after"] == "7"
    deadline = time.monotonic() + START_TIMEOUT_S
    while not (len(pids := replica_pids()) == 2 and original[0] not in pids):
        assert time.monotonic() < deadline, "no replacement replica"
        time.sleep(2)
    # The replacement serves: keep sending until the metrics show a replica that was not there before.
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        assert enhance(cluster, photo_b64).status_code in (200, 503)
        counts = enhance_counts_by_replica(cluster)
        if set(counts) - set(before):
            break
        assert time.monotonic() < deadline, f"the replacement never served: {counts}"
