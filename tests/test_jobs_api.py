"""Asynchronous enhance through the API, in process, with the real x4plus weights on CPU: submit, poll,
results, errors, idempotency, isolation, limits, expiry and resuming after a restart."""

from __future__ import annotations

import datetime as dt
import io
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models.errors import ModelOutOfMemoryError
from server import create_app
from server.services import services_of
from server.storage.jobs import JobRow
from tests.conftest import decode_b64, encode_b64
from tests.jobs_helpers import HEADERS_A, HEADERS_B, job_settings, poll_job, wait_until


@pytest.fixture
def photo_b64(chelsea: np.ndarray) -> str:
    """A 120×80 JPEG crop of a real photo (the cat's face)."""
    return encode_b64(chelsea[40:120, 150:270], "JPEG", quality=90)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, weights_dir: Path) -> Iterator[TestClient]:
    app = create_app(job_settings(tmp_path_factory.mktemp("jobs"), weights_dir))
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


class GatedEnhance:
    """Stands in for ``ModelRuntime.run``: counts calls, then waits for ``release`` before running the real
    network (or raising ``error``), so a test can see a job RUNNING or hold the queue full."""

    def __init__(self, real: Callable[..., Any], error: Exception | None = None) -> None:
        self.real = real
        self.error = error
        self.calls = 0
        self.started = threading.Event()
        self.release = threading.Event()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        self.started.set()
        if not self.release.wait(30):
            raise TimeoutError("the test never released the gate")
        if self.error is not None:
            raise self.error
        return self.real(*args, **kwargs)


def gate_engine(client: TestClient, monkeypatch: pytest.MonkeyPatch, error: Exception | None = None) -> GatedEnhance:
    engine = services_of(client.app).runtime
    gate = GatedEnhance(engine.run, error)
    monkeypatch.setattr(engine, "run", gate)
    return gate


def submit(client: TestClient, payload: dict[str, Any], headers: dict[str, str] = HEADERS_A) -> dict[str, Any]:
    response = client.post("/v1/phota/enhance", headers=headers, json={"async": True, **payload})
    assert response.status_code == 202, response.text
    return response.json()  # type: ignore[no-any-return]


def job_rows(client: TestClient) -> list[JobRow]:
    with Session(services_of(client.app).jobs.store._engine) as session:
        return list(session.scalars(select(JobRow)))


