"""The job tables on their own (SQLite in a temporary directory): idempotent creation under racing
threads, a job completing at most once, restart bookkeeping, expiry, webhook secrets, job files."""

from __future__ import annotations

import datetime as dt
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import Engine

from server.storage import AccountRegistry, JobFiles, JobStore, create_database
from server.storage.jobs import NewJob, new_job_id

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def database(tmp_path: Path) -> Engine:
    engine = create_database(None, tmp_path)
    AccountRegistry(engine, ["key-a", "key-b"])
    return engine


@pytest.fixture
def store(database: Engine) -> JobStore:
    return JobStore(database)


def account_ids(database: Engine) -> list[str]:
    registry = AccountRegistry(database, ["key-a", "key-b"])
    return [registry.authenticate(key).id for key in ("key-a", "key-b")]  # type: ignore[union-attr]


def new_job(account_id: str, client_request_id: str | None = None, created_at: dt.datetime = NOW) -> NewJob:
    return NewJob(
        id=new_job_id(),
        account_id=account_id,
        client_request_id=client_request_id,
        options={"num_output_images": 1, "response_mode": "urls"},
        submitted_on=created_at.date(),
        base_url="http://testserver/",
        callback_url="https://example.com/hook",
        request_id="req-1",
        created_at=created_at,
    )


def test_racing_creates_with_one_client_request_id_store_one_job(database: Engine, store: JobStore) -> None:
    account, _ = account_ids(database)
    barrier = threading.Barrier(8)

    def create(_: int) -> tuple[str, bool]:
        job = new_job(account, "same-id")
        barrier.wait()
        record, created = store.create(job)
        return record.id, created

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(create, range(8)))
    assert len({job_id for job_id, _ in outcomes}) == 1
    assert sum(created for _, created in outcomes) == 1
    assert store.count_unfinished() == 1


def test_client_request_ids_are_scoped_to_the_account(database: Engine, store: JobStore) -> None:
    account_a, account_b = account_ids(database)
    first, created_a = store.create(new_job(account_a, "x" * 5000))  # any length: stored as a hash
    second, created_b = store.create(new_job(account_b, "x" * 5000))
    assert created_a and created_b and first.id != second.id
    assert store.find_by_client_request(account_a, "x" * 5000) == first
    assert store.get(first.id, account_b) is None


def test_job_completes_at_most_once_and_queues_one_callback(database: Engine, store: JobStore) -> None:
    account, _ = account_ids(database)
    job, _ = store.create(new_job(account))
    claimed = store.claim(job.id, NOW)
    assert claimed is not None and claimed.status == "RUNNING" and claimed.attempts == 1
    assert store.claim(job.id, NOW) is None  # not QUEUED any more
    done = store.finish(job.id, 1, now=NOW, ttl_s=60, result={"download_urls": []})
    assert done is not None and done.status == "SUCCEEDED"
    assert done.expires_at == NOW + dt.timedelta(seconds=60)
    assert store.finish(job.id, 1, now=NOW, ttl_s=60, error=("INTERNAL_ERROR", "late")) is None
    assert store.get(job.id).status == "SUCCEEDED"  # type: ignore[union-attr]
    callback = store.callback(job.id)
    assert callback is not None and callback.status == "PENDING" and callback.attempts == 0


def test_stale_attempt_cannot_finish_a_job_that_was_restarted(database: Engine, store: JobStore) -> None:
    account, _ = account_ids(database)
    job, _ = store.create(new_job(account))
    store.claim(job.id, NOW)
    assert store.requeue_interrupted() == 1
    assert store.queued_ids() == [job.id]
    assert store.claim(job.id, NOW).attempts == 2  # type: ignore[union-attr]
    assert store.finish(job.id, 1, now=NOW, ttl_s=60, result={}) is None  # the first run's late answer
    assert store.finish(job.id, 2, now=NOW, ttl_s=60, result={}) is not None


def test_queued_ids_come_oldest_first(database: Engine, store: JobStore) -> None:
    account, _ = account_ids(database)
    later, _ = store.create(new_job(account, created_at=NOW + dt.timedelta(seconds=5)))
    earlier, _ = store.create(new_job(account, created_at=NOW))
    assert store.queued_ids() == [earlier.id, later.id]


def test_expired_jobs_and_their_callbacks_are_removed(database: Engine, store: JobStore) -> None:
    account, _ = account_ids(database)
    job, _ = store.create(new_job(account))
    unfinished, _ = store.create(new_job(account))
    store.claim(job.id, NOW)
    store.finish(job.id, 1, now=NOW, ttl_s=60, result={})
    assert store.remove_expired(NOW + dt.timedelta(seconds=59)) == []
    assert store.remove_expired(NOW + dt.timedelta(seconds=60)) == [job.id]
    assert store.get(job.id) is None and store.callback(job.id) is None
    assert store.get(unfinished.id) is not None  # unfinished jobs never expire


def test_callback_bookkeeping_retries_then_gives_up(database: Engine, store: JobStore) -> None:
    account, _ = account_ids(database)
    job, _ = store.create(new_job(account))
    store.claim(job.id, NOW)
    store.finish(job.id, 1, now=NOW, ttl_s=3600, result={})
    assert [c.job_id for c in store.due_callbacks(NOW, 10, set())] == [job.id]
    assert store.due_callbacks(NOW, 10, {job.id}) == []
    retry_at = NOW + dt.timedelta(seconds=2)
    store.record_callback_attempt(job.id, delivered=False, now=NOW, error="answered HTTP 500", retry_at=retry_at)
    assert store.due_callbacks(NOW, 10, set()) == []
    assert store.next_callback_due(set()) == retry_at
    store.record_callback_attempt(job.id, delivered=False, now=retry_at, error="could not connect", retry_at=None)
    callback = store.callback(job.id)
    assert callback is not None and callback.status == "FAILED" and callback.attempts == 2
    assert store.next_callback_due(set()) is None


def test_webhook_secret_is_created_once_even_under_concurrent_first_calls(
    database: Engine, store: JobStore
) -> None:
    account, other = account_ids(database)
    with ThreadPoolExecutor(8) as pool:
        secrets = set(pool.map(lambda _: store.webhook_secret(account), range(8)))
    assert len(secrets) == 1
    assert store.webhook_secret(account) in secrets
    assert store.webhook_secret(other) not in secrets


def test_timestamps_read_back_timezone_aware_in_utc(database: Engine, store: JobStore) -> None:
    account, _ = account_ids(database)
    plus_two = dt.timezone(dt.timedelta(hours=2))
    job, _ = store.create(new_job(account, created_at=dt.datetime(2026, 6, 1, 14, 0, tzinfo=plus_two)))
    assert job.created_at == NOW
    assert job.created_at.tzinfo is not None and job.created_at.utcoffset() == dt.timedelta(0)


def test_job_files_refuse_paths_that_are_not_job_ids(tmp_path: Path) -> None:
    files = JobFiles(tmp_path)
    job_id = new_job_id()
    files.save_source(job_id, b"bytes")
    assert files.read_source(job_id) == b"bytes"
    assert files.orphans(known=set(), min_age_s=0.0) == [job_id]
    assert files.orphans(known={job_id}, min_age_s=0.0) == []
    for bad in ("../etc", "job_../../x", "other"):
        with pytest.raises(ValueError, match="not a job id"):
            files.prefix(bad)
