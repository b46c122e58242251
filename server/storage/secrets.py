"""The service's own secrets in the database (URL signing secret, development API key), so that every
process on one database signs and accepts the same way. The first release kept them as files in the
data directory; such a file is read once, when the database has no value yet, and its value kept."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import DateTime, Engine, String, Text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from server.storage.database import Base

logger = logging.getLogger(__name__)

URL_SIGNING_SECRET = "url-signing-secret"
DEVELOPMENT_API_KEY = "development-api-key"


class ServiceSecretRow(Base):
    """One named secret of the service (kept in clear: the service needs the value itself)."""

    __tablename__ = "service_secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class ServiceSecrets:
    """Named secrets shared by every process on the database. Blocking."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def get(self, name: str) -> str | None:
        with Session(self._engine) as session:
            row = session.get(ServiceSecretRow, name)
            return None if row is None else row.value

    def get_or_create(self, name: str, make: Callable[[], str], legacy_file: Path | None = None) -> tuple[str, bool]:
        """The secret ``name``; when the database has none yet, the content of ``legacy_file`` (a file of
        the first release) or else ``make()`` is stored first. Concurrent first calls from several
        processes agree on one value. Returns (value, True when this call created it)."""
        existing = self.get(name)
        if existing is not None:
            return existing, False
        value = None
        if legacy_file is not None and legacy_file.is_file():
            value = legacy_file.read_text().strip() or None
            if value is not None:
                logger.info("moving %s from %s into the database", name, legacy_file)
        created = value is None
        try:
            with Session(self._engine) as session, session.begin():
                session.add(ServiceSecretRow(name=name, value=value or make(), created_at=dt.datetime.now(dt.UTC)))
        except IntegrityError:
            created = False  # another process stored it first: theirs wins
        stored = self.get(name)
        assert stored is not None
        return stored, created
