"""Leases: how several service processes on one database share the background work (jobs, callbacks,
profile builds) so that each piece runs in exactly one process at a time.

A claimed row carries ``lease_owner`` (the claiming process's :func:`process_owner_id`) and
``lease_expires_at``. The owner renews the lease while it works (a heartbeat); a row whose lease has
expired is free to claim again, so the work of a process that died is taken over by another. A claim
is one conditional ``UPDATE ... WHERE id = (SELECT ... LIMIT 1) RETURNING``: on PostgreSQL the inner
``SELECT`` takes its row ``FOR UPDATE SKIP LOCKED`` (claims running at once pick different rows
without waiting); on SQLite the statement holds the database's write lock, so it is atomic as well.
Every write that ends the work is conditional on the lease owner, so late work never lands twice.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import socket
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, or_, select, update
from sqlalchemy.orm import InstrumentedAttribute, Session


def process_owner_id() -> str:
    """A lease owner id unique to this process: ``<host>/<pid>/<random>`` (at most 64 characters)."""
    host = socket.gethostname()[:40]
    return f"{host}/{os.getpid()}/{secrets.token_hex(4)}"


def dead_local_owner(owner: str, me: str) -> bool:
    """True when ``owner`` names a process on this host that no longer runs (and is not ``me``): its
    leases can be taken over at once instead of after they expire. Wrong only on the safe side: a
    reused pid looks alive, and then the lease just runs out."""
    host, _, rest = owner.partition("/")
    pid_text = rest.split("/", 1)[0]
    if owner == me or host != socket.gethostname()[:40] or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, under another user
    return False


def expire_dead_owners(session: Session, table: Any, me: str, now: dt.datetime) -> int:
    """End at once, in ``session``'s transaction, the running leases on ``table`` (a leased row class)
    held by processes of this host that no longer run (:func:`dead_local_owner`), so a restarted service
    resumes their work without waiting for the leases to run out. Returns how many rows were freed."""
    held = select(table.lease_owner).where(table.lease_owner.is_not(None), table.lease_expires_at > now)
    dead = [owner for owner in session.scalars(held.distinct()) if owner and dead_local_owner(owner, me)]
    if not dead:
        return 0
    result = session.execute(update(table).where(table.lease_owner.in_(dead)).values(lease_expires_at=now))
    return int(result.rowcount)  # type: ignore[attr-defined]


def lease_free(
    owner_column: InstrumentedAttribute[str | None],
    expires_column: InstrumentedAttribute[dt.datetime | None],
    now: dt.datetime,
) -> ColumnElement[bool]:
    """Rows nobody holds: never leased, or whose lease has run out."""
    return or_(owner_column.is_(None), expires_column.is_(None), expires_column <= now)


def lease_held(owner_column: InstrumentedAttribute[str | None], owner: str) -> ColumnElement[bool]:
    return and_(owner_column.is_not(None), owner_column == owner)


def skip_locked(query: Select[Any], dialect_name: str, of: object) -> Select[Any]:
    """``FOR UPDATE SKIP LOCKED`` on PostgreSQL (SQLite has no row locks: its writer lock serialises)."""
    if dialect_name == "postgresql":
        return query.with_for_update(skip_locked=True, of=of)  # type: ignore[arg-type]
    return query


def claim_first(
    session: Session,
    key: InstrumentedAttribute[Any],
    candidate: Select[Any],
    claimable: ColumnElement[bool],
    values: dict[str, Any],
) -> Any:
    """The claim: ``UPDATE <key's table> SET values WHERE key = (candidate LIMIT 1, SKIP LOCKED) AND
    claimable RETURNING key``, in ``session``'s transaction. ``candidate`` selects ``key`` of the rows
    to claim, best first; ``claimable`` is checked again on the row itself (another claim may have
    taken it since). Returns the claimed row's key, or None when there was nothing to claim."""
    table = key.class_
    first = skip_locked(candidate.limit(1), session.get_bind().dialect.name, table)
    claim = update(table).where(key == first.scalar_subquery(), claimable).values(**values).returning(key)
    return session.scalar(claim)
