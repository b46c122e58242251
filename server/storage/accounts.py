"""Accounts and their API keys. Only SHA-256 hashes of keys are stored.

Two kinds of keys open an account: the operator's ``ENHANCE_API_KEYS`` (each its own account, read
at start) and named keys managed at run time with ``python -m server keys create|list|revoke`` (table
``api_keys``). Named keys are looked up in the database with a short-lived cache
(``key_cache_ttl_s``), so a key created or revoked by any process takes effect on every process
within that time, without a restart."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import DateTime, Engine, String, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from server.storage.database import Base

logger = logging.getLogger(__name__)

DEV_KEY_FILE = "dev-api-key"
NAMED_KEY_PREFIX = "phk_"
# The cache holds at most this many key hashes (unknown keys included) before it starts over, so a
# client trying random keys cannot grow it without bound.
_CACHE_MAX_ENTRIES = 10_000
# last_used_at is written at most this often per key (a write per request would serialise them).
_LAST_USED_RESOLUTION_S = 60.0


class AccountRow(Base):
    __tablename__ = "accounts"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class ApiKeyRow(Base):
    """A named key made by ``python -m server keys create``: its hash, never the key itself."""

    __tablename__ = "api_keys"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    account_id: Mapped[str] = mapped_column(String(32), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


@dataclass(frozen=True)
class Account:
    """The caller of a request, as resolved from its API key."""

    id: str


@dataclass(frozen=True)
class NamedKey:
    """One row of ``keys list``."""

    name: str
    account_id: str
    created_at: dt.datetime
    last_used_at: dt.datetime | None
    revoked_at: dt.datetime | None


class KeyNameTakenError(ValueError):
    """Raised by :meth:`KeyAdmin.create` when a key of that name exists (revoked ones included)."""


class UnknownAccountError(LookupError):
    """Raised by :meth:`KeyAdmin.create` when asked to add a key to an account that does not exist."""


class UnknownKeyError(LookupError):
    """Raised by :meth:`KeyAdmin.revoke` for a name no key has."""


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _account_id(key_hash: str) -> str:
    # Stable across restarts for the same key, and reveals nothing about it.
    return "acct_" + hashlib.sha256(f"account:{key_hash}".encode()).hexdigest()[:20]


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    # SQLite hands back naive datetimes; every stored time is UTC.
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=dt.UTC)


class AccountRegistry:
    """The accounts the service accepts: the configured keys (kept in memory, persisted in
    ``accounts``) and the named keys of ``api_keys`` (looked up through a cache of ``cache_ttl_s``)."""

    def __init__(self, engine: Engine, keys: list[str], *, cache_ttl_s: float = 2.0) -> None:
        self._engine = engine
        self._cache_ttl_s = cache_ttl_s
        self._by_hash: dict[str, Account] = {}
        # key hash -> (account or None for unknown/revoked, monotonic time of the lookup)
        self._cache: dict[str, tuple[Account | None, float]] = {}
        self._last_used_written: dict[str, float] = {}
        self._lock = threading.Lock()
        now = dt.datetime.now(dt.UTC)
        with Session(engine) as session, session.begin():
            for key in keys:
                key_hash = hash_api_key(key)
                row = session.scalar(select(AccountRow).where(AccountRow.key_hash == key_hash))
                if row is None:
                    row = AccountRow(id=_account_id(key_hash), key_hash=key_hash, created_at=now)
                    session.add(row)
                self._by_hash[key_hash] = Account(id=row.id)

    def authenticate(self, key: str | None) -> Account | None:
        """The account owning ``key``, or None when the key is missing, unknown or revoked. May query
        the database (call it off the event loop)."""
        if not key:
            return None
        key_hash = hash_api_key(key)
        configured = self._by_hash.get(key_hash)
        if configured is not None:
            return configured
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(key_hash)
        if cached is not None and now - cached[1] < self._cache_ttl_s:
            account = cached[0]
        else:
            account = self._lookup(key_hash)
            with self._lock:
                if len(self._cache) >= _CACHE_MAX_ENTRIES:
                    self._cache.clear()
                self._cache[key_hash] = (account, now)
        if account is not None:
            self._touch(key_hash, now)
        return account

    def _lookup(self, key_hash: str) -> Account | None:
        with Session(self._engine) as session:
            row = session.scalar(
                select(ApiKeyRow).where(ApiKeyRow.key_hash == key_hash, ApiKeyRow.revoked_at.is_(None))
            )
            return None if row is None else Account(id=row.account_id)

    def _touch(self, key_hash: str, now: float) -> None:
        with self._lock:
            last = self._last_used_written.get(key_hash)
            if last is not None and now - last < _LAST_USED_RESOLUTION_S:
                return
            if len(self._last_used_written) >= _CACHE_MAX_ENTRIES:
                self._last_used_written.clear()
            self._last_used_written[key_hash] = now
        try:
            with Session(self._engine) as session, session.begin():
                session.execute(
                    update(ApiKeyRow).where(ApiKeyRow.key_hash == key_hash).values(last_used_at=dt.datetime.now(dt.UTC))
                )
        except Exception:  # last use is informative: never fail a request over it
            logger.warning("could not record the last use of a key", exc_info=True)


class KeyAdmin:
    """Creates, lists and revokes named keys (``python -m server keys``)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def create(self, name: str, account_id: str | None = None) -> tuple[str, str]:
        """A new key named ``name``; returns (key, account id). The key is returned once and only its
        hash is stored. ``account_id`` adds the key to an existing account (key rotation); by default
        the key opens an account of its own. Raises ``KeyNameTakenError``, ``UnknownAccountError``."""
        if not name or len(name) > 128:
            raise ValueError("a key name has 1 to 128 characters")
        key = NAMED_KEY_PREFIX + secrets.token_urlsafe(32)
        key_hash = hash_api_key(key)
        account = account_id or _account_id(key_hash)
        now = dt.datetime.now(dt.UTC)
        try:
            with Session(self._engine) as session, session.begin():
                if account_id is None:
                    # The account row other tables (jobs, profiles, webhook secrets) refer to.
                    session.add(AccountRow(id=account, key_hash=key_hash, created_at=now))
                elif session.get(AccountRow, account_id) is None:
                    raise UnknownAccountError(f"no account {account_id!r}")
                session.flush()
                session.add(
                    ApiKeyRow(name=name, key_hash=key_hash, account_id=account, created_at=dt.datetime.now(dt.UTC))
                )
        except IntegrityError:
            raise KeyNameTakenError(f"a key named {name!r} already exists") from None
        return key, account

    def list(self) -> list[NamedKey]:
        """Every named key, oldest first (revoked ones included, marked)."""
        with Session(self._engine) as session:
            rows = session.scalars(select(ApiKeyRow).order_by(ApiKeyRow.created_at, ApiKeyRow.name)).all()
            return [
                NamedKey(
                    name=row.name,
                    account_id=row.account_id,
                    created_at=_utc(row.created_at),  # type: ignore[arg-type]
                    last_used_at=_utc(row.last_used_at),
                    revoked_at=_utc(row.revoked_at),
                )
                for row in rows
            ]

    def revoke(self, name: str) -> bool:
        """Revoke the key ``name``; False when it was already revoked. Every process refuses it within
        its cache lifetime. Raises ``UnknownKeyError``."""
        with Session(self._engine) as session, session.begin():
            row = session.get(ApiKeyRow, name)
            if row is None:
                raise UnknownKeyError(f"no key named {name!r}")
            if row.revoked_at is not None:
                return False
            row.revoked_at = dt.datetime.now(dt.UTC)
            return True


def load_or_create_dev_key(data_dir: Path) -> tuple[str, bool]:
    """The development key kept in ``data_dir`` (created on first call). Returns (key, created)."""
    path = data_dir / DEV_KEY_FILE
    if path.exists():
        return path.read_text().strip(), False
    data_dir.mkdir(parents=True, exist_ok=True)
    key = "dev_" + secrets.token_urlsafe(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    return key, True
