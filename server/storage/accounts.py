"""Accounts and their API keys. Only SHA-256 hashes of keys are stored."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import DateTime, Engine, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from server.storage.database import Base

logger = logging.getLogger(__name__)

DEV_KEY_FILE = "dev-api-key"


class AccountRow(Base):
    __tablename__ = "accounts"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


@dataclass(frozen=True)
class Account:
    """The caller of a request, as resolved from its API key."""

    id: str


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _account_id(key_hash: str) -> str:
    # Stable across restarts for the same key, and reveals nothing about it.
    return "acct_" + hashlib.sha256(f"account:{key_hash}".encode()).hexdigest()[:20]


class AccountRegistry:
    """The accounts the service accepts, keyed by key hash; persisted in the database."""

    def __init__(self, engine: Engine, keys: list[str]) -> None:
        self._by_hash: dict[str, Account] = {}
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
        """The account owning ``key``, or None when the key is missing or unknown."""
        if not key:
            return None
        return self._by_hash.get(hash_api_key(key))


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
