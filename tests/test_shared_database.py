"""Two real ``python -m server`` processes on one PostgreSQL server (and, until the object store lands, one
shared data directory for files): 20 asynchronous jobs spread over both, one client_request_id sent to
both at once, one process SIGKILLed while it runs a job. Every job ends SUCCEEDED exactly once, every
callback arrives and verifies, every output downloads through the surviving process; a profile added
through one process is counted by an enhance served by the other."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from sqlalchemy import create_engine, text

from tests.conftest import encode_b64
from tests.face_photos import augment, jpeg_bytes
from tests.jobs_helpers import KEY_A, CallbackReceiver, ServiceProcess, verify_signature, wait_until
from tests.postgres_server import PostgresServer
from tests.s3_server import S3Server

ROOT = Path(__file__).resolve().parent.parent
JOBS = 20
# Long enough for a CPU-bound stretch on a busy 2-core machine; the take-over after the kill waits this.
LEASE_S = 10.0
# The shortest link lifetime the settings allow: outputs expire, and are swept, within the test.
URL_TTL_S = 60


def start_replica(
    name: str, database_url: str, data_dir: Path, weights_dir: Path, log: Path, storage: dict[str, str]
) -> ServiceProcess:
    """``python -m server`` on the shared database and object store (started; :meth:`wait_ready` next)."""
    return ServiceProcess(
        {
            "ENHANCE_API_KEYS": KEY_A,
            "ENHANCE_DATABASE_URL": database_url,
            "ENHANCE_DATA_DIR": str(data_dir),
            "ENHANCE_WEIGHTS_DIR": str(weights_dir),
            "ENHANCE_AUTO_PULL_WEIGHTS": "false",
            "ENHANCE_DEVICE": "cpu",
            # A 48-px network input and no upscaling of the 180×120 photo: a job is a fraction of a second.
            "ENHANCE_NETWORK_MAX_SIDE": "48",
            "ENHANCE_CPU_TILE_SIZE": "64",
            "ENHANCE_TARGET_LONG_SIDE": "64",
            "ENHANCE_ALLOW_PRIVATE_URLS": "true",
            "ENHANCE_ALLOW_HTTP_CALLBACKS": "true",
            "ENHANCE_CALLBACK_RETRY_BASE_S": "0.1",
            "ENHANCE_MAX_CONCURRENT_JOBS": "1",
            "ENHANCE_JOB_LEASE_S": str(LEASE_S),
            "ENHANCE_JOB_POLL_INTERVAL_S": "0.2",
            "ENHANCE_LOG_LEVEL": "INFO",
            **storage,
        },
        log,
        name=f"replica {name}",
    )


@pytest.fixture
def shared_database(postgres_server: PostgresServer) -> Iterator[str]:
    name = postgres_server.create_database()
    yield postgres_server.url(name)
    postgres_server.drop_database(name)


@pytest.fixture
def receiver() -> Iterator[CallbackReceiver]:
    server = CallbackReceiver()
    yield server
    server.close()


def job_rows(database_url: str) -> dict[str, dict[str, Any]]:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text("SELECT id, status, attempts, completed_at, lease_owner FROM jobs")
            ).mappings()
            return {row["id"]: dict(row) for row in rows}
    finally:
        engine.dispose()


def reference_images(seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [base64.b64encode(jpeg_bytes(augment("hopper", rng, (90, 180)))).decode() for _ in range(5)]


def test_two_processes_share_jobs_and_a_killed_ones_jobs_finish_once_on_the_other(
    tmp_path: Path,
    weights_dir: Path,
    chelsea: np.ndarray,
    receiver: CallbackReceiver,
    shared_database: str,
    s3_server: S3Server,
) -> None:
    # Files in one SeaweedFS bucket, each process with its own data dir: nothing is shared on disk.
    bucket = f"shared-{os.getpid()}"
    s3_server.client().create_bucket(Bucket=bucket)  # type: ignore[attr-defined]
    storage = {
        **s3_server.environment(),
        "ENHANCE_STORAGE_URL": f"s3://{bucket}/v1",
        "ENHANCE_S3_ENDPOINT_URL": s3_server.endpoint_url,
        "ENHANCE_URL_TTL_S": str(URL_TTL_S),
        "ENHANCE_CLEANUP_INTERVAL_S": "1",
    }
    first, second = (
        start_replica(name, shared_database, tmp_path / name, weights_dir, tmp_path / f"{name}.log", storage)
        for name in ("first", "second")
    )
    replicas = [first, second]
    try:
        first.wait_ready()
        second.wait_ready()
        # Stateless replicas: the same webhook secret from either process.
        secret = first.client.get("/v1/phota/webhook-secret").json()["webhook_secret"]
        assert second.client.get("/v1/phota/webhook-secret").json()["webhook_secret"] == secret

        # A profile added through one process is built by whichever claims it, and counted by the other.
        profile_id = first.client.post(
            "/v1/phota/profiles/add", json={"image_urls": reference_images(seed=21), "training_tier": "fast"}
        ).json()["profile_id"]

        def profile_finished() -> str | None:
            status = second.client.get(f"/v1/phota/profiles/{profile_id}/status").json()["status"]
            return status if status in ("READY", "ERROR") else None

        assert wait_until(profile_finished, timeout_s=240, interval_s=0.3) == "READY"
        probe = base64.b64encode(jpeg_bytes(augment("hopper", np.random.default_rng(22), (100, 110)))).decode()
        counted = second.client.post("/v1/phota/enhance", json={"image": probe, "profile_ids": [profile_id]})
        assert counted.status_code == 200, counted.text
        assert counted.json()["known_subjects"]["counts"] == {profile_id: 1}

        image = encode_b64(chelsea[40:160, 120:300], "JPEG", quality=90)
        job_ids = []
        for index in range(JOBS):
            replica = replicas[index % 2]
            body = {
                "image": image,
                "async": True,
                "response_mode": "urls",
                "callback_url": receiver.url,
                "client_request_id": f"shared-{index}",
            }
            response = replica.client.post("/v1/phota/enhance", json=body)
            assert response.status_code == 202, response.text
            job_ids.append(response.json()["job_id"])
        # Idempotency across processes: the same client_request_id through the other process.
        again = second.client.post(
            "/v1/phota/enhance", json={"image": image, "async": True, "client_request_id": "shared-0"}
        )
        assert again.status_code == 202 and again.json()["job_id"] == job_ids[0]
        # Both processes receive one client_request_id at the same moment: one job.
        race = {**body, "client_request_id": "shared-race"}
        with ThreadPoolExecutor(2) as pool:
            raced = list(pool.map(lambda replica: replica.client.post("/v1/phota/enhance", json=race), replicas))
        assert [response.status_code for response in raced] == [202, 202]
        assert raced[0].json()["job_id"] == raced[1].json()["job_id"]
        job_ids.append(raced[0].json()["job_id"])

        first_pid = f"/{first.process.pid}/"

        def first_runs_a_job_after_finishing_one() -> dict[str, dict[str, Any]] | None:
            rows = job_rows(shared_database)
            running_here = [
                r for r in rows.values() if r["status"] == "RUNNING" and first_pid in (r["lease_owner"] or "")
            ]
            done = [r for r in rows.values() if r["status"] == "SUCCEEDED"]
            return rows if running_here and done else None

        at_kill = wait_until(first_runs_a_job_after_finishing_one, timeout_s=240, interval_s=0.02)
        first.kill()
        interrupted = [
            job_id
            for job_id, row in job_rows(shared_database).items()
            if row["status"] == "RUNNING" and first_pid in (row["lease_owner"] or "")
        ]
        assert interrupted, "the kill should land while the first process runs a job"
        finished_before = {job_id: row for job_id, row in at_kill.items() if row["status"] == "SUCCEEDED"}

        def all_finished() -> list[dict[str, Any]] | None:
            documents = [second.client.get(f"/v1/phota/jobs/{job_id}").json() for job_id in job_ids]
            return documents if all(d["status"] in ("SUCCEEDED", "FAILED") for d in documents) else None

        documents = wait_until(all_finished, timeout_s=400, interval_s=0.2)
        assert [d["status"] for d in documents] == ["SUCCEEDED"] * (JOBS + 1)
        assert len(job_rows(shared_database)) == JOBS + 1  # resubmissions and the race stored nothing more
        wait_until(lambda: receiver.accepted_job_ids() >= set(job_ids), timeout_s=60)

        after = job_rows(shared_database)
        for job_id in interrupted:
            assert after[job_id]["attempts"] == 2  # taken over once the dead process's lease ran out
        for job_id, row in finished_before.items():
            assert after[job_id]["completed_at"] == row["completed_at"]  # never completed again
        for document in documents:
            deliveries = receiver.for_job(document["job_id"])
            assert deliveries, f"no callback for {document['job_id']}"
            assert len({d.body for d in deliveries}) == 1  # repeats (at least once) carry the same bytes
            for delivery in deliveries:
                assert verify_signature(secret, delivery.body, delivery.headers["x-phota-signature"])
            # Every output downloads straight from the store through its presigned URL, whoever made it.
            for url in document["result"]["download_urls"]:
                assert url.startswith(s3_server.endpoint_url) and "Signature=" in url
                download = httpx.get(url, timeout=30)
                assert download.status_code == 200 and download.content[:3] == b"\xff\xd8\xff"

        # After expiry (and the profile's deletion) the survivor's sweep leaves nothing in the bucket.
        assert second.client.delete(f"/v1/phota/profiles/{profile_id}").status_code == 200

        def bucket_empty() -> bool | None:
            answer = s3_server.client().list_objects_v2(Bucket=bucket)  # type: ignore[attr-defined]
            return True if not answer.get("Contents") else None

        assert wait_until(bucket_empty, timeout_s=URL_TTL_S + 120, interval_s=1.0)
    finally:
        for replica in replicas:
            replica.stop()
