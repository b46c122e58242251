"""Profiles in the database, and each profile's files in the object store (:mod:`profile_files`).

A profile row holds its owner, tag, tier, status and message; once READY, its kept embeddings (float32
little-endian, K×128). Its picture (JPEG) lives in the object store (rows of older releases hold it in
the ``picture`` column, still read). The references a client submitted (URLs or inline images) are
stored durably before the row is committed; the fetched bytes of each usable reference join them while
the profile validates. They are removed when the profile is READY or ERROR: a restarted service can
build any profile it accepted. Deleting a profile deletes its row (embeddings) and its files.

Every method is blocking (SQLAlchemy and file I/O); callers on the event loop use a worker thread.
Types are portable (strings, integers, text, binary, timestamps), so SQLite and PostgreSQL both work.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from sqlalchemy import (
    ColumnElement,
    DateTime,
    Engine,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    and_,
    delete,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, deferred, mapped_column

from server.storage.database import Base
from server.storage.jobs import UTCDateTime
from server.storage.leases import claim_first, expire_dead_owners, lease_free, lease_held
from server.storage.profile_files import ProfileFiles

ProfileStatus = Literal["VALIDATING", "QUEUING", "IN_PROGRESS", "READY", "ERROR", "INACTIVE"]
UNFINISHED: tuple[ProfileStatus, ...] = ("VALIDATING", "QUEUING", "IN_PROGRESS")
EMBEDDING_DTYPE = np.dtype("<f4")
EMBEDDING_SIZE = 128
LEFTOVER_MIN_AGE_S = 60.0


def new_profile_id() -> str:
    """An opaque, URL-safe id (letters, digits, ``_``; never ``]``)."""
    return "prof_" + secrets.token_hex(12)


def _utc(value: dt.datetime) -> dt.datetime:
    # SQLite returns naive timestamps; they were written as UTC.
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


class ProfileRow(Base):
    """One profile. ``attempts`` counts builds started (an interrupted build counts)."""

    __tablename__ = "profiles"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(32), ForeignKey("accounts.id"), index=True)
    tag: Mapped[str | None] = mapped_column(String(128), index=True)
    training_tier: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), index=True)
    message: Mapped[str | None] = mapped_column(Text)
    reference_count: Mapped[int] = mapped_column(Integer)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    embeddings: Mapped[bytes | None] = deferred(mapped_column(LargeBinary))
    picture: Mapped[bytes | None] = deferred(mapped_column(LargeBinary))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    # The process building the profile and until when its lease holds (server/storage/leases.py).
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


@dataclass(frozen=True)
class ProfileRecord:
    """A profile as the service sees it (without its embeddings and picture)."""

    id: str
    account_id: str
    tag: str | None
    training_tier: str
    status: ProfileStatus
    message: str | None
    reference_count: int
    attempts: int
    created_at: dt.datetime

    @classmethod
    def of(cls, row: ProfileRow) -> ProfileRecord:
        return cls(
            id=row.id,
            account_id=row.account_id,
            tag=row.tag,
            training_tier=row.training_tier,
            status=row.status,  # type: ignore[arg-type]
            message=row.message,
            reference_count=row.reference_count,
            attempts=row.attempts,
            created_at=_utc(row.created_at),
        )


def encode_embeddings(embeddings: np.ndarray) -> bytes:
    if embeddings.ndim != 2 or embeddings.shape[1] != EMBEDDING_SIZE:
        raise ValueError(f"embeddings must be (K, {EMBEDDING_SIZE}), got {embeddings.shape}")
    return np.ascontiguousarray(embeddings, dtype=EMBEDDING_DTYPE).tobytes()


def decode_embeddings(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype=EMBEDDING_DTYPE).reshape(-1, EMBEDDING_SIZE).astype(np.float32)


class ProfileStore:
    """Profiles and their files (``files``: a :class:`ProfileFiles`, or a local folder for one)."""

    def __init__(self, engine: Engine, files: ProfileFiles | Path) -> None:
        self._engine = engine
        self.files = files if isinstance(files, ProfileFiles) else ProfileFiles(files)

    # --- creation and references ------------------------------------------------------------------

    def create(
        self, account_id: str, references: list[str], *, training_tier: str, tag: str | None, now: dt.datetime
    ) -> ProfileRecord:
        """Store the references durably, then the row (VALIDATING); returns the new profile."""
        profile_id = new_profile_id()
        self.files.save_references(profile_id, references)
        row = ProfileRow(
            id=profile_id,
            account_id=account_id,
            tag=tag,
            training_tier=training_tier,
            status="VALIDATING",
            message=None,
            reference_count=len(references),
            attempts=0,
            created_at=now,
            updated_at=now,
        )
        try:
            with Session(self._engine) as session, session.begin():
                session.add(row)
                record = ProfileRecord.of(row)
        except BaseException:
            self.files.remove(profile_id)
            raise
        return record

    def references(self, profile_id: str) -> list[str] | None:
        """The submitted references, or None when they are gone (profile deleted or finished)."""
        return self.files.references(profile_id)

    def save_reference_image(self, profile_id: str, index: int, data: bytes) -> None:
        """Keep the fetched bytes of reference ``index`` until the build ends."""
        self.files.save_reference_image(profile_id, index, data)

    def reference_image(self, profile_id: str, index: int) -> bytes | None:
        return self.files.reference_image(profile_id, index)

    # --- reads --------------------------------------------------------------------------------------

    def get(self, account_id: str, profile_id: str) -> ProfileRecord | None:
        """The account's profile ``profile_id``, or None (unknown, or another account's)."""
        with Session(self._engine) as session:
            row = session.get(ProfileRow, profile_id)
            if row is None or row.account_id != account_id:
                return None
            return ProfileRecord.of(row)

    def ids(self, account_id: str, tag: str | None = None) -> list[str]:
        """The account's profile ids, oldest first, only those tagged ``tag`` when given."""
        query = select(ProfileRow.id).where(ProfileRow.account_id == account_id)
        if tag is not None:
            query = query.where(ProfileRow.tag == tag)
        with Session(self._engine) as session:
            return list(session.scalars(query.order_by(ProfileRow.created_at, ProfileRow.id)))

    def picture(self, account_id: str, profile_id: str) -> bytes | None:
        with Session(self._engine) as session:
            row = session.get(ProfileRow, profile_id)
            if row is None or row.account_id != account_id:
                return None
            if row.picture is not None or row.status != "READY":
                return row.picture
        return self.files.picture(profile_id)

    def ready_embeddings(
        self, account_id: str, profile_ids: list[str]
    ) -> dict[str, tuple[ProfileStatus, np.ndarray | None]]:
        """For each of the account's profiles among ``profile_ids``: its status and, when READY, its
        embeddings. Unknown ids and other accounts' ids are absent."""
        if not profile_ids:
            return {}
        with Session(self._engine) as session:
            rows = session.scalars(
                select(ProfileRow).where(ProfileRow.id.in_(profile_ids), ProfileRow.account_id == account_id)
            )
            return {
                row.id: (
                    row.status,  # type: ignore[misc]
                    decode_embeddings(row.embeddings) if row.status == "READY" and row.embeddings else None,
                )
                for row in rows
            }

    def unfinished(self) -> list[ProfileRecord]:
        """Profiles whose build has not ended (all accounts), oldest first."""
        with Session(self._engine) as session:
            rows = session.scalars(
                select(ProfileRow).where(ProfileRow.status.in_(UNFINISHED)).order_by(ProfileRow.created_at)
            )
            return [ProfileRecord.of(row) for row in rows]

    # --- transitions --------------------------------------------------------------------------------

    def _claimable(self, now: dt.datetime) -> ColumnElement[bool]:
        return and_(
            ProfileRow.status.in_(UNFINISHED), lease_free(ProfileRow.lease_owner, ProfileRow.lease_expires_at, now)
        )

    def claim_next(self, owner: str, now: dt.datetime, lease_s: float) -> ProfileRecord | None:
        """Claim the oldest unfinished profile nobody holds (new, or its builder's lease ran out) for
        ``owner``: back to VALIDATING with one more attempt counted, leased until ``now + lease_s``.
        None when there is none. Each profile goes to one caller, across processes."""
        candidate = select(ProfileRow.id).where(self._claimable(now)).order_by(ProfileRow.created_at, ProfileRow.id)
        values = {
            "status": "VALIDATING",
            "attempts": ProfileRow.attempts + 1,
            "updated_at": now,
            "lease_owner": owner,
            "lease_expires_at": now + dt.timedelta(seconds=lease_s),
        }
        with Session(self._engine) as session, session.begin():
            profile_id = claim_first(session, ProfileRow.id, candidate, self._claimable(now), values)
            if profile_id is None:
                return None
            row = session.get(ProfileRow, profile_id)
            return ProfileRecord.of(row) if row is not None else None

    def renew_leases(self, owner: str, profile_ids: list[str], now: dt.datetime, lease_s: float) -> set[str]:
        """The heartbeat: extend ``owner``'s leases on its unfinished ``profile_ids``; the ids still held."""
        if not profile_ids:
            return set()
        with Session(self._engine) as session, session.begin():
            held = session.scalars(
                update(ProfileRow)
                .where(
                    ProfileRow.id.in_(profile_ids),
                    ProfileRow.status.in_(UNFINISHED),
                    lease_held(ProfileRow.lease_owner, owner),
                )
                .values(lease_expires_at=now + dt.timedelta(seconds=lease_s))
                .returning(ProfileRow.id)
            )
            return set(held)

    def release(self, owner: str, profile_ids: list[str]) -> int:
        """End ``owner``'s leases on ``profile_ids`` (a stopping process): another process may build them
        at once. Returns how many."""
        if not profile_ids:
            return 0
        with Session(self._engine) as session, session.begin():
            result = session.execute(
                update(ProfileRow)
                .where(ProfileRow.id.in_(profile_ids), lease_held(ProfileRow.lease_owner, owner))
                .values(lease_owner=None, lease_expires_at=None)
            )
            return int(result.rowcount)  # type: ignore[attr-defined]

    def expire_leases_of_dead_processes(self, me: str, now: dt.datetime) -> int:
        """End at once the leases held by processes of this host that no longer run
        (``leases.dead_local_owner``); returns how many profiles were freed."""
        with Session(self._engine) as session, session.begin():
            return expire_dead_owners(session, ProfileRow, me, now)

    def set_status(self, profile_id: str, status: ProfileStatus, now: dt.datetime, *, owner: str) -> bool:
        """Move a profile ``owner`` is building to another unfinished status; False when it is gone,
        finished, or no longer held by ``owner``."""
        with Session(self._engine) as session, session.begin():
            changed = session.execute(
                update(ProfileRow)
                .where(
                    ProfileRow.id == profile_id,
                    ProfileRow.status.in_(UNFINISHED),
                    lease_held(ProfileRow.lease_owner, owner),
                )
                .values(status=status, updated_at=now)
            )
            return changed.rowcount == 1  # type: ignore[attr-defined]

    def finish(
        self,
        profile_id: str,
        now: dt.datetime,
        *,
        owner: str,
        embeddings: np.ndarray | None = None,
        picture: bytes | None = None,
        message: str | None = None,
    ) -> bool:
        """End a build ``owner`` holds: READY with ``embeddings`` and ``picture``, or ERROR with
        ``message`` (when no embeddings are given); the references' directory is removed. False (and
        nothing changed) when the profile is gone, finished, or no longer held by ``owner``."""
        values: dict[str, object] = {
            "updated_at": now,
            "message": message,
            "lease_owner": None,
            "lease_expires_at": None,
        }
        if embeddings is not None:
            values |= {"status": "READY", "embeddings": encode_embeddings(embeddings)}
            if picture is not None:
                self.files.save_picture(profile_id, picture)  # before the row says READY
        else:
            values |= {"status": "ERROR"}
        with Session(self._engine) as session, session.begin():
            changed = session.execute(
                update(ProfileRow)
                .where(
                    ProfileRow.id == profile_id,
                    ProfileRow.status.in_(UNFINISHED),
                    lease_held(ProfileRow.lease_owner, owner),
                )
                .values(**values)
            )
        if changed.rowcount == 1:  # type: ignore[attr-defined]
            self.files.remove_build_files(profile_id)
            return True
        with Session(self._engine) as session:
            gone = session.get(ProfileRow, profile_id) is None
        if gone:
            self.files.remove(profile_id)  # deleted meanwhile: drop what this build wrote
        # else another process holds the build now: its references stay
        return False

    def delete(self, account_id: str, profile_id: str) -> bool:
        """Delete the account's profile, its embeddings, picture and references; False when unknown."""
        with Session(self._engine) as session, session.begin():
            removed = session.execute(
                delete(ProfileRow).where(ProfileRow.id == profile_id, ProfileRow.account_id == account_id)
            )
        if removed.rowcount != 1:  # type: ignore[attr-defined]
            return False
        self.files.remove(profile_id)
        return True

    def leftover_directories(self) -> list[str]:
        """Profile folders with no profile row (a create that crashed before its commit), untouched for a
        minute (a younger one may belong to a create still in progress on another replica)."""
        on_disk = sorted(self.files.profile_ids(min_age_s=LEFTOVER_MIN_AGE_S))
        if not on_disk:
            return []
        with Session(self._engine) as session:
            known = set(session.scalars(select(ProfileRow.id).where(ProfileRow.id.in_(on_disk))))
        return [name for name in on_disk if name not in known]

    def remove_directory(self, profile_id: str) -> None:
        self.files.remove(profile_id)
