"""The SQLAlchemy database: SQLite in the data directory by default, any SQLAlchemy URL otherwise
(PostgreSQL for several service processes: ``postgresql+psycopg://...``).

The schema is owned by the Alembic migrations in ``server/storage/migrations``: ``create_database``
brings any database to the newest revision before the service uses it. A database made by the first
release (tables from ``create_all``, no ``alembic_version`` table) is stamped with the release's
revision, then upgraded in place, keeping its rows. Concurrent starts on one database migrate once:
PostgreSQL serialises them with an advisory lock, SQLite with a lock file beside the database.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.orm import DeclarativeBase

logger = logging.getLogger(__name__)

# The revision whose schema the first release created with ``create_all``.
RELEASE_REVISION = "0001"
# Any fixed 64-bit number: the PostgreSQL advisory lock that serialises migrations.
_MIGRATION_LOCK_ID = 0x6E68616E6365


class Base(DeclarativeBase):
    """Declarative base of every table (accounts, profiles, jobs, callbacks, secrets)."""


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    # Several processes may share the file: wait for a writer rather than fail at once.
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _alembic_config(connection: Connection):  # type: ignore[no-untyped-def]
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", "server.storage:migrations")
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest schema revision this code knows."""
    from alembic.script import ScriptDirectory

    config = _alembic_config(None)  # type: ignore[arg-type]
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The database's schema revision (None: no migration ever ran on it)."""
    from alembic.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


@contextlib.contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": _MIGRATION_LOCK_ID})
            connection.commit()
            try:
                yield
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": _MIGRATION_LOCK_ID})
                connection.commit()
        return
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:":
        yield
        return
    with open(f"{database}.migrate-lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def migrate(engine: Engine) -> None:
    """Bring the database to the newest revision: stamp a first-release database, then upgrade."""
    from alembic import command

    with _migration_lock(engine):
        with engine.connect() as connection:
            tables = set(inspect(connection).get_table_names())
        with engine.begin() as connection:
            config = _alembic_config(connection)
            if "alembic_version" not in tables and "accounts" in tables:
                logger.info("database from the first release: stamping revision %s, then upgrading", RELEASE_REVISION)
                command.stamp(config, RELEASE_REVISION)
        with engine.begin() as connection:
            command.upgrade(_alembic_config(connection), "head")


def create_database(url: str | None, data_dir: Path) -> Engine:
    """An engine for ``url`` (default: ``sqlite:///<data_dir>/enhance.db``), migrated to the newest schema."""
    if url is None:
        data_dir.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{(data_dir / 'enhance.db').resolve()}"
    engine = create_engine(url, pool_pre_ping=True)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    migrate(engine)
    return engine
