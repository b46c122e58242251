"""The enhance worker: a bounded gate in front of the model so the GPU runs a fixed number of
enhancements at once, a bounded number wait, and the rest are refused with 503."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import anyio.to_thread

from server.errors import OverloadedError

P = ParamSpec("P")
T = TypeVar("T")


class EnhanceWorker:
    """Runs blocking model calls in worker threads, ``max_concurrent`` at a time, with at most
    ``max_queued`` callers waiting; a caller beyond that gets ``OverloadedError`` at once."""

    def __init__(self, max_concurrent: int, max_queued: int) -> None:
        self._slots = asyncio.Semaphore(max_concurrent)
        self._capacity = max_concurrent + max_queued
        self._admitted = 0

    @property
    def depth(self) -> int:
        """Requests admitted and not yet finished (running plus waiting)."""
        return self._admitted

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        if self._admitted >= self._capacity:
            raise OverloadedError("The enhance queue is full; retry later.")
        self._admitted += 1
        try:
            async with self._slots:
                return await anyio.to_thread.run_sync(lambda: fn(*args, **kwargs))
        finally:
            self._admitted -= 1
