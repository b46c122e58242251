"""Fault: one replica of ``python -m server.cluster`` (Ray Serve, two test-mode replicas on this machine)
SIGKILLed under a steady load of synchronous requests, as when a replica's process dies (out of host
memory, a crash) or its node is lost.

What a client must see: no request lost. Requests the dead replica held are sent again to the other one
by the proxies' middleware (a synchronous enhance stores nothing a client has seen), or answered 503 with
``Retry-After``; the client retries a 503 or a refused connection, as in the rolling restart, and takes
any other answer as final. Serve starts a replacement replica; the figures are the seconds from the
kill until its process runs and until it has answered requests (seen in the merged ``/metrics``, where
each replica publishes at least every 5 s)."""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.conftest import encode_b64
from tests.faults.components import (
    RetryingClient,
    full_suite_only,
    replica_pids,
    report,
    service_environment,
    start_cluster,
)
from tests.jobs_helpers import wait_until

pytestmark = [pytest.mark.faults, full_suite_only]

SENDERS = 3


def _served_by_replica(url: str) -> dict[str, float]:
    """Synchronous enhancements answered 200, per replica, from the cluster's merged ``/metrics``."""
    counts: dict[str, float] = {}
    for line in httpx.get(f"{url}/metrics", timeout=30).text.splitlines():
        if line.startswith("enhance_http_request_seconds_count{") and 'route="/enhance"' in line:
            replica = re.search(r'replica="([^"]+)"', line)
            if replica is not None and 'status="200"' in line:
                counts[replica.group(1)] = counts.get(replica.group(1), 0.0) + float(line.rsplit(" ", 1)[1])
    return counts


def test_a_killed_replica_under_load_loses_no_retried_request_and_is_replaced(
    tmp_path: Path, weights_dir: Path, chelsea: np.ndarray
) -> None:
    environment = service_environment(weights_dir, tmp_path / "data", ENHANCE_LOG_FORMAT="json")
    cluster = start_cluster(environment, tmp_path / "cluster.log", replicas=2)
    client = RetryingClient([cluster.url])
    body = {"image": encode_b64(chelsea[:128, :128], "JPEG", quality=90), "response_mode": "bytes"}
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            client.send(body)

    senders = [threading.Thread(target=load, daemon=True) for _ in range(SENDERS)]
    try:
        original = replica_pids()
        assert len(original) == 2
        for sender in senders:
            sender.start()

        # Both replicas serve (and have published their figures) before one is killed.
        def both_served() -> dict[str, float] | None:
            counts = _served_by_replica(cluster.url)
            return counts if len(counts) == 2 else None

        before = wait_until(both_served, timeout_s=120, interval_s=1.0)
        os.kill(original[0], signal.SIGKILL)
        killed_at = time.monotonic()
        wait_until(lambda: len(pids := replica_pids()) == 2 and original[0] not in pids, timeout_s=420, interval_s=0.2)
        process_s = time.monotonic() - killed_at
        wait_until(lambda: set(_served_by_replica(cluster.url)) - set(before), timeout_s=420, interval_s=0.5)
        serving_s = time.monotonic() - killed_at
        time.sleep(3.0)
        stop.set()
        for sender in senders:
            sender.join(timeout=180)
        assert cluster.process.poll() is None, cluster.tail()
        assert client.final.keys() == {"200"}, client.final  # nothing lost
        cluster.stop()  # the proxies' lines reach the driver's log
        resent = cluster.log.read_text(errors="replace").count("POST /v1/phota/enhance: the replica was lost")
        report(
            "a Ray Serve replica SIGKILLed under steady load (2 replicas, 3 clients)",
            client_sees={"first try": dict(client.first_answers), "after retries": dict(client.final)},
            kept=f"{client.final['200']} requests answered 200 ({client.retried} after the client's retry, "
            f"{resent} sent again by the proxies), 0 lost; replacement process after {process_s:.1f} s",
            jobs_lost=0,
            repeated_callbacks=0,
            recovery_s=round(serving_s, 1),  # from the kill until the replacement has answered requests
            outage_s=0,
        )
    finally:
        stop.set()
        cluster.stop()
