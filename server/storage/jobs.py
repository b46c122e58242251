"""Asynchronous jobs, their pending callbacks and the accounts' webhook secrets, in the database; and
each job's folder of files in the object store (the submitted image, the output images of ``bytes``
results).

Every method here is blocking (SQLAlchemy and file I/O): callers on the event loop run them in a
worker thread. The tables use portable types only (strings, integers, JSON, timestamps stored as UTC),
so the same code runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import secrets
import time
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import (
    JSON,
    ColumnElement,
    Date,
    DateTime,
    Dialect,
    Engine,
    ForeignKey,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    and_,
    delete,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from server.storage.database import Base
from server.storage.leases import claim_first, expire_dead_owners, lease_free, lease_held
from server.storage.objects import LocalObjectStore, ObjectStore

logger = logging.getLogger(__name__)

JobStatus = Literal["QUEUED", "RUNNING", "SUCCEEDED", "FAILED"]
UNFINISHED: tuple[JobStatus, ...] = ("QUEUED", "RUNNING")
CallbackStatus = Literal["PENDING", "DELIVERED", "FAILED"]


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timestamp stored as UTC and always read back timezone-aware (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("timestamps must be timezone-aware")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


class JobRow(Base):
    """One asynchronous enhance request. ``attempts`` counts how often it was started (a run that was
    interrupted by a crash counts too); the unique (account, client request key) pair makes
    resubmissions with the same ``client_request_id`` land on the original job."""

    __tablename__ = "jobs"
    __table_args__ = (UniqueConstraint("account_id", "client_request_key", name="uq_jobs_account_client_request"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(32), ForeignKey("accounts.id"), index=True)
    client_request_key: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), index=True)
    options: Mapped[dict[str, Any]] = mapped_column(JSON)
    submitted_on: Mapped[dt.date] = mapped_column(Date)
    base_url: Mapped[str] = mapped_column(Text)
    callback_url: Mapped[str | None] = mapped_column(Text)
    request_id: Mapped[str] = mapped_column(String(128))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error_code: Mapped[str | None] = mapped_column(String(32))
    error_detail: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    completed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, index=True)
    # The process running the job and until when its lease holds (server/storage/leases.py).
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class JobTurnRow(Base):
    """When each account last had a job claimed: claims prefer the account served least recently, so
    one account's burst of jobs never starves another's."""

    __tablename__ = "job_turns"

    account_id: Mapped[str] = mapped_column(String(32), ForeignKey("accounts.id"), primary_key=True)
    last_claimed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class JobCallbackRow(Base):
    """The callback of one finished job (at most one per job): delivered, retried later, or given up."""

    __tablename__ = "job_callbacks"

    job_id: Mapped[str] = mapped_column(String(40), ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class WebhookSecretRow(Base):
    """An account's secret for signing callbacks (kept in clear: the service needs it to sign)."""

    __tablename__ = "webhook_secrets"

    account_id: Mapped[str] = mapped_column(String(32), ForeignKey("accounts.id"), primary_key=True)
    secret: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


@dataclass(frozen=True)
class JobRecord:
    """A job as read from the database."""

    id: str
    account_id: str
    status: JobStatus
    options: dict[str, Any]
    submitted_on: dt.date
    base_url: str
    callback_url: str | None
    request_id: str
    attempts: int
    result: dict[str, Any] | None
    error_code: str | None
    error_detail: str | None
    created_at: dt.datetime
    completed_at: dt.datetime | None
    expires_at: dt.datetime | None

    @classmethod
    def of(cls, row: JobRow) -> JobRecord:
        return cls(
            id=row.id,
            account_id=row.account_id,
            status=row.status,  # type: ignore[arg-type]
            options=dict(row.options),
            submitted_on=row.submitted_on,
            base_url=row.base_url,
            callback_url=row.callback_url,
            request_id=row.request_id,
            attempts=row.attempts,
            result=row.result,
            error_code=row.error_code,
            error_detail=row.error_detail,
            created_at=row.created_at,
            completed_at=row.completed_at,
            expires_at=row.expires_at,
        )


@dataclass(frozen=True)
class NewJob:
    """What a submit stores: everything needed to run the job later, after any restart."""

    id: str
    account_id: str
    client_request_id: str | None
    options: dict[str, Any]
    submitted_on: dt.date
    base_url: str
    callback_url: str | None
    request_id: str
    created_at: dt.datetime


@dataclass(frozen=True)
class CallbackRecord:
    """A pending callback as read from the database."""

    job_id: str
    url: str
    status: CallbackStatus
    attempts: int
    next_attempt_at: dt.datetime


