"""Fault: PostgreSQL stopped for 15 s and started again on the same port, under a real service process (test
mode) with 20 asynchronous jobs queued or running, new jobs and profiles submitted, jobs polled and
synchronous requests arriving all along.

What a client must see: no 500 and no crash; a request that needs the database answers 503
``SERVICE_UNAVAILABLE`` with ``Retry-After``; one that does not (a synchronous ``bytes`` enhance) keeps
answering 200. Afterwards, without a restart: every job (those queued before, and those a client
resubmitted after a 503) ends SUCCEEDED, each callback is delivered exactly once, and every profile
submitted is built."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.conftest import encode_b64
from tests.faults.components import (
    StoppablePostgres,
    Traffic,
    reference_images,
    report,
    service_environment,
    start_service,
)
from tests.jobs_helpers import KEY_A, CallbackReceiver, wait_until

pytestmark = pytest.mark.faults

OUTAGE_S = 15.0
JOBS = 20
NEEDS_DATABASE = ("submit", "poll", "profile ids", "profile add")


@pytest.fixture
def postgres() -> Iterator[StoppablePostgres]:
    server = StoppablePostgres()
    yield server
    server.stop()


@pytest.fixture
def receiver() -> Iterator[CallbackReceiver]:
    server = CallbackReceiver()
    yield server
    server.close()


def test_a_database_outage_answers_503_and_loses_nothing(
    tmp_path: Path, weights_dir: Path, chelsea: np.ndarray, postgres: StoppablePostgres, receiver: CallbackReceiver
) -> None:
    database_url = postgres.url(postgres.create_database())
    environment = service_environment(
        weights_dir,
        tmp_path / "data",
        ENHANCE_DATABASE_URL=database_url,
        ENHANCE_MAX_CONCURRENT_JOBS="1",  # one runner: the jobs stay queued through the outage
        ENHANCE_TARGET_LONG_SIDE="1024",
    )
    service = start_service(environment, tmp_path / "service.log")
    job_image = encode_b64(chelsea[:, :400], "JPEG", quality=90)
    sync_image = encode_b64(chelsea[100:196, 100:196], "JPEG", quality=90)
    headers = {"X-API-Key": KEY_A}
    traffic = Traffic(pause_s=0.1)
    try:
        job_ids: list[str] = []
        for index in range(JOBS):
            mode = "urls" if index % 2 else "bytes"
            body = {"image": job_image, "async": True, "response_mode": mode, "callback_url": receiver.url}
            response = service.client.post("/v1/phota/enhance", json=body)
            assert response.status_code == 202, response.text
            job_ids.append(response.json()["job_id"])

        clients = [httpx.Client(base_url=service.base_url, headers=headers, timeout=60) for _ in range(5)]
        sync_body = {"image": sync_image, "response_mode": "bytes"}
        submit_body = {"image": sync_image, "async": True, "callback_url": receiver.url}
        traffic.add("sync enhance", lambda: clients[0].post("/v1/phota/enhance", json=sync_body))
        traffic.add("submit", lambda: clients[1].post("/v1/phota/enhance", json=submit_body), pause_s=0.5)
        traffic.add("poll", lambda: clients[2].get(f"/v1/phota/jobs/{job_ids[0]}"))
        traffic.add("profile ids", lambda: clients[3].get("/v1/phota/profiles/ids"))
        references = reference_images(seed=5)
        profile_body = {"image_urls": references, "training_tier": "fast"}
        traffic.add("profile add", lambda: clients[4].post("/v1/phota/profiles/add", json=profile_body), pause_s=4.0)

        time.sleep(2.0)
        postgres.stop_server()
        down_at = time.monotonic()
        time.sleep(OUTAGE_S)
        postgres.start_server()
        up_at = time.monotonic()
        wait_until(lambda: traffic.first_success_after(up_at, "submit"), timeout_s=120, interval_s=0.2)
        time.sleep(3.0)  # some traffic after the recovery too
        traffic.stop()
        for client in clients:
            client.close()

        outcomes = traffic.outcomes
        # No 500, no crash, no refused connection: only 2xx, or 503 with Retry-After while it was down.
        assert not [o for o in outcomes if o.status == 500 or o.status == 0], traffic.by_status()
        unavailable = [o for o in outcomes if o.status == 503]
        assert all(o.retry_after for o in unavailable)
        assert all(o.body and o.body["code"] == "SERVICE_UNAVAILABLE" for o in unavailable)
        assert {o.status for o in outcomes} <= {200, 202, 503}, traffic.by_status()
        for label in NEEDS_DATABASE:
            seen = [o for o in traffic.between(down_at + 1.0, up_at - 1.0) if o.label == label]
            assert seen and all(o.status == 503 for o in seen), (label, [o.status for o in seen])
        # The synchronous bytes path needs no database: it kept answering 200.
        assert traffic.by_status("sync enhance").keys() == {"200"}
        assert service.process.poll() is None, "the service died"

        submitted = [o.body["job_id"] for o in outcomes if o.label == "submit" and o.status == 202 and o.body]
        profiles = [o.body["profile_id"] for o in outcomes if o.label == "profile add" and o.status == 200 and o.body]
        all_jobs = job_ids + submitted

        def finished(job_id: str) -> dict[str, Any] | None:
            document = service.client.get(f"/v1/phota/jobs/{job_id}").json()
            return document if document["status"] in ("SUCCEEDED", "FAILED") else None

        documents = [
            wait_until(lambda job_id=job_id: finished(job_id), timeout_s=300, interval_s=0.3) for job_id in all_jobs
        ]
        failed = [d for d in documents if d["status"] != "SUCCEEDED"]
        assert not failed, failed[:3]
        wait_until(lambda: receiver.accepted_job_ids() >= set(all_jobs), timeout_s=120, interval_s=0.2)
        time.sleep(2.0)  # a repeated delivery would arrive by now
        repeated = {job_id: len(receiver.for_job(job_id)) for job_id in all_jobs if len(receiver.for_job(job_id)) != 1}
        assert not repeated, repeated
        for document in documents[1:JOBS:2]:  # the urls-mode jobs: their files download
            for url in document["result"]["download_urls"]:
                assert httpx.get(url, timeout=30).status_code == 200

        def built(profile_id: str) -> str | None:
            status = service.client.get(f"/v1/phota/profiles/{profile_id}/status").json()["status"]
            return status if status in ("READY", "ERROR") else None

        statuses = [wait_until(lambda p=profile_id: built(p), timeout_s=300, interval_s=0.5) for profile_id in profiles]
        assert statuses and set(statuses) == {"READY"}, statuses
        recovered_s = (traffic.first_success_after(up_at, "submit") or up_at) - up_at
        report(
            f"database stopped {OUTAGE_S:g} s",
            client_sees={label: traffic.by_status(label) for label in ("sync enhance", *NEEDS_DATABASE)},
            kept=f"{len(all_jobs)} jobs SUCCEEDED, {len(profiles)} profiles READY",
            jobs_lost=len(all_jobs) - len(documents) + len(failed),
            repeated_callbacks=sum(max(0, len(receiver.for_job(j)) - 1) for j in all_jobs),
            recovery_s=round(recovered_s, 2),
            outage_s=round(up_at - down_at, 2),
        )
    finally:
        traffic.stop()
        service.stop()
