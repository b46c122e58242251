"""Per-account limits kept in the shared database, so that they hold across every replica serving it:
a fixed-window request counter per account and minute (``rate_windows``) and leased concurrency slots
per account (``account_slots``). Both are single conditional statements, atomic on SQLite and
PostgreSQL alike."""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, Engine, Float, Integer, String, delete, or_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from server.storage.database import Base

logger = logging.getLogger(__name__)

WINDOW_S = 60


class RateWindowRow(Base):
    """Requests of one account in one minute (``window`` = Unix time // 60)."""

    __tablename__ = "rate_windows"

    account_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    window: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    count: Mapped[int] = mapped_column(Integer)


class AccountSlotRow(Base):
    """One of an account's concurrency slots: free when ``holder`` is null or its lease has expired."""

    __tablename__ = "account_slots"

    account_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    slot: Mapped[int] = mapped_column(Integer, primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(64), nullable=True)
    process: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    expires_at: Mapped[float | None] = mapped_column(Float, nullable=True)


@dataclass(frozen=True)
class RateDecision:
    """The outcome of counting one request: allowed or not, and when the window ends."""

    allowed: bool
    count: int
    retry_after_s: int


@dataclass(frozen=True)
class SlotLease:
    """A held concurrency slot; give it back with :meth:`AccountLimits.release`."""

    account_id: str
    slot: int
    holder: str


def _insert_for(engine: Engine) -> Callable[..., Any] | None:
    """The dialect's ``insert`` with ``ON CONFLICT`` support, or None for other databases."""
    if engine.dialect.name == "postgresql":
        return postgresql.insert
    if engine.dialect.name == "sqlite":
        return sqlite.insert
    return None


def _rowcount(result: Any) -> int:
    return int(result.rowcount)


class AccountLimits:
    """Counts requests and hands out concurrency slots per account, in the database ``engine``.
    ``clock`` is Unix time (injectable in tests)."""

    def __init__(
        self,
        engine: Engine,
        *,
        per_minute: int,
        max_concurrent: int,
        lease_s: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._engine = engine
        self.per_minute = per_minute
        self.max_concurrent = max_concurrent
        self._lease_s = lease_s
        self._clock = clock
        self._insert = _insert_for(engine)
        self._process = uuid.uuid4().hex
        self._slots_made: set[str] = set()
        self._held = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def count_request(self, account_id: str) -> RateDecision:
        """Count one request of ``account_id`` in the current minute; not allowed past ``per_minute``."""
        now = self._clock()
        window = int(now // WINDOW_S)
        retry_after = max(1, math.ceil((window + 1) * WINDOW_S - now))
        if self.per_minute <= 0:
            return RateDecision(True, 0, retry_after)
        count = self._increment(account_id, window)
        return RateDecision(count <= self.per_minute, count, retry_after)

    def _increment(self, account_id: str, window: int) -> int:
        with Session(self._engine) as session, session.begin():
            if self._insert is not None:
                statement = (
                    self._insert(RateWindowRow)
                    .values(account_id=account_id, window=window, count=1)
                    .on_conflict_do_update(
                        index_elements=["account_id", "window"], set_={"count": RateWindowRow.count + 1}
                    )
                    .returning(RateWindowRow.count)
                )
                count = int(session.execute(statement).scalar_one())
            else:  # any other database: update, else insert (a lost race retries as an update)
                count = self._increment_generic(session, account_id, window)
            if count == 1:  # first request of this window: forget this account's old windows
                session.execute(
                    delete(RateWindowRow).where(RateWindowRow.account_id == account_id, RateWindowRow.window < window)
                )
            return count

    @staticmethod
    def _increment_generic(session: Session, account_id: str, window: int) -> int:
        key = (RateWindowRow.account_id == account_id, RateWindowRow.window == window)
        for _ in range(3):
            if _rowcount(session.execute(update(RateWindowRow).where(*key).values(count=RateWindowRow.count + 1))):
                return int(session.get_one(RateWindowRow, (account_id, window), populate_existing=True).count)
            try:
                with session.begin_nested():
                    session.add(RateWindowRow(account_id=account_id, window=window, count=1))
                return 1
            except IntegrityError:
                continue
        raise RuntimeError("could not count the request")

    def acquire(self, account_id: str) -> SlotLease | None:
        """One of ``account_id``'s ``max_concurrent`` slots, or None when all are held (by any replica)."""
        if self.max_concurrent <= 0:
            raise ValueError("no concurrency limit is configured")
        self._make_slots(account_id)
        holder = uuid.uuid4().hex
        now = self._clock()
        with Session(self._engine) as session, session.begin():
            for slot in range(self.max_concurrent):
                taken = _rowcount(
                    session.execute(
                        update(AccountSlotRow)
                        .where(
                            AccountSlotRow.account_id == account_id,
                            AccountSlotRow.slot == slot,
                            or_(AccountSlotRow.holder.is_(None), AccountSlotRow.expires_at < now),
                        )
                        .values(holder=holder, process=self._process, expires_at=now + self._lease_s)
                    )
                )
                if taken:
                    self._start_renewing()
                    with self._lock:
                        self._held += 1
                    return SlotLease(account_id, slot, holder)
        return None

    def release(self, lease: SlotLease) -> None:
        """Give a slot back (idempotent)."""
        with Session(self._engine) as session, session.begin():
            released = _rowcount(
                session.execute(
                    update(AccountSlotRow)
                    .where(
                        AccountSlotRow.account_id == lease.account_id,
                        AccountSlotRow.slot == lease.slot,
                        AccountSlotRow.holder == lease.holder,
                    )
                    .values(holder=None, process=None, expires_at=None)
                )
            )
        if released:
            with self._lock:
                self._held -= 1

    def _make_slots(self, account_id: str) -> None:
        if account_id in self._slots_made:
            return
        with Session(self._engine) as session:
            for slot in range(self.max_concurrent):
                try:
                    with session.begin():
                        if session.get(AccountSlotRow, (account_id, slot)) is None:
                            session.add(AccountSlotRow(account_id=account_id, slot=slot))
                except IntegrityError:  # another replica made it first
                    pass
        self._slots_made.add(account_id)

    def renew(self) -> int:
        """Extend the leases this process holds; how many. Called every third of the lease time."""
        with Session(self._engine) as session, session.begin():
            return _rowcount(
                session.execute(
                    update(AccountSlotRow)
                    .where(AccountSlotRow.process == self._process, AccountSlotRow.holder.is_not(None))
                    .values(expires_at=self._clock() + self._lease_s)
                )
            )

    def _start_renewing(self) -> None:
        with self._lock:
            if self._renewer is not None:
                return
            self._renewer = threading.Thread(target=self._renew_forever, name="account-slot-leases", daemon=True)
            self._renewer.start()

    def _renew_forever(self) -> None:
        while not self._stop.wait(self._lease_s / 3):
            if self._held:
                try:
                    self.renew()
                except Exception:  # a missed renewal is retried; the lease outlives two of them
                    logger.warning("could not renew account slot leases", exc_info=True)

    def close(self) -> None:
        """Stop renewing (the service is stopping)."""
        self._stop.set()
