"""The C heap's hygiene (server/memory.py): freed memory kept by glibc goes back to the system."""

from __future__ import annotations

import platform

import psutil
import pytest

from server import memory

glibc_only = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc only")


@glibc_only
def test_trim_heap_returns_the_free_pages_a_fragmented_heap_keeps() -> None:
    process = psutil.Process()
    # 64 KiB blocks come from the heap (below the mmap threshold); keeping every other one alive pins the
    # heap's top, so glibc cannot shrink it on its own and keeps the freed half resident.
    blocks = [bytearray(64 * 1024) for _ in range(3000)]
    kept = blocks[1::2]
    del blocks
    before = process.memory_info().rss
    assert memory.trim_heap()
    after = process.memory_info().rss
    assert before - after > 50 * 1024 * 1024, (before, after)
    assert len(kept) == 1500


@glibc_only
def test_limit_arenas_takes_effect_and_zero_keeps_the_default() -> None:
    assert memory.limit_arenas(4)
    assert not memory.limit_arenas(0)
