"""Per-account limits in the shared database and fair admission across accounts."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import Engine

from models.sr import CancelToken
from server.errors import OverloadedError, RateLimitedError
from server.storage import AccountLimits, create_database
from server.worker import EnhanceWorker, FairSlots


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def database(tmp_path: Path) -> Engine:
    return create_database(None, tmp_path)


def test_rate_limit_refuses_past_the_limit_until_the_window_ends(database: Engine) -> None:
    clock = Clock(6_000_000.0 + 45.5)  # 45.5 s into a minute
    limits = AccountLimits(database, per_minute=3, max_concurrent=0, clock=clock)
    decisions = [limits.count_request("acct_a") for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert decisions[-1].retry_after_s == 15
    assert limits.count_request("acct_b").allowed
    clock.now += 15
    assert limits.count_request("acct_a").allowed


def test_rate_limit_is_shared_by_replicas_on_one_database(database: Engine) -> None:
    clock = Clock(6_000_000.0)
    replicas = [AccountLimits(database, per_minute=100, max_concurrent=0, clock=clock) for _ in range(2)]

    def burst(index: int) -> list[bool]:
        return [replicas[index % 2].count_request("acct_shared").allowed for _ in range(30)]

    with ThreadPoolExecutor(max_workers=4) as pool:
        outcomes = [allowed for result in pool.map(burst, range(4)) for allowed in result]
    assert sum(outcomes) == 100  # 120 requests, exactly 100 allowed: the increments are atomic
    assert not replicas[0].count_request("acct_shared").allowed


def test_rate_windows_of_past_minutes_are_deleted(database: Engine) -> None:
    clock = Clock(6_000_000.0)
    limits = AccountLimits(database, per_minute=5, max_concurrent=0, clock=clock)
    for minute in range(5):
        clock.now = 6_000_000.0 + 60 * minute
        limits.count_request("acct_a")
    with database.connect() as connection:
        rows = connection.exec_driver_sql("select count(*) from rate_windows").scalar_one()
    assert rows == 1


def test_concurrency_slots_are_shared_and_freed(database: Engine) -> None:
    first = AccountLimits(database, per_minute=0, max_concurrent=2)
    second = AccountLimits(database, per_minute=0, max_concurrent=2)
    lease_a = first.acquire("acct_a")
    lease_b = second.acquire("acct_a")
    assert lease_a is not None and lease_b is not None
    assert first.acquire("acct_a") is None
    assert second.acquire("acct_other") is not None
    second.release(lease_b)
    assert first.acquire("acct_a") is not None


def test_slot_of_a_dead_replica_is_taken_over_after_its_lease(database: Engine) -> None:
    clock = Clock(1000.0)
    dead = AccountLimits(database, per_minute=0, max_concurrent=1, lease_s=30, clock=clock)
    alive = AccountLimits(database, per_minute=0, max_concurrent=1, lease_s=30, clock=clock)
    assert dead.acquire("acct_a") is not None
    assert alive.acquire("acct_a") is None
    clock.now += 31
    assert alive.acquire("acct_a") is not None
    dead.close()
    alive.close()


def test_renewal_keeps_a_long_running_slot_held(database: Engine) -> None:
    clock = Clock(1000.0)
    holder = AccountLimits(database, per_minute=0, max_concurrent=1, lease_s=30, clock=clock)
    other = AccountLimits(database, per_minute=0, max_concurrent=1, lease_s=30, clock=clock)
    assert holder.acquire("acct_a") is not None
    clock.now += 20
    assert holder.renew() == 1
    clock.now += 20
    assert other.acquire("acct_a") is None
    holder.close()


def test_fair_slots_serve_accounts_in_turn() -> None:
    async def scenario() -> list[str]:
        slots = FairSlots(1)
        served: list[str] = []
        await slots.acquire("a")  # the one slot is busy

        async def wait(account: str) -> None:
            await slots.acquire(account)
            served.append(account)

        tasks = [asyncio.create_task(wait("a")) for _ in range(50)]
        await asyncio.sleep(0)
        tasks.append(asyncio.create_task(wait("b")))
        await asyncio.sleep(0)
        for _ in range(51):
            slots.release()
            await asyncio.sleep(0)
        await asyncio.gather(*tasks)
        return served

    served = asyncio.run(scenario())
    assert len(served) == 51
    assert served.index("b") <= 1


def test_cancelled_waiter_gives_its_turn_to_the_next() -> None:
    async def scenario() -> list[str]:
        slots = FairSlots(1)
        await slots.acquire("a")
        served: list[str] = []

        async def wait(account: str) -> None:
            await slots.acquire(account)
            served.append(account)

        gone = asyncio.create_task(wait("b"))
        kept = asyncio.create_task(wait("c"))
        await asyncio.sleep(0)
        gone.cancel()
        await asyncio.sleep(0)
        slots.release()
        await kept
        return served

    assert asyncio.run(scenario()) == ["c"]


def test_one_accounts_burst_delays_anothers_request_by_at_most_one_request() -> None:
    events: list[str] = []
    lock = threading.Lock()

    def job(name: str) -> None:
        with lock:
            events.append(f"start {name}")
        time.sleep(0.02)

    async def scenario() -> None:
        worker = EnhanceWorker(2, 1000)
        burst = [
            asyncio.create_task(worker.run_cancellable(lambda _c, i=i: job(f"a{i}"), account="acct_a"))
            for i in range(40)
        ]
        await asyncio.sleep(0.05)

        async def single() -> None:
            with lock:
                events.append("queued b")
            await worker.run_cancellable(lambda _c: job("b"), account="acct_b")

        await asyncio.gather(*burst, single())
        worker.close()

    asyncio.run(scenario())
    between = events[events.index("queued b") + 1 : events.index("start b")]
    # First come first served would start the ~35 waiting requests of the burst first. Round robin
    # starts at most one of them, plus those already handed to the 2 threads but not yet started.
    assert len(between) <= 3, between
    assert events.index("start b") < len(events) - 20


def test_full_queue_still_admits_an_account_with_nothing_admitted() -> None:
    release = threading.Event()

    async def scenario() -> None:
        worker = EnhanceWorker(1, 1)
        blocking = [
            asyncio.create_task(worker.run_cancellable(lambda _c: release.wait(5), account="acct_a")) for _ in range(2)
        ]
        await asyncio.sleep(0.05)
        with pytest.raises(OverloadedError):
            await worker.run_cancellable(lambda _c: None, account="acct_a")
        other = asyncio.create_task(worker.run_cancellable(lambda _c: "b done", account="acct_b"))
        await asyncio.sleep(0.05)
        with pytest.raises(OverloadedError):
            await worker.run_cancellable(lambda _c: None, account="acct_b")
        release.set()
        assert await other == "b done"
        await asyncio.gather(*blocking)
        worker.close()

    asyncio.run(scenario())


def test_account_concurrency_limit_refuses_with_429_and_frees_on_completion(database: Engine) -> None:
    release = threading.Event()

    async def scenario() -> None:
        limits = AccountLimits(database, per_minute=0, max_concurrent=2)
        worker = EnhanceWorker(4, 10, limits=limits, retry_after_s=7)
        held = [
            asyncio.create_task(worker.run_cancellable(lambda _c: release.wait(5), account="acct_a")) for _ in range(2)
        ]
        await asyncio.sleep(0.2)
        with pytest.raises(RateLimitedError) as refused:
            await worker.run_cancellable(lambda _c: None, account="acct_a")
        assert refused.value.retry_after_s == 7
        assert await worker.run_cancellable(lambda _c: "ok", account="acct_b") == "ok"
        assert await worker.background_lane().run(lambda: "lane") == "lane"
        release.set()
        await asyncio.gather(*held)
        assert await worker.run_cancellable(lambda _c: "again", account="acct_a") == "again"
        limits.close()
        worker.close()

    asyncio.run(scenario())


def test_cancelled_caller_frees_its_account_slot(database: Engine) -> None:
    async def scenario() -> None:
        limits = AccountLimits(database, per_minute=0, max_concurrent=1)
        worker = EnhanceWorker(1, 10, limits=limits)

        def slow(cancel: CancelToken) -> None:
            deadline = time.monotonic() + 5
            while not cancel.cancelled and time.monotonic() < deadline:
                time.sleep(0.01)

        task = asyncio.create_task(worker.run_cancellable(slow, account="acct_a"))
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        for _ in range(100):
            if worker.depth == 0:
                break
            await asyncio.sleep(0.02)
        assert await worker.run_cancellable(lambda _c: "next", account="acct_a") == "next"
        limits.close()
        worker.close()

    asyncio.run(scenario())