def test_async_submit_answers_202_then_the_job_runs_to_a_downloadable_result(
    client: TestClient, photo_b64: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = gate_engine(client, monkeypatch)
    response = client.post(
        "/v1/phota/enhance",
        headers=HEADERS_A,
        json={"image": photo_b64, "async": True, "response_mode": "urls", "num_output_images": 2},
    )
    assert response.status_code == 202
    accepted = response.json()
    assert set(accepted) == {"job_id", "poll_url", "status"}
    assert accepted["status"] == "QUEUED"
    assert accepted["poll_url"] == f"http://testserver/v1/phota/jobs/{accepted['job_id']}"
    assert response.headers["Location"] == accepted["poll_url"]

    assert gate.started.wait(10)
    running = client.get(accepted["poll_url"], headers=HEADERS_A)
    assert running.status_code == 200
    assert running.headers["X-Phota-Deprecation-Date"] == "2026-05-08"
    assert running.json()["status"] == "RUNNING"
    assert running.json()["result"] is None and running.json()["completed_at"] is None
    gate.release.set()

    document = poll_job(client, accepted["job_id"], HEADERS_A)
    assert set(document) == {"job_id", "status", "result", "error", "created_at", "completed_at"}
    assert document["status"] == "SUCCEEDED" and document["error"] is None
    created = dt.datetime.fromisoformat(document["created_at"])
    completed = dt.datetime.fromisoformat(document["completed_at"])
    assert created.tzinfo is not None and created <= completed
    result = document["result"]
    assert result["images"] == [] and result["known_subjects"] == {"counts": {}}
    assert len(result["download_urls"]) == 2
    for url in result["download_urls"]:
        download = client.get(url)  # no key needed
        assert download.status_code == 200
        assert Image.open(io.BytesIO(download.content)).size == (120, 80)
    assert gate.calls == 1
    jobs = services_of(client.app).jobs
    assert accepted["job_id"] not in jobs.files.job_ids_on_disk()  # input dropped; urls results live in files/


def test_bytes_result_matches_what_the_synchronous_call_returns(client: TestClient, photo_b64: str) -> None:
    payload = {"image": photo_b64, "num_output_images": 2, "output_format": "png"}
    accepted = submit(client, payload)
    document = poll_job(client, accepted["job_id"], HEADERS_A)
    synchronous = client.post("/v1/phota/enhance", headers=HEADERS_A, json=payload).json()
    assert document["result"] == synchronous
    assert decode_b64(document["result"]["images"][0]).format == "PNG"


def test_default_output_format_is_decided_on_the_submit_date(tmp_path: Path, weights_dir: Path, photo_b64: str) -> None:
    app = create_app(job_settings(tmp_path, weights_dir), today=lambda: dt.date(2026, 5, 7))
    with TestClient(app) as own:
        accepted = submit(own, {"image": photo_b64})
        document = poll_job(own, accepted["job_id"], HEADERS_A)
    assert decode_b64(document["result"]["images"][0]).format == "PNG"  # png before 2026-05-08


def test_job_of_another_account_or_unknown_id_is_404(client: TestClient, photo_b64: str) -> None:
    accepted = submit(client, {"image": photo_b64})
    other = client.get(accepted["poll_url"], headers=HEADERS_B)
    unknown = client.get("/v1/phota/jobs/job_00000000000000000000000000000000", headers=HEADERS_A)
    for response in (other, unknown):
        assert response.status_code == 404
        assert response.json()["code"] == "NOT_FOUND"
    assert client.get(accepted["poll_url"]).status_code == 401
    assert poll_job(client, accepted["job_id"], HEADERS_A)["status"] == "SUCCEEDED"


def test_same_client_request_id_returns_the_original_job_without_running_it_again(
    client: TestClient, photo_b64: str
) -> None:
    payload = {"image": photo_b64, "client_request_id": "order-17"}
    first = submit(client, payload)
    poll_job(client, first["job_id"], HEADERS_A)
    again = submit(client, payload)
    assert again["job_id"] == first["job_id"]
    assert again["status"] == "SUCCEEDED"  # the original job, as it stands now
    other_account = submit(client, payload, HEADERS_B)
    assert other_account["job_id"] != first["job_id"]  # keys are per account
    rows = [row for row in job_rows(client) if row.id == first["job_id"]]
    assert len(rows) == 1 and rows[0].attempts == 1


def test_concurrent_submits_with_one_client_request_id_make_one_job(client: TestClient, photo_b64: str) -> None:
    payload = {"image": photo_b64, "client_request_id": "race-42", "response_mode": "urls"}
    barrier = threading.Barrier(8)

    def submit_after_barrier(_: int) -> tuple[int, str]:
        barrier.wait()
        response = client.post("/v1/phota/enhance", headers=HEADERS_A, json={"async": True, **payload})
        return response.status_code, response.json()["job_id"]

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(submit_after_barrier, range(8)))
    assert {status for status, _ in answers} == {202}
    job_ids = {job_id for _, job_id in answers}
    assert len(job_ids) == 1
    job_id = job_ids.pop()
    poll_job(client, job_id, HEADERS_A)
    time.sleep(0.3)  # a duplicate, had one been queued, would run now
    rows = [row for row in job_rows(client) if row.client_request_key is not None and row.id == job_id]
    assert len(rows) == 1 and rows[0].attempts == 1
    with Session(services_of(client.app).jobs.store._engine) as session:
        same_key = session.scalar(select(func.count()).where(JobRow.client_request_key == rows[0].client_request_key))
    assert same_key == 1
    job_dirs = set(services_of(client.app).jobs.files.job_ids_on_disk())
    assert job_dirs <= {row.id for row in job_rows(client)}  # losers' stored sources were removed


@pytest.mark.parametrize(
    ("payload", "code", "fragment"),
    [
        ({"image": "%%%not base64%%%"}, "INVALID_IMAGE", "base64"),
        ({"image": "http://169.254.169.254/latest/meta-data"}, "IMAGE_FETCH_FAILED", "metadata"),
        ({"image": "IMAGE", "callback_url": "ftp://example.com/hook"}, "BAD_REQUEST", "callback_url"),
        ({"image": "IMAGE", "callback_url": "https://user:pw@example.com/hook"}, "BAD_REQUEST", "credentials"),
        ({"image": "IMAGE", "callback_url": "http://169.254.169.254/hook"}, "BAD_REQUEST", "metadata"),
        ({"image": "IMAGE", "callback_url": "not a url"}, "BAD_REQUEST", "callback_url"),
    ],
)
def test_bad_async_submit_is_400_and_stores_no_job(
    client: TestClient, photo_b64: str, payload: dict[str, Any], code: str, fragment: str
) -> None:
    before = len(job_rows(client))
    body = {**payload, "image": photo_b64 if payload["image"] == "IMAGE" else payload["image"]}
    response = client.post("/v1/phota/enhance", headers=HEADERS_A, json={"async": True, **body})
    assert response.status_code == 400, response.text
    assert response.json()["code"] == code
    assert fragment in response.json()["detail"]
    assert len(job_rows(client)) == before


