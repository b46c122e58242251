"""A real ``python -m server`` process killed with SIGKILL while jobs run, then started again on the same
data directory: every accepted job completes, none completes twice, every callback arrives signed."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import encode_b64
from tests.jobs_helpers import KEY_A, CallbackReceiver, ServiceProcess, verify_signature, wait_until

ROOT = Path(__file__).resolve().parent.parent
JOBS = 5


def start_service(data_dir: Path, weights_dir: Path, log: Path) -> ServiceProcess:
    """The service on ``data_dir`` (SQLite and files), once ready."""
    service = ServiceProcess(
        {
            "ENHANCE_API_KEYS": KEY_A,
            "ENHANCE_DATA_DIR": str(data_dir),
            "ENHANCE_WEIGHTS_DIR": str(weights_dir),
            "ENHANCE_AUTO_PULL_WEIGHTS": "false",
            "ENHANCE_DEVICE": "cpu",
            # Large enough that a job takes a noticeable fraction of a second, so the kill lands mid-run.
            "ENHANCE_NETWORK_MAX_SIDE": "80",
            "ENHANCE_CPU_TILE_SIZE": "96",
            "ENHANCE_TARGET_LONG_SIDE": "320",
            "ENHANCE_ALLOW_PRIVATE_URLS": "true",
            "ENHANCE_ALLOW_HTTP_CALLBACKS": "true",
            "ENHANCE_CALLBACK_RETRY_BASE_S": "0.1",
            "ENHANCE_MAX_CONCURRENT_JOBS": "1",  # one runner: jobs wait their turn in the queue
            "ENHANCE_LOG_LEVEL": "INFO",
        },
        log,
        timeout_s=30,
    )
    service.wait_ready(timeout_s=120)
    return service


def job_table(data_dir: Path) -> dict[str, dict[str, Any]]:
    """The jobs as the database holds them (read directly: the service may be dead)."""
    with sqlite3.connect(data_dir / "enhance.db") as connection:
        connection.row_factory = sqlite3.Row
        rows = connection.execute("SELECT id, status, attempts, completed_at FROM jobs").fetchall()
    return {row["id"]: dict(row) for row in rows}


@pytest.fixture
def receiver() -> Iterator[CallbackReceiver]:
    server = CallbackReceiver()
    yield server
    server.close()


def test_jobs_survive_a_sigkill_mid_run_and_complete_once_after_restart(
    tmp_path: Path, weights_dir: Path, chelsea: np.ndarray, receiver: CallbackReceiver
) -> None:
    data_dir, log = tmp_path / "data", tmp_path / "service.log"
    image = encode_b64(chelsea[40:160, 120:300], "JPEG", quality=90)
    service = start_service(data_dir, weights_dir, log)
    try:
        job_ids = []
        for index in range(JOBS):
            response = service.client.post(
                "/v1/phota/enhance",
                json={
                    "image": image,
                    "async": True,
                    "response_mode": "urls",
                    "callback_url": receiver.url,
                    "client_request_id": f"restart-{index}",
                },
            )
            assert response.status_code == 202, response.text
            job_ids.append(response.json()["job_id"])

        def one_done_and_one_running() -> bool:
            statuses = [service.client.get(f"/v1/phota/jobs/{job_id}").json()["status"] for job_id in job_ids]
            return "SUCCEEDED" in statuses and "RUNNING" in statuses

        wait_until(one_done_and_one_running, timeout_s=120, interval_s=0.01)
        service.kill()
    except BaseException:
        service.stop()
        raise

    at_kill = job_table(data_dir)
    assert set(at_kill) == set(job_ids)
    interrupted = [job_id for job_id, row in at_kill.items() if row["status"] == "RUNNING"]
    finished_before = {job_id: row for job_id, row in at_kill.items() if row["status"] == "SUCCEEDED"}
    assert interrupted, "the kill should land while a job runs"
    assert finished_before
    assert any(row["status"] == "QUEUED" for row in at_kill.values())

    service = start_service(data_dir, weights_dir, log)
    try:
        secret = service.client.get("/v1/phota/webhook-secret").json()["webhook_secret"]

        def all_finished() -> list[dict[str, Any]] | None:
            documents = [service.client.get(f"/v1/phota/jobs/{job_id}").json() for job_id in job_ids]
            return documents if all(d["status"] in ("SUCCEEDED", "FAILED") for d in documents) else None

        documents = wait_until(all_finished, timeout_s=120, interval_s=0.1)
        wait_until(lambda: receiver.accepted_job_ids() >= set(job_ids), timeout_s=60)
        # A resubmission after the restart still finds the original job.
        again = service.client.post(
            "/v1/phota/enhance", json={"image": image, "async": True, "client_request_id": "restart-0"}
        )
        assert again.status_code == 202 and again.json()["job_id"] == job_ids[0]
    finally:
        service.stop()

    after = job_table(data_dir)
    assert [d["status"] for d in documents] == ["SUCCEEDED"] * JOBS
    for job_id in interrupted:
        assert after[job_id]["attempts"] == at_kill[job_id]["attempts"] + 1  # run again once
    for job_id, row in finished_before.items():
        assert after[job_id]["attempts"] == row["attempts"] == 1  # never run again
        assert after[job_id]["completed_at"] == row["completed_at"]
    for document in documents:
        deliveries = receiver.for_job(document["job_id"])
        assert deliveries, f"no callback for {document['job_id']}"
        # At least once: a repeat carries the same job id and the same bytes, so it is easy to drop.
        assert len({d.body for d in deliveries}) == 1
        for delivery in deliveries:
            assert delivery.headers["x-phota-job-id"] == document["job_id"]
            assert verify_signature(secret, delivery.body, delivery.headers["x-phota-signature"])
        assert json.loads(deliveries[0].body) == document
