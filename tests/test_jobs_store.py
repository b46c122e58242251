"""The job tables on their own, on SQLite and on a real PostgreSQL server: idempotent creation under
racing threads, claims under leases (one claimer per job, take-over after a lease runs out, fair turns
across accounts), a job completing at most once, expiry, callbacks, webhook secrets, job files."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import Engine

from server.storage import AccountRegistry, JobFiles, JobStore, create_database
from server.storage.jobs import NewJob, new_job_id

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)


LEASE_S = 30.0
OWNER, OTHER = "host/1/aaaa", "host/2/bbbb"


@pytest.fixture
def database(tmp_path: Path, database_url: str) -> Iterator[Engine]:
    engine = create_database(database_url, tmp_path)
    AccountRegistry(engine, ["key-a", "key-b"])
    yield engine
    engine.dispose()


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
    claimed = store.claim_next(OWNER, NOW, LEASE_S)
    assert claimed is not None and claimed.id == job.id and claimed.status == "RUNNING" and claimed.attempts == 1
    assert store.claim_next(OTHER, NOW, LEASE_S) is None  # leased: nobody else gets it
    done = store.finish(job.id, 1, owner=OWNER, now=NOW, ttl_s=60, result={"download_urls": []})
    assert done is not None and done.status == "SUCCEEDED"
    assert done.expires_at == NOW + dt.timedelta(seconds=60)
    assert store.finish(job.id, 1, owner=OWNER, now=NOW, ttl_s=60, error=("INTERNAL_ERROR", "late")) is None
    assert store.get(job.id).status == "SUCCEEDED"  # type: ignore[union-attr]
    callback = store.callback(job.id)
    assert callback is not None and callback.status == "PENDING" and callback.attempts == 0


def test_expired_lease_is_taken_over_and_the_first_owner_cannot_finish(database: Engine, store: JobStore) -> None:
    account, _ = account_ids(database)
    job, _ = store.create(new_job(account))
    assert store.claim_next(OWNER, NOW, LEASE_S) is not None
    assert store.claim_next(OTHER, NOW + dt.timedelta(seconds=LEASE_S - 1), LEASE_S) is None
    taken = store.claim_next(OTHER, NOW + dt.timedelta(seconds=LEASE_S), LEASE_S)
    assert taken is not None and taken.id == job.id and taken.attempts == 2  # the take-over counts
    assert store.finish(job.id, 1, owner=OWNER, now=NOW, ttl_s=60, result={}) is None  # the dead run's answer
    assert store.finish(job.id, 2, owner=OWNER, now=NOW, ttl_s=60, result={}) is None  # not OWNER's lease now
    assert store.finish(job.id, 2, owner=OTHER, now=NOW, ttl_s=60, result={}) is not None


def test_heartbeat_keeps_the_lease_of_a_long_job(database: Engine, store: JobStore) -> None:
    account, _ = account_ids(database)
    job, _ = store.create(new_job(account))
    store.claim_next(OWNER, NOW, LEASE_S)
    later = NOW + dt.timedelta(seconds=LEASE_S - 1)
    assert store.renew_leases(OWNER, [job.id], later, LEASE_S) == {job.id}
    assert store.claim_next(OTHER, NOW + dt.timedelta(seconds=LEASE_S + 5), LEASE_S) is None
    assert store.renew_leases(OTHER, [job.id], later, LEASE_S) == set()  # only the owner renews


def test_released_job_is_queued_again_with_its_attempt_counted(database: Engine, store: JobStore) -> None:
    account, _ = account_ids(database)
    job, _ = store.create(new_job(account))
    store.claim_next(OWNER, NOW, LEASE_S)
    assert store.release(OWNER, [job.id]) == 1
    assert store.queued_ids() == [job.id]
    again = store.claim_next(OTHER, NOW, LEASE_S)
    assert again is not None and again.attempts == 2


def test_racing_claims_give_each_job_to_exactly_one_claimer(database: Engine, store: JobStore) -> None:
    account_a, account_b = account_ids(database)
    jobs = {store.create(new_job((account_a, account_b)[i % 2], created_at=NOW))[0].id for i in range(24)}
    barrier = threading.Barrier(6)

    def claim_all(worker: int) -> list[str]:
        barrier.wait()
        claimed = []
        while (job := store.claim_next(f"host/{worker}/w", NOW, LEASE_S)) is not None:
            claimed.append(job.id)
        return claimed

    with ThreadPoolExecutor(6) as pool:
        per_worker = list(pool.map(claim_all, range(6)))
    everything = [job_id for claimed in per_worker for job_id in claimed]
    assert sorted(everything) == sorted(jobs)  # every job claimed, none twice
    assert all(record.attempts == 1 for record in (store.get(job_id) for job_id in jobs) if record)


def test_claims_take_turns_so_one_accounts_burst_does_not_starve_another(database: Engine, store: JobStore) -> None:
    account_a, account_b = account_ids(database)
    for index in range(500):
        store.create(new_job(account_a, created_at=NOW + dt.timedelta(microseconds=index)))
    late = NOW + dt.timedelta(seconds=10)
    lonely, _ = store.create(new_job(account_b, created_at=late))
    order = []
    for step in range(4):
        job = store.claim_next(OWNER, late + dt.timedelta(seconds=step), LEASE_S)
        assert job is not None
        order.append(job.account_id)
    # Submitted after 500 of A's jobs, B's only job runs first or second (B was never served), not 501st.
    assert account_b in order[:2] and order.count(account_b) == 1
    assert store.get(lonely.id).status == "RUNNING"  # type: ignore[union-attr]


def test_queued_ids_come_oldest_first(database: Engine, store: JobStore) -> None:
    account, _ = account_ids(database)
    later, _ = store.create(new_job(account, created_at=NOW + dt.timedelta(seconds=5)))
    earlier, _ = store.create(new_job(account, created_at=NOW))
    assert store.queued_ids() == [earlier.id, later.id]
    assert store.claim_next(OWNER, NOW, LEASE_S).id == earlier.id  # type: ignore[union-attr]


def test_expired_jobs_and_their_callbacks_are_removed(database: Engine, store: JobStore) -> None:
    account, _ = account_ids(database)
    job, _ = store.create(new_job(account))
    unfinished, _ = store.create(new_job(account, created_at=NOW + dt.timedelta(seconds=1)))
    assert store.claim_next(OWNER, NOW, LEASE_S).id == job.id  # type: ignore[union-attr]
    store.finish(job.id, 1, owner=OWNER, now=NOW, ttl_s=60, result={})
    assert store.remove_expired(NOW + dt.timedelta(seconds=59)) == []
    assert store.remove_expired(NOW + dt.timedelta(seconds=60)) == [job.id]
    assert store.get(job.id) is None and store.callback(job.id) is None
    assert store.get(unfinished.id) is not None  # unfinished jobs never expire


def finished_with_callback(store: JobStore, account: str) -> str:
    store.create(new_job(account))
    job = store.claim_next(OWNER, NOW, LEASE_S)
    assert job is not None
    assert store.finish(job.id, 1, owner=OWNER, now=NOW, ttl_s=3600, result={}) is not None
    return job.id


def test_callback_bookkeeping_retries_then_gives_up(database: Engine, store: JobStore) -> None:
    account, _ = account_ids(database)
    job_id = finished_with_callback(store, account)
    claimed = store.claim_due_callback(OWNER, NOW, LEASE_S)
    assert claimed is not None and claimed.job_id == job_id
    assert store.claim_due_callback(OTHER, NOW, LEASE_S) is None  # leased to OWNER
    retry_at = NOW + dt.timedelta(seconds=2)
    assert store.record_callback_attempt(
        job_id, owner=OWNER, delivered=False, now=NOW, error="answered HTTP 500", retry_at=retry_at
    )
    assert store.claim_due_callback(OWNER, NOW, LEASE_S) is None  # not due yet
    assert store.next_callback_due(NOW) == retry_at
    assert store.claim_due_callback(OTHER, retry_at, LEASE_S) is not None  # any process may send the retry
    assert not store.record_callback_attempt(  # OWNER's lease is gone: its late bookkeeping is refused
        job_id, owner=OWNER, delivered=True, now=retry_at, error=None, retry_at=None
    )
    assert store.record_callback_attempt(
        job_id, owner=OTHER, delivered=False, now=retry_at, error="could not connect", retry_at=None
    )
    callback = store.callback(job_id)
    assert callback is not None and callback.status == "FAILED" and callback.attempts == 2
    assert store.next_callback_due(retry_at) is None


def test_callback_of_a_dead_sender_is_claimed_again_after_its_lease(database: Engine, store: JobStore) -> None:
    account, _ = account_ids(database)
    job_id = finished_with_callback(store, account)
    assert store.claim_due_callback(OWNER, NOW, LEASE_S) is not None
    expiry = NOW + dt.timedelta(seconds=LEASE_S)
    assert store.next_callback_due(NOW) == expiry  # pending, held until then
    again = store.claim_due_callback(OTHER, expiry, LEASE_S)
    assert again is not None and again.job_id == job_id and again.attempts == 0


def test_racing_callback_claims_give_each_callback_to_one_sender(database: Engine, store: JobStore) -> None:
    account, _ = account_ids(database)
    job_ids = {finished_with_callback(store, account) for _ in range(12)}
    barrier = threading.Barrier(4)

    def claim_all(worker: int) -> list[str]:
        barrier.wait()
        claimed = []
        while (record := store.claim_due_callback(f"host/{worker}/w", NOW, LEASE_S)) is not None:
            claimed.append(record.job_id)
        return claimed

    with ThreadPoolExecutor(4) as pool:
        everything = [job_id for claimed in pool.map(claim_all, range(4)) for job_id in claimed]
    assert sorted(everything) == sorted(job_ids)


def test_webhook_secret_is_created_once_even_under_concurrent_first_calls(database: Engine, store: JobStore) -> None:
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
