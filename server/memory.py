"""The C heap under a long-running service: fewer malloc arenas, and free pages handed back.

glibc gives each thread that meets a locked arena a new one (up to eight per core) and keeps freed
memory in them; with dozens of threads allocating images and tensors of every size, the service's
resident memory then climbs in steps that a steady load never gives back (the hour-long soak saw
+100 MiB steps). Capping the arenas (``ENHANCE_MALLOC_ARENA_MAX``) and calling ``malloc_trim`` now
and then (``ENHANCE_MALLOC_TRIM_INTERVAL_S``) keep it flat; PyTorch's own large buffers are mapped
and unmapped outright and are not affected. Elsewhere than glibc both do nothing."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging

logger = logging.getLogger(__name__)

# mallopt's parameter number for the arena cap (glibc's malloc.h).
_M_ARENA_MAX = -8


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None


def limit_arenas(arena_max: int) -> bool:
    """At most ``arena_max`` malloc arenas from now on (0: glibc's default); whether it took effect."""
    libc = _glibc()
    if libc is None or arena_max <= 0:
        return False
    return bool(libc.mallopt(_M_ARENA_MAX, arena_max))


def trim_heap() -> bool:
    """Hand the free pages of every arena back to the system; whether any were."""
    libc = _glibc()
    return bool(libc.malloc_trim(0)) if libc is not None else False
