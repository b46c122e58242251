"""The enhance worker: admission in front of the pipeline. ``max_concurrent`` requests run their
blocking work at once (in this worker's own threads, where they decode, analyse, render and wait for
the network batcher), at most ``max_queued`` more wait, and the rest are refused with 503.

Fairness across accounts: a freed slot goes to the accounts with waiting requests in turn (round
robin), not to the oldest request, so one account's burst delays another account's single request by
at most one request's time; and an account with nothing admitted is admitted even when the queue is
full (the overshoot is bounded by the number of accounts), so a burst cannot lock the others out.
With per-account limits (``AccountLimits``), a caller whose account already holds
``ENHANCE_ACCOUNT_MAX_CONCURRENT`` enhancements (on any replica) is refused with 429 at once.

A caller that goes away (its task is cancelled: client disconnected, job stopped) cancels its
request's ``CancelToken``, which drops its queued network tiles and stops its thread at the next
checkpoint; its slot is freed only when that thread has really ended, so slots never overcommit."""

from __future__ import annotations

import asyncio
import contextlib
import copy
from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

from models.pipeline import CancelToken
from server.failures import OverloadedError, RateLimitedError
from server.storage.limits import AccountLimits, SlotLease

P = ParamSpec("P")
T = TypeVar("T")

# The account of callers that name none (background work that is not an account's request).
NO_ACCOUNT = ""


class FairSlots:
    """``capacity`` slots handed out round robin across accounts with waiters (first come, first
    served within an account). Event-loop only: not thread-safe."""

    def __init__(self, capacity: int) -> None:
        self._free = capacity
        self._waiting: OrderedDict[str, deque[asyncio.Future[None]]] = OrderedDict()

    @property
    def waiting(self) -> int:
        return sum(len(queue) for queue in self._waiting.values())

    async def acquire(self, account: str) -> None:
        """Wait for a slot for ``account``."""
        if self._free > 0 and not self._waiting:
            self._free -= 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(account, deque()).append(future)
        try:
            await future
        except BaseException:
            if future.done() and not future.cancelled():
                self.release()  # granted just as the caller was cancelled: pass it on
            else:
                queue = self._waiting.get(account)
                if queue is not None:
                    with contextlib.suppress(ValueError):
                        queue.remove(future)
                    if not queue:
                        del self._waiting[account]
            raise

    def release(self) -> None:
        """Free a slot: the next account in turn with a waiter gets it, else it becomes free."""
        while self._waiting:
            account, queue = next(iter(self._waiting.items()))
            future = queue.popleft()
            if queue:
                self._waiting.move_to_end(account)
            else:
                del self._waiting[account]
            if not future.done():
                future.set_result(None)
                return
        self._free += 1


@dataclass
class _Gate:
    """The state a worker and its background lane share."""

    slots: FairSlots
    capacity: int
    threads: ThreadPoolExecutor
    admitted: int = 0
    admitted_by: Counter[str] = field(default_factory=Counter)


class EnhanceWorker:
    """Runs blocking model calls in worker threads, ``max_concurrent`` at a time, with at most
    ``max_queued`` callers waiting; a caller beyond that gets ``OverloadedError`` at once (unless its
    account has nothing admitted). ``limits`` adds the per-account concurrency limit."""

    def __init__(
        self,
        max_concurrent: int,
        max_queued: int,
        *,
        limits: AccountLimits | None = None,
        retry_after_s: int = 5,
    ) -> None:
        self._gate = _Gate(
            slots=FairSlots(max_concurrent),
            capacity=max_concurrent + max_queued,
            threads=ThreadPoolExecutor(max_workers=max_concurrent, thread_name_prefix="enhance"),
        )
        self._refuses_when_full = True
        self._limits = limits if limits is not None and limits.max_concurrent > 0 else None
        self._retry_after_s = retry_after_s

    @property
    def depth(self) -> int:
        """Requests admitted and not yet finished (running plus waiting)."""
        return self._gate.admitted

    def background_lane(self) -> EnhanceWorker:
        """A view of this worker for the asynchronous job runners: same slots and depth, but it waits
        for a slot instead of refusing when the queue is full (the runners are few and fixed in number,
        and a job already accepted must not fail for being busy), and no per-account limit applies."""
        lane = copy.copy(self)
        lane._refuses_when_full = False
        lane._limits = None
        return lane

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn(*args, **kwargs)`` in a worker thread, through the gate (no account)."""
        return await self.run_cancellable(lambda _cancel: fn(*args, **kwargs))

    async def run_cancellable(self, fn: Callable[[CancelToken], T], account: str | None = None) -> T:
        """``fn(cancel)`` in a worker thread, through the gate, served in turn with other accounts'
        work; ``cancel`` is set when this call is cancelled. Raises ``OverloadedError`` when the queue is
        full and ``RateLimitedError`` when ``account`` holds its concurrency limit (neither on the
        background lane)."""
        gate = self._gate
        owner = account or NO_ACCOUNT
        if self._refuses_when_full and gate.admitted >= gate.capacity and gate.admitted_by[owner] > 0:
            raise OverloadedError("The enhance queue is full; retry later.")
        lease = await self._lease(account)
        gate.admitted += 1
        gate.admitted_by[owner] += 1
        try:
            await gate.slots.acquire(owner)
        except BaseException:
            self._forget(owner)
            if lease is not None:
                await asyncio.to_thread(self._give_back, lease)
            raise
        cancel = CancelToken()
        work = fn if lease is None else self._releasing(fn, lease)
        try:
            future = asyncio.get_running_loop().run_in_executor(gate.threads, work, cancel)
        except BaseException:
            self._release(None, owner)
            if lease is not None:
                await asyncio.to_thread(self._give_back, lease)
            raise
        future.add_done_callback(lambda done: self._release(done, owner))
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            cancel.cancel()
            raise

    async def _lease(self, account: str | None) -> SlotLease | None:
        limits = self._limits
        if limits is None or not account:
            return None
        lease = await asyncio.to_thread(limits.acquire, account)
        if lease is None:
            raise RateLimitedError(
                f"This account already has {limits.max_concurrent} enhancements in progress "
                "(ENHANCE_ACCOUNT_MAX_CONCURRENT); retry when one has finished.",
                self._retry_after_s,
            )
        return lease

    def _releasing(self, fn: Callable[[CancelToken], T], lease: SlotLease) -> Callable[[CancelToken], T]:
        def work(cancel: CancelToken) -> T:
            try:
                return fn(cancel)
            finally:
                self._give_back(lease)

        return work

    def _give_back(self, lease: SlotLease) -> None:
        assert self._limits is not None
        self._limits.release(lease)

    def _forget(self, owner: str) -> None:
        gate = self._gate
        gate.admitted -= 1
        gate.admitted_by[owner] -= 1
        if gate.admitted_by[owner] <= 0:
            del gate.admitted_by[owner]

    def _release(self, future: asyncio.Future[Any] | None, owner: str) -> None:
        """The thread has ended: free its slot (and consume an outcome nobody awaits any more)."""
        if future is not None and not future.cancelled():
            future.exception()
        self._gate.slots.release()
        self._forget(owner)

    def close(self) -> None:
        """Stop the threads once their current work ends (called on shutdown)."""
        self._gate.threads.shutdown(wait=False, cancel_futures=True)
