"""A byte budget for the device memory that requests hold while they are on the device."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

from models.sr._batching import CancelToken


class MemoryBudget:
    """Requests reserve their estimated device bytes before they upload anything and give them back
    when their outputs are on the host. Reservations are granted in arrival order (a large request is
    never starved by small ones); one larger than the whole budget runs alone. Thread-safe."""

    def __init__(self, total_bytes: int) -> None:
        if total_bytes < 1:
            raise ValueError("the memory budget must be positive")
        self.total_bytes = total_bytes
        self._used = 0
        self._waiting: deque[object] = deque()
        self._cond = threading.Condition()

    @property
    def used_bytes(self) -> int:
        with self._cond:
            return self._used

    @property
    def waiting(self) -> int:
        with self._cond:
            return len(self._waiting)

    def _fits(self, nbytes: int) -> bool:
        return self._used == 0 or self._used + nbytes <= self.total_bytes

    @contextmanager
    def reserve(self, nbytes: int, cancel: CancelToken | None = None) -> Iterator[None]:
        """Hold ``nbytes`` of the budget for the ``with`` block; blocks until they are free. Raises
        ``RequestCancelledError`` when ``cancel`` is set while waiting."""
        ticket = object()
        with self._cond:
            self._waiting.append(ticket)
            if cancel is not None:
                cancel.add_callback(self._wake)
            try:
                while not (self._waiting[0] is ticket and self._fits(nbytes)):
                    if cancel is not None:
                        cancel.raise_if_cancelled()
                    self._cond.wait()
            finally:
                self._waiting.remove(ticket)
                self._cond.notify_all()
            self._used += nbytes
        try:
            yield
        finally:
            with self._cond:
                self._used -= nbytes
                self._cond.notify_all()

    def _wake(self) -> None:
        with self._cond:
            self._cond.notify_all()
