"""How many CPU cores this process may use, and PyTorch's intra-op threads set to that.

PyTorch starts with one thread per core of the host; in a container limited to 2 of 64 cores
(affinity or a CFS quota) that is 64 threads fighting over 2 cores, several times slower than 2.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import torch

logger = logging.getLogger(__name__)

_CGROUP_V2 = Path("/sys/fs/cgroup/cpu.max")
_CGROUP_V1 = (Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"), Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us"))


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def cgroup_cpu_limit(v2: Path = _CGROUP_V2, v1: tuple[Path, Path] = _CGROUP_V1) -> int | None:
    """The CFS quota of this process's cgroup in whole cores (rounded up), or None when unlimited or
    unreadable. cgroup v2's ``cpu.max`` ("quota period" or "max period") first, then v1's files."""
    text = _read(v2)
    if text is not None:
        quota, _, period = text.partition(" ")
        if quota == "max" or not period:
            return None
        return max(1, math.ceil(int(quota) / int(period)))
    quota_text, period_text = _read(v1[0]), _read(v1[1])
    if quota_text is None or period_text is None or int(quota_text) <= 0:
        return None
    return max(1, math.ceil(int(quota_text) / int(period_text)))


def usable_cpus() -> int:
    """The cores this process may use: its CPU affinity, capped by its cgroup's CPU quota."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    limit = cgroup_cpu_limit()
    return max(1, min(cores, limit) if limit is not None else cores)


def configure_threads() -> tuple[int, str]:
    """Set PyTorch's intra-op threads to :func:`usable_cpus` unless the operator set
    ``OMP_NUM_THREADS`` (then left as it is). Returns the thread count and where it came from."""
    if os.environ.get("OMP_NUM_THREADS"):
        return torch.get_num_threads(), "OMP_NUM_THREADS"
    cores = usable_cpus()
    if torch.get_num_threads() != cores:
        torch.set_num_threads(cores)
    return cores, "the cores this process may use (affinity, cgroup quota)"
