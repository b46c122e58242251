"""Job callbacks received by a real HTTP server on 127.0.0.1: signature, retries with backoff, giving
up, delivery after a restart, and the address rules at delivery time."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import json
import threading
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from server import create_app
from server.jobs import sign_body
from server.jobs._callbacks import CallbackDispatcher, post_callback
from server.outbound import OutboundRefusedError
from server.services import services_of
from server.settings import Settings
from server.storage import AccountRegistry, JobFiles, JobStore, create_database
from server.storage.jobs import CallbackRecord, NewJob, new_job_id
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
    # Retries every 0.3-1 s, 50 at most: the first service must not use them all up while it stops (on a
    # loaded CI machine its shutdown took over the 2 s that ten 0.2 s retries last, and the callback gave up).
    settings = job_settings(
        tmp_path, weights_dir, callback_retry_base_s=0.3, callback_retry_max_s=1.0, callback_max_attempts=50
    )
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


# --- exactly once when a delivery outlasts its lease ------------------------------------------------
# A delivery reads the job's outputs from the store before its POST; through a store outage that read
# waits (for up to outage_patience_s), longer than the callback's lease. These tests stop the read at
# that exact step, move the dispatchers' clock past the lease, and let the read go on: the receiver
# must get one POST, whoever sends it.

OWNER, OTHER = "host/1/aaaa", "host/2/bbbb"
START = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> dt.datetime:
        return self.now


class StallingFiles(JobFiles):
    """Job files whose first ``read_images`` waits until released (a store outage being waited out)."""

    def __init__(self, folder: Path) -> None:
        super().__init__(folder)
        self.stalled = threading.Event()
        self.release = threading.Event()

    def read_images(self, job_id: str) -> list[str]:
        if not self.stalled.is_set():
            self.stalled.set()
            assert self.release.wait(timeout=60)
        return super().read_images(job_id)


class WatchedStore(JobStore):
    """The real job store, counting claims; ``lose_answer_once``: the next callback record commits, then
    its caller sees the connection drop (the database went away before it answered)."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self.claims: list[tuple[dt.datetime, str | None]] = []
        self.lose_answer_once = False

    def claim_due_callback(
        self, owner: str, now: dt.datetime, lease_s: float, skip: Collection[str] = ()
    ) -> CallbackRecord | None:
        record = super().claim_due_callback(owner, now, lease_s, skip)
        self.claims.append((now, record.job_id if record else None))
        return record

    def record_callback_attempt(self, job_id: str, **kwargs: Any) -> bool:
        recorded = super().record_callback_attempt(job_id, **kwargs)
        if self.lose_answer_once:
            self.lose_answer_once = False
            raise OperationalError("UPDATE job_callbacks", {}, ConnectionError("server closed the connection"))
        return recorded


def _finished_job(store: JobStore, engine: Engine, callback_url: str) -> str:
    """A job, run and ended by OWNER (FAILED: its document needs no outputs), its callback PENDING."""
    account = AccountRegistry(engine, ["key-a"]).authenticate("key-a")
    assert account is not None
    job = NewJob(
        id=new_job_id(),
        account_id=account.id,
        client_request_id=None,
        options={"num_output_images": 1, "response_mode": "urls"},
        submitted_on=START.date(),
        base_url="http://testserver/",
        callback_url=callback_url,
        request_id="req-1",
        created_at=START,
    )
    store.create(job)
    claimed = store.claim_next(OWNER, START, 30.0)
    assert claimed is not None and claimed.id == job.id
    assert store.finish(job.id, 1, owner=OWNER, now=START, ttl_s=3600, error=("INTERNAL_ERROR", "x")) is not None
    return job.id


def _status(store: JobStore, job_id: str) -> str | None:
    stored = store.callback(job_id)
    return None if stored is None else stored.status


