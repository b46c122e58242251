"""Job callbacks received by a real HTTP server on 127.0.0.1: signature, retries with backoff, giving
up, delivery after a restart, and the address rules at delivery time."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from server import create_app
from server.jobs import sign_body
from server.jobs._callbacks import CallbackDispatcher, post_callback
from server.outbound import OutboundRefusedError
from server.services import services_of
from tests.conftest import encode_b64
from tests.jobs_helpers import (
    HEADERS_A,
    HEADERS_B,
    CallbackReceiver,
    free_port,
    job_settings,
    poll_job,
    verify_signature,
    wait_until,
)


@pytest.fixture
def photo_b64(chelsea: np.ndarray) -> str:
    return encode_b64(chelsea[40:120, 150:270], "JPEG", quality=90)


@pytest.fixture
def receiver() -> Iterator[CallbackReceiver]:
    server = CallbackReceiver()
    yield server
    server.close()


def submit_with_callback(
    client: TestClient, photo_b64: str, callback_url: str, headers: dict[str, str] = HEADERS_A, **extra: Any
) -> str:
    payload = {"image": photo_b64, "async": True, "callback_url": callback_url, "response_mode": "urls", **extra}
    response = client.post("/v1/phota/enhance", headers=headers, json=payload)
    assert response.status_code == 202, response.text
    return str(response.json()["job_id"])


def test_callback_carries_the_job_document_signed_with_the_account_secret(
    tmp_path: Path, weights_dir: Path, photo_b64: str, receiver: CallbackReceiver
) -> None:
    with TestClient(create_app(job_settings(tmp_path, weights_dir))) as client:
        secret = client.get("/v1/phota/webhook-secret", headers=HEADERS_A).json()["webhook_secret"]
        other_secret = client.get("/v1/phota/webhook-secret", headers=HEADERS_B).json()["webhook_secret"]
        job_id = submit_with_callback(client, photo_b64, receiver.url + "?tag=1")
        document = poll_job(client, job_id, HEADERS_A)
        wait_until(lambda: receiver.for_job(job_id))
    [delivery] = receiver.for_job(job_id)
    assert delivery.path == "/hooks/enhance?tag=1"
    assert delivery.headers["content-type"] == "application/json"
    assert delivery.headers["x-phota-job-id"] == job_id
    assert delivery.headers["x-phota-delivery-attempt"] == "1"
    signature = delivery.headers["x-phota-signature"]
    assert signature.startswith("sha256=") and len(signature) == 7 + 64
    assert verify_signature(secret, delivery.body, signature)
    assert not verify_signature(other_secret, delivery.body, signature)
    assert not verify_signature(secret, delivery.body + b" ", signature)
    assert json.loads(delivery.body) == document
    assert document["status"] == "SUCCEEDED" and len(document["result"]["download_urls"]) == 1


def test_failed_job_is_called_back_with_its_error(
    tmp_path: Path, weights_dir: Path, photo_b64: str, receiver: CallbackReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    with TestClient(create_app(job_settings(tmp_path, weights_dir))) as client:

        def broken(*_args: object, **_kwargs: object) -> None:
            raise RuntimeError("boom")

        monkeypatch.setattr(services_of(client.app).runtime, "run", broken)
        job_id = submit_with_callback(client, photo_b64, receiver.url)
        wait_until(lambda: receiver.for_job(job_id))
    body = json.loads(receiver.for_job(job_id)[0].body)
    assert body["status"] == "FAILED"
    assert body["error"]["code"] == "INTERNAL_ERROR"
    assert body["result"] is None


def test_failed_deliveries_are_retried_with_backoff_and_the_same_signed_body(
    tmp_path: Path, weights_dir: Path, photo_b64: str
) -> None:
    receiver = CallbackReceiver(fail_first=2)
    settings = job_settings(tmp_path, weights_dir, callback_retry_base_s=0.2, callback_retry_max_s=5.0)
    try:
        with TestClient(create_app(settings)) as client:
            secret = client.get("/v1/phota/webhook-secret", headers=HEADERS_A).json()["webhook_secret"]
            job_id = submit_with_callback(client, photo_b64, receiver.url)
            store = services_of(client.app).jobs.store
            # The receiver records a POST before answering it: wait for the service's own bookkeeping.
            stored = wait_until(lambda: (c := store.callback(job_id)) is not None and c.status == "DELIVERED" and c)
    finally:
        receiver.close()
    deliveries = receiver.for_job(job_id)
    assert [d.answered for d in deliveries] == [500, 500, 204]
    assert [d.headers["x-phota-delivery-attempt"] for d in deliveries] == ["1", "2", "3"]
    assert len({d.body for d in deliveries}) == 1  # same job document, byte for byte
    assert len({d.headers["x-phota-signature"] for d in deliveries}) == 1
    assert all(verify_signature(secret, d.body, d.headers["x-phota-signature"]) for d in deliveries)
    gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(deliveries)]
    assert gaps[0] >= 0.18 and gaps[1] >= 0.38  # 0.2 s, then doubled
    assert stored.attempts == 3


def test_delivery_gives_up_after_the_attempt_limit(tmp_path: Path, weights_dir: Path, photo_b64: str) -> None:
    receiver = CallbackReceiver(fail_first=100)
    settings = job_settings(tmp_path, weights_dir, callback_max_attempts=3)
    try:
        with TestClient(create_app(settings)) as client:
            job_id = submit_with_callback(client, photo_b64, receiver.url)
            store = services_of(client.app).jobs.store
            stored = wait_until(lambda: (c := store.callback(job_id)) is not None and c.status == "FAILED" and c)
            assert len(receiver.for_job(job_id)) == 3
            assert poll_job(client, job_id, HEADERS_A)["status"] == "SUCCEEDED"  # the job itself is fine
    finally:
        receiver.close()
    assert stored.attempts == 3


def test_slow_receiver_blocks_neither_jobs_nor_other_callbacks(
    tmp_path: Path, weights_dir: Path, photo_b64: str
) -> None:
    receiver = CallbackReceiver(stall_s=30.0)
    settings = job_settings(tmp_path, weights_dir, callback_timeout_s=60.0)
    try:
        with TestClient(create_app(settings)) as client:
            slow_job = submit_with_callback(client, photo_b64, receiver.url + "?stall=1")
            wait_until(lambda: slow_job in receiver.stalled, timeout_s=30)  # its POST is being held
            fast_job = submit_with_callback(client, photo_b64, receiver.url)
            assert poll_job(client, fast_job, HEADERS_A)["status"] == "SUCCEEDED"
            wait_until(lambda: receiver.for_job(fast_job), timeout_s=20)
            assert receiver.for_job(slow_job) == []  # still unanswered, and it held nothing up
            # Leaving the block stops the service: the held delivery stays PENDING for the next start.
            assert services_of(client.app).jobs.store.callback(slow_job).status == "PENDING"
    finally:
        receiver.close()


def test_pending_callback_is_delivered_after_a_restart(tmp_path: Path, weights_dir: Path, photo_b64: str) -> None:
    port = free_port()  # nothing listens here yet: every attempt fails to connect
    settings = job_settings(tmp_path, weights_dir, callback_retry_base_s=0.3)
    with TestClient(create_app(settings)) as first:
        job_id = submit_with_callback(first, photo_b64, f"http://127.0.0.1:{port}/hooks/enhance")
        store = services_of(first.app).jobs.store
        wait_until(lambda: (c := store.callback(job_id)) is not None and c.attempts >= 1)
        assert store.callback(job_id).status == "PENDING"
    receiver = CallbackReceiver(port=port)
    try:
        with TestClient(create_app(settings)) as second:
            store = services_of(second.app).jobs.store
            stored = wait_until(lambda: (c := store.callback(job_id)) is not None and c.status == "DELIVERED" and c)
    finally:
        receiver.close()
    [delivery] = receiver.for_job(job_id)
    assert json.loads(delivery.body)["status"] == "SUCCEEDED"
    assert int(delivery.headers["x-phota-delivery-attempt"]) >= 2
    assert stored.attempts == int(delivery.headers["x-phota-delivery-attempt"])


def test_delivery_refuses_an_address_the_rules_forbid(receiver: CallbackReceiver, tmp_path: Path) -> None:
    settings = job_settings(tmp_path, Path("unused"), allow_private_urls=False)
    with pytest.raises(OutboundRefusedError, match="loopback"):
        asyncio.run(post_callback(receiver.url, b"{}", {"Content-Type": "application/json"}, settings))
    assert receiver.deliveries == []


def test_signature_is_hex_hmac_sha256_of_the_raw_body() -> None:
    # RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
    assert sign_body("Jefe", b"what do ya want for nothing?") == (
        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    )


def test_retry_delay_doubles_up_to_the_cap(tmp_path: Path) -> None:
    settings = job_settings(tmp_path, Path("unused"), callback_retry_base_s=2.0, callback_retry_max_s=10.0)
    dispatcher = CallbackDispatcher(store=None, files=None, settings=settings)  # type: ignore[arg-type]
    assert [dispatcher.retry_delay_s(n) for n in range(1, 6)] == [2.0, 4.0, 8.0, 10.0, 10.0]