@pytest.mark.parametrize(
    ("callback_url", "fragment"),
    [("http://example.com/hook", "ENHANCE_ALLOW_HTTP_CALLBACKS"), ("https://127.0.0.1/hook", "loopback")],
)
def test_callback_url_rules_follow_the_operator_settings(
    tmp_path: Path, weights_dir: Path, photo_b64: str, callback_url: str, fragment: str
) -> None:
    settings = job_settings(tmp_path, weights_dir, allow_private_urls=False, allow_http_callbacks=False)
    with TestClient(create_app(settings)) as own:
        response = own.post(
            "/v1/phota/enhance",
            headers=HEADERS_A,
            json={"image": photo_b64, "async": True, "callback_url": callback_url},
        )
    assert response.status_code == 400
    assert response.json()["code"] == "BAD_REQUEST"
    assert fragment in response.json()["detail"]


@pytest.mark.parametrize(
    ("error", "code", "detail"),
    [
        (ModelOutOfMemoryError("out of GPU memory even with 64px tiles"), "SERVICE_UNAVAILABLE", "64px"),
        (RuntimeError("secret internal detail"), "INTERNAL_ERROR", "quote the job id"),
    ],
)
def test_failing_job_reports_the_error_a_synchronous_call_would_give(
    client: TestClient, photo_b64: str, monkeypatch: pytest.MonkeyPatch, error: Exception, code: str, detail: str
) -> None:
    gate = gate_engine(client, monkeypatch, error)
    gate.release.set()
    accepted = submit(client, {"image": photo_b64})
    document = poll_job(client, accepted["job_id"], HEADERS_A)
    assert document["status"] == "FAILED"
    assert document["result"] is None
    assert document["error"]["code"] == code
    assert detail in document["error"]["detail"]
    assert "secret" not in document["error"]["detail"]
    assert document["completed_at"] is not None