async def _until(predicate: Any, timeout_s: float = 60.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = create_database(None, tmp_path / "db")
    yield engine
    engine.dispose()


def _callback_settings(tmp_path: Path) -> Settings:
    return job_settings(tmp_path, Path("unused"), job_poll_interval_s=0.02, callback_timeout_s=5.0, job_lease_s=30.0)


def test_a_delivery_that_outlasts_its_lease_is_not_started_again_by_its_own_process(
    tmp_path: Path, engine: Engine, receiver: CallbackReceiver
) -> None:
    store, files, clock = WatchedStore(engine), StallingFiles(tmp_path / "files"), Clock()
    settings = _callback_settings(tmp_path)
    job_id = _finished_job(store, engine, receiver.url)
    dispatcher = CallbackDispatcher(store, files, settings, owner=OWNER, clock=clock)

    async def scenario() -> None:
        running = asyncio.create_task(dispatcher.run())
        await _until(files.stalled.is_set)  # claimed; its read waits for the store
        clock.now += dt.timedelta(seconds=settings.callback_timeout_s + settings.job_lease_s + 1)  # lease over
        dispatcher.wake()
        await _until(lambda: any(now == clock.now for now, _ in store.claims))  # it looked again, after the lease
        await asyncio.sleep(0.2)  # a delivery it started would be on its way
        files.release.set()
        await _until(lambda: _status(store, job_id) == "DELIVERED" and dispatcher.deliveries_in_flight == 0)
        running.cancel()

    asyncio.run(scenario())
    assert len(receiver.for_job(job_id)) == 1
    assert [claimed for now, claimed in store.claims if now > START and claimed is not None] == []  # not again


def test_a_delivery_whose_lease_another_process_took_over_is_not_sent(
    tmp_path: Path, engine: Engine, receiver: CallbackReceiver
) -> None:
    store, files, clock = WatchedStore(engine), StallingFiles(tmp_path / "files"), Clock()
    settings = _callback_settings(tmp_path)
    job_id = _finished_job(store, engine, receiver.url)
    first = CallbackDispatcher(store, files, settings, owner=OWNER, clock=clock)
    second = CallbackDispatcher(store, JobFiles(tmp_path / "files"), settings, owner=OTHER, clock=clock)

    async def scenario() -> None:
        running = [asyncio.create_task(first.run())]
        await _until(files.stalled.is_set)
        clock.now += dt.timedelta(seconds=settings.callback_timeout_s + settings.job_lease_s + 1)
        running.append(asyncio.create_task(second.run()))  # takes the callback over and delivers it
        await _until(lambda: _status(store, job_id) == "DELIVERED" and second.deliveries_in_flight == 0)
        files.release.set()  # the first delivery's read comes back, long after its lease
        await _until(lambda: first.deliveries_in_flight == 0)
        for task in running:
            task.cancel()

    asyncio.run(scenario())
    [delivery] = receiver.for_job(job_id)
    assert delivery.headers["x-phota-delivery-attempt"] == "1"
    stored = store.callback(job_id)
    assert stored is not None and stored.attempts == 1


def test_a_delivery_whose_record_lost_its_answer_is_not_sent_again(
    tmp_path: Path, engine: Engine, receiver: CallbackReceiver
) -> None:
    store, clock = WatchedStore(engine), Clock()
    settings = _callback_settings(tmp_path)
    job_id = _finished_job(store, engine, receiver.url)
    store.lose_answer_once = True  # "delivered" is committed, but the dispatcher sees an outage and retries
    dispatcher = CallbackDispatcher(store, JobFiles(tmp_path / "files"), settings, owner=OWNER, clock=clock)

    async def scenario() -> None:
        running = asyncio.create_task(dispatcher.run())
        await _until(lambda: not store.lose_answer_once and dispatcher.deliveries_in_flight == 0)
        clock.now += dt.timedelta(seconds=settings.callback_timeout_s + settings.job_lease_s + 1)
        dispatcher.wake()
        await _until(lambda: any(now == clock.now for now, _ in store.claims))
        running.cancel()

    asyncio.run(scenario())
    assert len(receiver.for_job(job_id)) == 1
    stored = store.callback(job_id)
    assert stored is not None and stored.status == "DELIVERED" and stored.attempts == 1
