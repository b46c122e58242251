"""The enhance worker: admission in front of the pipeline. ``max_concurrent`` requests run their
blocking work at once (in this worker's own threads, where they decode, analyse, render and wait for
the network batcher), at most ``max_queued`` more wait, and the rest are refused with 503.

A caller that goes away (its task is cancelled: client disconnected, job stopped) cancels its
request's ``CancelToken``, which drops its queued network tiles and stops its thread at the next
checkpoint; its slot is freed only when that thread has really ended, so slots never overcommit."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

from models.sr import CancelToken
from server.errors import OverloadedError

P = ParamSpec("P")
T = TypeVar("T")


@dataclass
class _Gate:
    """The state a worker and its background lane share."""

    slots: asyncio.Semaphore
    capacity: int
    threads: ThreadPoolExecutor
    admitted: int = 0


class EnhanceWorker:
    """Runs blocking model calls in worker threads, ``max_concurrent`` at a time, with at most
    ``max_queued`` callers waiting; a caller beyond that gets ``OverloadedError`` at once."""

    def __init__(self, max_concurrent: int, max_queued: int) -> None:
        self._gate = _Gate(
            slots=asyncio.Semaphore(max_concurrent),
            capacity=max_concurrent + max_queued,
            threads=ThreadPoolExecutor(max_workers=max_concurrent, thread_name_prefix="enhance"),
        )
        self._refuses_when_full = True

    @property
    def depth(self) -> int:
        """Requests admitted and not yet finished (running plus waiting)."""
        return self._gate.admitted

    def background_lane(self) -> EnhanceWorker:
        """A view of this worker for the asynchronous job runners: same slots and depth, but it waits
        for a slot instead of refusing when the queue is full (the runners are few and fixed in number,
        and a job already accepted must not fail for being busy)."""
        lane = copy.copy(self)
        lane._refuses_when_full = False
        return lane

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn(*args, **kwargs)`` in a worker thread, through the gate."""
        return await self.run_cancellable(lambda _cancel: fn(*args, **kwargs))

    async def run_cancellable(self, fn: Callable[[CancelToken], T]) -> T:
        """``fn(cancel)`` in a worker thread, through the gate; ``cancel`` is set when this call is
        cancelled. Raises ``OverloadedError`` when the queue is full (not on the background lane)."""
        gate = self._gate
        if self._refuses_when_full and gate.admitted >= gate.capacity:
            raise OverloadedError("The enhance queue is full; retry later.")
        gate.admitted += 1
        try:
            await gate.slots.acquire()
        except BaseException:
            gate.admitted -= 1
            raise
        cancel = CancelToken()
        try:
            future = asyncio.get_running_loop().run_in_executor(gate.threads, fn, cancel)
        except BaseException:
            self._release(None)
            raise
        future.add_done_callback(self._release)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            cancel.cancel()
            raise

    def _release(self, future: asyncio.Future[Any] | None) -> None:
        """The thread has ended: free its slot (and consume an outcome nobody awaits any more)."""
        if future is not None and not future.cancelled():
            future.exception()
        self._gate.slots.release()
        self._gate.admitted -= 1

    def close(self) -> None:
        """Stop the threads once their current work ends (called on shutdown)."""
        self._gate.threads.shutdown(wait=False, cancel_futures=True)