def test_full_job_queue_answers_503_with_retry_after(
    tmp_path: Path, weights_dir: Path, photo_b64: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = job_settings(tmp_path, weights_dir, job_queue_size=2, retry_after_s=7)
    with TestClient(create_app(settings)) as own:
        gate = gate_engine(own, monkeypatch)
        first = submit(own, {"image": photo_b64, "client_request_id": "first"})
        submit(own, {"image": photo_b64})
        full = own.post("/v1/phota/enhance", headers=HEADERS_A, json={"image": photo_b64, "async": True})
        repeated = own.post(
            "/v1/phota/enhance",
            headers=HEADERS_A,
            json={"image": photo_b64, "async": True, "client_request_id": "first"},
        )
        gate.release.set()
        poll_job(own, first["job_id"], HEADERS_A)
        wait_until(lambda: services_of(own.app).jobs.pending == 0)
        after = own.post("/v1/phota/enhance", headers=HEADERS_A, json={"image": photo_b64, "async": True})
    assert full.status_code == 503
    assert full.json()["code"] == "SERVICE_UNAVAILABLE"
    assert full.headers["Retry-After"] == "7"
    assert repeated.status_code == 202 and repeated.json()["job_id"] == first["job_id"]  # not refused
    assert after.status_code == 202


def test_synchronous_request_past_the_time_limit_is_504_timeout(
    tmp_path: Path, weights_dir: Path, photo_b64: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with TestClient(create_app(job_settings(tmp_path, weights_dir, sync_timeout_s=0.3))) as own:
        engine = services_of(own.app).runtime
        real = engine.run

        def slow(*args: Any, **kwargs: Any) -> Any:
            time.sleep(5.0)
            return real(*args, **kwargs)

        monkeypatch.setattr(engine, "run", slow)
        started = time.monotonic()
        response = own.post("/v1/phota/enhance", headers=HEADERS_A, json={"image": photo_b64})
        elapsed = time.monotonic() - started
    assert response.status_code == 504
    assert response.json()["code"] == "TIMEOUT"
    assert response.json()["request_id"] == response.headers["X-Request-Id"]
    assert elapsed < 3.5  # answered at the 0.3 s limit (plus slack for a loaded machine), not at 5 s


def test_finished_job_and_its_files_expire_after_the_url_lifetime(client: TestClient, photo_b64: str) -> None:
    jobs = services_of(client.app).jobs
    accepted = submit(client, {"image": photo_b64, "client_request_id": "expiring"})
    document = poll_job(client, accepted["job_id"], HEADERS_A)
    job_dir = jobs.files.prefix(accepted["job_id"])
    assert jobs.files.objects.get(job_dir + "images.json") is not None
    assert jobs.files.objects.get(job_dir + "source") is None  # the input is dropped once the job has ended
    completed = dt.datetime.fromisoformat(document["completed_at"])
    ttl = dt.timedelta(seconds=services_of(client.app).settings.url_ttl_s)
    jobs.sweep(completed + ttl - dt.timedelta(seconds=1))
    assert client.get(accepted["poll_url"], headers=HEADERS_A).status_code == 200
    assert jobs.sweep(completed + ttl) >= 1
    assert client.get(accepted["poll_url"], headers=HEADERS_A).status_code == 404
    assert accepted["job_id"] not in jobs.files.job_ids_on_disk()
    again = submit(client, {"image": photo_b64, "client_request_id": "expiring"})
    assert again["job_id"] != accepted["job_id"]  # an expired job frees its client_request_id
    poll_job(client, again["job_id"], HEADERS_A)


def test_webhook_secret_is_per_account_and_stable_across_restarts(tmp_path: Path, weights_dir: Path) -> None:
    settings = job_settings(tmp_path, weights_dir)
    with TestClient(create_app(settings)) as first:
        secret_a = first.get("/v1/phota/webhook-secret", headers=HEADERS_A).json()["webhook_secret"]
        secret_b = first.get("/v1/phota/webhook-secret", headers=HEADERS_B).json()["webhook_secret"]
        assert first.get("/v1/phota/webhook-secret").status_code == 401
    with TestClient(create_app(settings)) as second:
        again = second.get("/v1/phota/webhook-secret", headers=HEADERS_A).json()["webhook_secret"]
    assert secret_a == again
    assert secret_a != secret_b
    assert secret_a.startswith("whsec_") and len(secret_a) >= 40


def test_job_interrupted_by_a_shutdown_is_run_again_on_the_next_start(
    tmp_path: Path, weights_dir: Path, photo_b64: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = job_settings(tmp_path, weights_dir, job_shutdown_grace_s=0)
    with TestClient(create_app(settings)) as first:
        # Released after the stop, the cut-short run ends at once instead of computing for nobody.
        gate = gate_engine(first, monkeypatch, RuntimeError("released after the stop"))
        running = submit(first, {"image": photo_b64})
        queued = submit(first, {"image": photo_b64, "num_output_images": 2})
        assert gate.started.wait(10)
        # Leaving the block stops the service with the first job mid-run and the second still queued.
    gate.release.set()
    with TestClient(create_app(settings)) as second:
        documents = [poll_job(second, job["job_id"], HEADERS_A) for job in (running, queued)]
        rows = {row.id: row for row in job_rows(second)}
    assert [document["status"] for document in documents] == ["SUCCEEDED", "SUCCEEDED"]
    assert len(documents[1]["result"]["images"]) == 2
    assert rows[running["job_id"]].attempts == 2  # started once before the stop, once after
    assert rows[queued["job_id"]].attempts == 1


def test_shutdown_lets_a_running_job_finish_within_the_grace_period(
    tmp_path: Path, weights_dir: Path, photo_b64: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = job_settings(tmp_path, weights_dir, job_shutdown_grace_s=20)
    with TestClient(create_app(settings)) as first:
        gate = gate_engine(first, monkeypatch)
        accepted = submit(first, {"image": photo_b64})
        assert gate.started.wait(10)
        threading.Timer(0.5, gate.release.set).start()  # the job ends while the service is stopping
    with TestClient(create_app(settings)) as second:
        document = second.get(accepted["poll_url"], headers=HEADERS_A).json()
        [row] = job_rows(second)
    assert document["status"] == "SUCCEEDED"
    assert row.attempts == 1  # finished before the stop, so not run again


def test_job_interrupted_more_than_the_attempt_limit_fails_instead_of_looping(
    tmp_path: Path, weights_dir: Path, photo_b64: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = job_settings(tmp_path, weights_dir, job_max_attempts=1, job_shutdown_grace_s=0)
    with TestClient(create_app(settings)) as first:
        gate = gate_engine(first, monkeypatch, RuntimeError("released after the stop"))
        accepted = submit(first, {"image": photo_b64})
        assert gate.started.wait(10)
    gate.release.set()
    with TestClient(create_app(settings)) as second:
        document = poll_job(second, accepted["job_id"], HEADERS_A)
    assert document["status"] == "FAILED"
    assert document["error"]["code"] == "INTERNAL_ERROR"
    assert "interrupted 1 times" in document["error"]["detail"]


def test_metrics_report_pending_jobs(client: TestClient) -> None:
    assert "enhance_jobs_pending" in client.get("/metrics").text


def test_openapi_document_describes_the_job_routes(client: TestClient) -> None:
    document = client.get("/v1/phota/openapi.json").json()
    assert "/v1/phota/jobs/{job_id}" in document["paths"]
    assert "/v1/phota/webhook-secret" in document["paths"]
    assert "202" in document["paths"]["/v1/phota/enhance"]["post"]["responses"]
    assert {"JobAccepted", "JobResponse", "JobError", "WebhookSecretResponse"} <= set(document["components"]["schemas"])
