"""Fault: the S3 store (SeaweedFS) stopped for 10 s and started again on the same ports, under a real service
process (test mode, files in the store) with synchronous requests in both response modes, job
submissions, and asynchronous urls-mode jobs whose uploads fall into the outage.

What a client must see: urls-mode requests answer 200 or 503 ``SERVICE_UNAVAILABLE`` with
``Retry-After``, never 500; bytes mode keeps answering 200; a job's upload is retried, so every job ends
SUCCEEDED and is called back once. Once the store is back: urls work, every URL an answer named
downloads, and no object is left that no answer names (no orphan) nor a record names a missing file."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import numpy as np
import pytest

from tests.conftest import encode_b64
from tests.faults.components import StoppableS3, Traffic, full_suite_only, report, service_environment, start_service
from tests.jobs_helpers import KEY_A, CallbackReceiver, wait_until

pytestmark = [pytest.mark.faults, full_suite_only]

OUTAGE_S = 10.0
JOBS = 6
BUCKET = "faults"
PREFIX = "enhance"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StoppableS3]:
    server = StoppableS3(tmp_path / "seaweedfs")
    yield server
    server.stop()


@pytest.fixture
def receiver() -> Iterator[CallbackReceiver]:
    server = CallbackReceiver()
    yield server
    server.close()


def _key_of(url: str) -> str:
    """The object key (below the bucket) a presigned URL names."""
    path = urlsplit(url).path.lstrip("/")
    bucket, _, key = path.partition("/")
    assert bucket == BUCKET, url
    return key


def test_an_object_store_outage_answers_503_for_urls_and_keeps_files_consistent(
    tmp_path: Path, weights_dir: Path, chelsea: np.ndarray, store: StoppableS3, receiver: CallbackReceiver
) -> None:
    environment = service_environment(
        weights_dir,
        tmp_path / "data",
        **store.server.environment(),
        ENHANCE_STORAGE_URL=f"s3://{BUCKET}/{PREFIX}",
        ENHANCE_S3_ENDPOINT_URL=store.endpoint_url,
        ENHANCE_MAX_CONCURRENT_JOBS="1",
        ENHANCE_TARGET_LONG_SIDE="1024",
    )
    service = start_service(environment, tmp_path / "service.log")
    job_image = encode_b64(chelsea[:, :400], "JPEG", quality=90)
    small = encode_b64(chelsea[100:196, 100:196], "JPEG", quality=90)
    headers = {"X-API-Key": KEY_A}
    traffic = Traffic(pause_s=0.1)
    try:
        job_ids = []
        for _ in range(JOBS):
            body = {"image": job_image, "async": True, "response_mode": "urls", "callback_url": receiver.url}
            response = service.client.post("/v1/phota/enhance", json=body)
            assert response.status_code == 202, response.text
            job_ids.append(response.json()["job_id"])
        clients = [httpx.Client(base_url=service.base_url, headers=headers, timeout=120) for _ in range(3)]
        urls_body = {"image": small, "response_mode": "urls"}
        traffic.add("urls enhance", lambda: clients[0].post("/v1/phota/enhance", json=urls_body))
        bytes_body = {"image": small, "response_mode": "bytes"}
        traffic.add("bytes enhance", lambda: clients[1].post("/v1/phota/enhance", json=bytes_body))
        submit_body = {"image": small, "async": True, "response_mode": "urls", "callback_url": receiver.url}
        traffic.add("submit", lambda: clients[2].post("/v1/phota/enhance", json=submit_body), pause_s=0.5)

        time.sleep(2.0)
        store.stop()
        down_at = time.monotonic()
        time.sleep(OUTAGE_S)
        store.start()
        up_at = time.monotonic()
        wait_until(lambda: traffic.first_success_after(up_at, "urls enhance"), timeout_s=120, interval_s=0.2)
        time.sleep(3.0)
        traffic.stop()
        for client in clients:
            client.close()

        outcomes = traffic.outcomes
        assert {o.status for o in outcomes} <= {200, 202, 503}, traffic.by_status()
        unavailable = [o for o in outcomes if o.status == 503]
        assert unavailable, "the outage was never seen"
        assert all(o.retry_after and o.body and o.body["code"] == "SERVICE_UNAVAILABLE" for o in unavailable)
        assert traffic.by_status("bytes enhance").keys() == {"200"}
        for label in ("urls enhance", "submit"):  # both write to the store: refused while it was down
            assert "503" in traffic.by_status(label), traffic.by_status(label)
        assert service.process.poll() is None

        submitted = [o.body["job_id"] for o in outcomes if o.label == "submit" and o.status == 202 and o.body]
        all_jobs = job_ids + submitted

        def finished(job_id: str) -> dict[str, Any] | None:
            document = service.client.get(f"/v1/phota/jobs/{job_id}").json()
            return document if document["status"] in ("SUCCEEDED", "FAILED") else None

        documents = [wait_until(lambda j=job_id: finished(j), timeout_s=300, interval_s=0.3) for job_id in all_jobs]
        assert [d["status"] for d in documents] == ["SUCCEEDED"] * len(all_jobs), [d["error"] for d in documents]
        wait_until(lambda: receiver.accepted_job_ids() >= set(all_jobs), timeout_s=120, interval_s=0.2)
        time.sleep(2.0)
        assert all(len(receiver.for_job(job_id)) == 1 for job_id in all_jobs)

        # Every URL an answer named downloads; no output object exists that no answer names.
        named = [
            url
            for o in outcomes
            if o.label == "urls enhance" and o.status == 200 and o.body
            for url in o.body["download_urls"]
        ]
        named += [url for d in documents for url in d["result"]["download_urls"]]
        for url in named:
            fetched = httpx.get(url, timeout=30)
            assert fetched.status_code == 200 and fetched.content[:4] in (
                b"\x89PNG",
                b"\xff\xd8\xff\xe0",
                b"\xff\xd8\xff\xdb",
                b"\xff\xd8\xff\xe1",
            ), url
        client = store.client()
        listed = client.list_objects_v2(Bucket=BUCKET, Prefix=f"{PREFIX}/")  # type: ignore[attr-defined]
        keys = {entry["Key"] for entry in listed.get("Contents", [])}
        outputs = {key for key in keys if key.startswith(f"{PREFIX}/files/")}
        orphans = outputs - {_key_of(url) for url in named}
        assert not orphans, sorted(orphans)[:5]
        sources = {key for key in keys if key.startswith(f"{PREFIX}/jobs/")}
        assert not sources, sorted(sources)[:5]  # a finished urls-mode job keeps nothing under jobs/
        recovered_s = (traffic.first_success_after(up_at, "urls enhance") or up_at) - up_at
        report(
            f"object store stopped {OUTAGE_S:g} s",
            client_sees={label: traffic.by_status(label) for label in ("urls enhance", "bytes enhance", "submit")},
            kept=f"{len(all_jobs)} jobs SUCCEEDED, {len(named)} URLs download, 0 orphan objects",
            jobs_lost=0,
            repeated_callbacks=sum(max(0, len(receiver.for_job(j)) - 1) for j in all_jobs),
            recovery_s=round(recovered_s, 2),
            outage_s=round(up_at - down_at, 2),
        )
    finally:
        traffic.stop()
        service.stop()
