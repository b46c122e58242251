"""The enhance worker: a bounded gate in front of the model so the GPU runs a fixed number of
enhancements at once, a bounded number wait, and the rest are refused with 503."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

import anyio.to_thread

from server.errors import OverloadedError

P = ParamSpec("P")
T = TypeVar("T")


@dataclass
class _Gate:
    """The state a worker and its background lane share."""

    slots: asyncio.Semaphore
    capacity: int
    admitted: int = 0


class EnhanceWorker:
    """Runs blocking model calls in worker threads, ``max_concurrent`` at a time, with at most
    ``max_queued`` callers waiting; a caller beyond that gets ``OverloadedError`` at once."""

    def __init__(self, max_concurrent: int, max_queued: int) -> None:
        self._gate = _Gate(slots=asyncio.Semaphore(max_concurrent), capacity=max_concurrent + max_queued)
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
        gate = self._gate
        if self._refuses_when_full and gate.admitted >= gate.capacity:
            raise OverloadedError("The enhance queue is full; retry later.")
        gate.admitted += 1
        try:
            async with gate.slots:
                return await anyio.to_thread.run_sync(lambda: fn(*args, **kwargs))
        finally:
            gate.admitted -= 1