def _callback_record(row: JobCallbackRow) -> CallbackRecord:
    return CallbackRecord(
        job_id=row.job_id,
        url=row.url,
        status=row.status,  # type: ignore[arg-type]
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
    )


def client_request_key(client_request_id: str) -> str:
    """The stored form of a ``client_request_id``: its SHA-256, so any length fits one column."""
    return hashlib.sha256(client_request_id.encode()).hexdigest()


def new_job_id() -> str:
    """An opaque, URL-safe job id."""
    return "job_" + secrets.token_hex(16)


class JobStore:
    """Jobs, callbacks and webhook secrets in the database. Every method is blocking."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    # --- jobs -------------------------------------------------------------------------------------

    def find_by_client_request(self, account_id: str, client_request_id: str) -> JobRecord | None:
        """The account's job submitted with ``client_request_id``, if any (expired ones included until swept)."""
        with Session(self._engine) as session:
            row = session.scalar(
                select(JobRow).where(
                    JobRow.account_id == account_id,
                    JobRow.client_request_key == client_request_key(client_request_id),
                )
            )
            return None if row is None else JobRecord.of(row)

    def create(self, job: NewJob) -> tuple[JobRecord, bool]:
        """Store ``job`` as QUEUED. Returns (the stored job, True), or (the account's existing job with the
        same ``client_request_id``, False) when a concurrent submit got there first."""
        key = None if job.client_request_id is None else client_request_key(job.client_request_id)
        row = JobRow(
            id=job.id,
            account_id=job.account_id,
            client_request_key=key,
            status="QUEUED",
            options=job.options,
            submitted_on=job.submitted_on,
            base_url=job.base_url,
            callback_url=job.callback_url,
            request_id=job.request_id,
            attempts=0,
            created_at=job.created_at,
        )
        try:
            # The INSERT is the transaction's first statement, so SQLite takes the write lock at once
            # (a read first could fail to upgrade under WAL when another submit commits in between).
            with Session(self._engine) as session, session.begin():
                session.add(row)
        except IntegrityError:
            if job.client_request_id is None:
                raise
            existing = self.find_by_client_request(job.account_id, job.client_request_id)
            if existing is None:
                raise
            return existing, False
        stored = self.get(job.id)
        assert stored is not None
        return stored, True

    def get(self, job_id: str, account_id: str | None = None) -> JobRecord | None:
        """The job ``job_id`` (only when it belongs to ``account_id``, when given)."""
        with Session(self._engine) as session:
            query = select(JobRow).where(JobRow.id == job_id)
            if account_id is not None:
                query = query.where(JobRow.account_id == account_id)
            row = session.scalar(query)
            return None if row is None else JobRecord.of(row)

    def count_unfinished(self) -> int:
        with Session(self._engine) as session:
            return int(session.scalar(select(func.count()).where(JobRow.status.in_(UNFINISHED))) or 0)

    def _claimable(self, now: dt.datetime) -> ColumnElement[bool]:
        """QUEUED jobs, and RUNNING jobs whose process's lease ran out (it died or stalled)."""
        return or_(
            JobRow.status == "QUEUED",
            and_(JobRow.status == "RUNNING", lease_free(JobRow.lease_owner, JobRow.lease_expires_at, now)),
        )

    def claim_next(self, owner: str, now: dt.datetime, lease_s: float) -> JobRecord | None:
        """Claim the next job for ``owner``: RUNNING, one more attempt counted, leased until
        ``now + lease_s``. The job comes from the account whose last claim is oldest (accounts never
        served first), and within it the oldest job. None when nothing is claimable. Safe to call from
        any number of processes at once: each job goes to one caller."""
        candidate = (
            select(JobRow.id)
            .outerjoin(JobTurnRow, JobTurnRow.account_id == JobRow.account_id)
            .where(self._claimable(now))
            .order_by(JobTurnRow.last_claimed_at.asc().nulls_first(), JobRow.created_at, JobRow.id)
        )
        values = {
            "status": "RUNNING",
            "attempts": JobRow.attempts + 1,
            "started_at": now,
            "lease_owner": owner,
            "lease_expires_at": now + dt.timedelta(seconds=lease_s),
        }
        with Session(self._engine) as session, session.begin():
            job_id = claim_first(session, JobRow.id, candidate, self._claimable(now), values)
            if job_id is None:
                return None
            row = session.get(JobRow, job_id)
            assert row is not None
            self._record_turn(session, row.account_id, now)
            return JobRecord.of(row)

    def _record_turn(self, session: Session, account_id: str, now: dt.datetime) -> None:
        insert = postgresql_insert if self._engine.dialect.name == "postgresql" else sqlite_insert
        session.execute(
            insert(JobTurnRow)
            .values(account_id=account_id, last_claimed_at=now)
            .on_conflict_do_update(index_elements=[JobTurnRow.account_id], set_={"last_claimed_at": now})
        )

    def renew_leases(self, owner: str, job_ids: list[str], now: dt.datetime, lease_s: float) -> set[str]:
        """The heartbeat: extend ``owner``'s leases on ``job_ids`` (those still RUNNING under it) to
        ``now + lease_s``; returns the ids still held."""
        if not job_ids:
            return set()
        with Session(self._engine) as session, session.begin():
            held = session.scalars(
                update(JobRow)
                .where(JobRow.id.in_(job_ids), JobRow.status == "RUNNING", lease_held(JobRow.lease_owner, owner))
                .values(lease_expires_at=now + dt.timedelta(seconds=lease_s))
                .returning(JobRow.id)
            )
            return set(held)

    def release(self, owner: str, job_ids: list[str]) -> int:
        """Give ``owner``'s RUNNING jobs among ``job_ids`` back to the queue (a process stopping with jobs
        cut short); their attempt stays counted. Returns how many."""
        if not job_ids:
            return 0
        with Session(self._engine) as session, session.begin():
            result = session.execute(
                update(JobRow)
                .where(JobRow.id.in_(job_ids), JobRow.status == "RUNNING", lease_held(JobRow.lease_owner, owner))
                .values(status="QUEUED", lease_owner=None, lease_expires_at=None)
            )
            return int(result.rowcount)  # type: ignore[attr-defined]

    def expire_leases_of_dead_processes(self, me: str, now: dt.datetime) -> int:
        """End at once the leases (jobs and callbacks) held by processes of this host that no longer run
        (``leases.dead_local_owner``), so a restarted service resumes their work without waiting for the
        leases to run out. Returns how many rows were freed."""
        with Session(self._engine) as session, session.begin():
            return sum(expire_dead_owners(session, table, me, now) for table in (JobRow, JobCallbackRow))

    def queued_ids(self) -> list[str]:
        """Ids of the QUEUED jobs, oldest first."""
        with Session(self._engine) as session:
            return list(session.scalars(select(JobRow.id).where(JobRow.status == "QUEUED").order_by(JobRow.created_at)))

    def finish(
        self,
        job_id: str,
        attempt: int,
        *,
        owner: str,
        now: dt.datetime,
        ttl_s: int,
        result: dict[str, Any] | None = None,
        error: tuple[str, str] | None = None,
    ) -> JobRecord | None:
        """End the RUNNING job's ``attempt`` with ``result`` (SUCCEEDED) or ``error`` (code, detail: FAILED),
        set its expiry, and, when it has a ``callback_url``, queue its callback: all in one transaction.
        None when the job is not in that attempt under ``owner``'s lease any more (nothing is changed
        then), so a job never completes twice."""
        status: JobStatus = "FAILED" if error is not None else "SUCCEEDED"
        with Session(self._engine) as session, session.begin():
            changed = session.execute(
                update(JobRow)
                .where(
                    JobRow.id == job_id,
                    JobRow.status == "RUNNING",
                    JobRow.attempts == attempt,
                    lease_held(JobRow.lease_owner, owner),
                )
                .values(
                    status=status,
                    lease_owner=None,
                    lease_expires_at=None,
                    result=result,
                    error_code=error[0] if error else None,
                    error_detail=error[1] if error else None,
                    completed_at=now,
                    expires_at=now + dt.timedelta(seconds=ttl_s),
                )
            )
            if changed.rowcount != 1:  # type: ignore[attr-defined]
                return None
            row = session.get(JobRow, job_id)
            assert row is not None
            if row.callback_url:
                callback = JobCallbackRow(
                    job_id=job_id, url=row.callback_url, status="PENDING", attempts=0, next_attempt_at=now
                )
                session.add(callback)
            return JobRecord.of(row)

    def remove_expired(self, now: dt.datetime) -> list[str]:
        """Delete finished jobs whose expiry has passed (and their callbacks); returns their ids."""
        with Session(self._engine) as session, session.begin():
            ids = list(session.scalars(select(JobRow.id).where(JobRow.expires_at <= now)))
            if ids:
                session.execute(delete(JobCallbackRow).where(JobCallbackRow.job_id.in_(ids)))
                session.execute(delete(JobRow).where(JobRow.id.in_(ids)))
            return ids

    def existing_ids(self, ids: list[str]) -> set[str]:
        """Which of ``ids`` are jobs in the database."""
        if not ids:
            return set()
        with Session(self._engine) as session:
            return set(session.scalars(select(JobRow.id).where(JobRow.id.in_(ids))))

    # --- callbacks --------------------------------------------------------------------------------

    def _callback_due(self, now: dt.datetime) -> ColumnElement[bool]:
        return and_(
            JobCallbackRow.status == "PENDING",
            JobCallbackRow.next_attempt_at <= now,
            lease_free(JobCallbackRow.lease_owner, JobCallbackRow.lease_expires_at, now),
        )

    def claim_due_callback(
        self, owner: str, now: dt.datetime, lease_s: float, skip: Collection[str] = ()
    ) -> CallbackRecord | None:
        """Claim the earliest due pending callback nobody holds, leased to ``owner`` for ``lease_s``;
        None when none is due. Each due callback goes to one caller, across processes. ``skip``: job ids
        the caller is delivering already (their lease may have run out meanwhile: not claimed again)."""
        due = self._callback_due(now)
        if skip:
            due = and_(due, JobCallbackRow.job_id.not_in(list(skip)))
        candidate = (
            select(JobCallbackRow.job_id).where(due).order_by(JobCallbackRow.next_attempt_at, JobCallbackRow.job_id)
        )
        values = {"lease_owner": owner, "lease_expires_at": now + dt.timedelta(seconds=lease_s)}
        with Session(self._engine) as session, session.begin():
            job_id = claim_first(session, JobCallbackRow.job_id, candidate, due, values)
            row = None if job_id is None else session.get(JobCallbackRow, job_id)
            return None if row is None else _callback_record(row)

    def next_callback_due(self, now: dt.datetime) -> dt.datetime | None:
        """When the earliest pending callback becomes claimable (its due time, or the end of the lease
        another process holds on it), or None when none is pending."""
        with Session(self._engine) as session:
            rows = session.execute(
                select(JobCallbackRow.next_attempt_at, JobCallbackRow.lease_expires_at)
                .where(JobCallbackRow.status == "PENDING")
                .order_by(JobCallbackRow.next_attempt_at)
                .limit(100)
            ).all()
        times = [max(due, lease) if lease is not None and lease > now else due for due, lease in rows]
        return min(times) if times else None

    def hold_callback(self, job_id: str, *, owner: str, attempts: int, now: dt.datetime, lease_s: float) -> bool:
        """Just before a POST: confirm that ``owner`` still holds the PENDING callback as claimed (after
        ``attempts`` attempts) and extend its lease to ``now + lease_s``. False when it does not (its
        lease ran out and another process took it over, or it was already delivered): then the POST must
        not be sent, or the receiver would get it twice."""
        with Session(self._engine) as session, session.begin():
            result = session.execute(
                update(JobCallbackRow)
                .where(
                    JobCallbackRow.job_id == job_id,
                    JobCallbackRow.status == "PENDING",
                    JobCallbackRow.attempts == attempts,
                    lease_held(JobCallbackRow.lease_owner, owner),
                )
                .values(lease_expires_at=now + dt.timedelta(seconds=lease_s))
            )
            return int(result.rowcount) == 1  # type: ignore[attr-defined]

    def record_callback_attempt(
        self,
        job_id: str,
        *,
        owner: str,
        delivered: bool,
        now: dt.datetime,
        error: str | None,
        retry_at: dt.datetime | None,
    ) -> bool:
        """Count one delivery attempt of the callback ``owner`` holds: DELIVERED, PENDING again at
        ``retry_at``, or FAILED (given up) when ``retry_at`` is None; the lease ends. False when the
        lease was lost meanwhile (another process took the callback over: it counts its own attempt)."""
        if delivered:
            values: dict[str, Any] = {"status": "DELIVERED", "delivered_at": now, "last_error": None}
        elif retry_at is not None:
            values = {"status": "PENDING", "next_attempt_at": retry_at, "last_error": error}
        else:
            values = {"status": "FAILED", "last_error": error}
        with Session(self._engine) as session, session.begin():
            result = session.execute(
                update(JobCallbackRow)
                .where(JobCallbackRow.job_id == job_id, lease_held(JobCallbackRow.lease_owner, owner))
                .values(attempts=JobCallbackRow.attempts + 1, lease_owner=None, lease_expires_at=None, **values)
            )
            return int(result.rowcount) == 1  # type: ignore[attr-defined]

    def release_callbacks(self, owner: str) -> int:
        """End ``owner``'s leases on PENDING callbacks (a stopping process whose deliveries were cut short):
        another process sends them at once. Returns how many."""
        with Session(self._engine) as session, session.begin():
            result = session.execute(
                update(JobCallbackRow)
                .where(JobCallbackRow.status == "PENDING", lease_held(JobCallbackRow.lease_owner, owner))
                .values(lease_owner=None, lease_expires_at=None)
            )
            return int(result.rowcount)  # type: ignore[attr-defined]

    def callback(self, job_id: str) -> CallbackRecord | None:
        """The callback of ``job_id``, if it has one."""
        with Session(self._engine) as session:
            row = session.get(JobCallbackRow, job_id)
            return None if row is None else _callback_record(row)

    # --- webhook secrets --------------------------------------------------------------------------

    def webhook_secret(self, account_id: str) -> str:
        """The account's webhook secret, created (once, also under concurrent first calls) when missing."""
        with Session(self._engine) as session:
            row = session.get(WebhookSecretRow, account_id)
            if row is not None:
                return row.secret
        try:
            with Session(self._engine) as session, session.begin():
                session.add(
                    WebhookSecretRow(
                        account_id=account_id,
                        secret="whsec_" + secrets.token_urlsafe(32),
                        created_at=dt.datetime.now(dt.UTC),
                    )
                )
        except IntegrityError:
            pass  # another caller created it first: use theirs
        with Session(self._engine) as session:
            row = session.get(WebhookSecretRow, account_id)
            assert row is not None
            return row.secret


