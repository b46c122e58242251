"""Accounts and their API keys. Only SHA-256 hashes of keys are stored."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import secrets
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import DateTime, Engine, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from server.storage.database import Base
from server.storage.secrets import DEVELOPMENT_API_KEY, ServiceSecrets

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


def load_or_create_dev_key(engine: Engine, data_dir: Path) -> tuple[str, bool]:
    """The development key, kept in the database so every process on it accepts the same key (created
    on first call; a ``dev-api-key`` file of the first release in ``data_dir`` is taken over once).
    Returns (key, created)."""
    return ServiceSecrets(engine).get_or_create(
        DEVELOPMENT_API_KEY, lambda: "dev_" + secrets.token_urlsafe(24), legacy_file=data_dir / DEV_KEY_FILE
    )
