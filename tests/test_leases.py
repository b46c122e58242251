"""Leases of processes that died on this host are ended at once (``leases.expire_dead_owners``, the one
copy behind the job and profile stores' ``expire_leases_of_dead_processes``); a live owner's are kept."""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import sys

from sqlalchemy import Engine

from server.storage import JobStore
from server.storage.leases import process_owner_id
from tests.test_jobs_store import LEASE_S, NOW, account_ids, database, new_job, store

__all__ = ["database", "store"]


def _dead_owner() -> str:
    """The owner id of a process of this host that has exited."""
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, check=True)
    return f"{socket.gethostname()[:40]}/{int(finished.stdout)}/dead"


def test_leases_of_a_dead_local_process_end_at_once_and_a_live_ones_are_kept(database: Engine, store: JobStore) -> None:
    me = process_owner_id()
    alive = f"{socket.gethostname()[:40]}/{os.getppid()}/live"  # this test's parent process: running
    account, other_account = account_ids(database)
    dead_job, _ = store.create(new_job(account))
    live_job, _ = store.create(new_job(other_account, created_at=NOW + dt.timedelta(seconds=1)))
    assert store.claim_next(_dead_owner(), NOW, LEASE_S).id == dead_job.id  # type: ignore[union-attr]
    assert store.claim_next(alive, NOW, LEASE_S).id == live_job.id  # type: ignore[union-attr]
    later = NOW + dt.timedelta(seconds=1)
    assert store.claim_next(me, later, LEASE_S) is None  # both leases still run

    assert store.expire_leases_of_dead_processes(me, later) == 1
    taken = store.claim_next(me, later, LEASE_S)
    assert taken is not None and taken.id == dead_job.id and taken.attempts == 2
    assert store.claim_next(me, later, LEASE_S) is None  # the live owner keeps its job
    assert store.expire_leases_of_dead_processes(me, later) == 0  # nothing left to free (its own lease kept)