class JobFiles:
    """Each job's folder ``jobs/<job_id>/`` in the object store: ``source`` (the submitted image's bytes,
    kept until the job ends) and ``images.json`` (the base64 outputs of a ``bytes`` result, kept until the
    job expires). ``objects`` may also be a folder (a local store rooted there, without ``jobs/``)."""

    SOURCE = "source"
    IMAGES = "images.json"

    def __init__(self, objects: ObjectStore | Path, folder: str = "jobs/") -> None:
        self.objects: ObjectStore = LocalObjectStore(objects) if isinstance(objects, Path) else objects
        self.folder = "" if isinstance(objects, Path) else folder

    def prefix(self, job_id: str) -> str:
        """The job's folder in the store (``ValueError`` for anything that is not a job id)."""
        if not job_id.startswith("job_") or not job_id[4:].isalnum():
            raise ValueError(f"not a job id: {job_id!r}")
        return f"{self.folder}{job_id}/"

    def save_source(self, job_id: str, data: bytes) -> None:
        self.objects.put(self.prefix(job_id) + self.SOURCE, data)

    def read_source(self, job_id: str) -> bytes:
        data = self.objects.get(self.prefix(job_id) + self.SOURCE)
        if data is None:
            raise FileNotFoundError(f"the submitted image of {job_id} is gone")
        return data

    def remove_source(self, job_id: str) -> None:
        """Drop the submitted image (the job has ended); a ``bytes`` result stays."""
        self.objects.delete(self.prefix(job_id) + self.SOURCE)

    def save_images(self, job_id: str, images: list[str]) -> None:
        self.objects.put(self.prefix(job_id) + self.IMAGES, json.dumps(images).encode(), "application/json")

    def read_images(self, job_id: str) -> list[str]:
        data = self.objects.get(self.prefix(job_id) + self.IMAGES)
        if data is None:
            return []
        return [str(image) for image in json.loads(data)]

    def remove(self, job_id: str) -> None:
        self.objects.delete_prefix(self.prefix(job_id))

    def _newest_by_job(self) -> dict[str, float]:
        newest: dict[str, float] = {}
        for item in self.objects.list(self.folder):
            job_id = item.key[len(self.folder) :].split("/", 1)[0]
            if job_id.startswith("job_"):
                newest[job_id] = max(newest.get(job_id, 0.0), item.modified)
        return newest

    def orphans(self, known: set[str], min_age_s: float) -> list[str]:
        """Job folders untouched for ``min_age_s`` whose id is not in ``known`` (a submit that crashed
        before its row was stored, or a job deleted while its folder was being written)."""
        cutoff = time.time() - min_age_s
        newest = self._newest_by_job()
        return [job_id for job_id, modified in newest.items() if job_id not in known and modified < cutoff]

    def job_ids_on_disk(self) -> list[str]:
        return list(self._newest_by_job())
