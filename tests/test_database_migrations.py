"""Schema migrations on SQLite and a real PostgreSQL server: a database made by the first release
(``create_all``, no ``alembic_version``; dumped into tests/data by that release's code) upgrades in place
at start and keeps its rows; the migrations build exactly the schema the models describe; the secrets
that were files move into the database."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, create_engine, inspect, text
from sqlalchemy.engine import make_url

from server.storage import AccountRegistry, JobStore, ProfileStore, ServiceSecrets, create_database
from server.storage.accounts import load_or_create_dev_key
from server.storage.database import Base, current_revision, head_revision

DATA = Path(__file__).resolve().parent / "data"
RELEASE_ACCOUNT_KEY = "release-key-a"
NOW = dt.datetime(2026, 6, 2, 12, 0, tzinfo=dt.UTC)


def load_release_database(url: str) -> None:
    """Recreate the first release's database at ``url`` from its dump (schema and rows)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        with sqlite3.connect(parsed.database or "") as connection:
            connection.executescript((DATA / "release-0.1-sqlite.sql").read_text())
        return
    import psycopg

    dsn = f"host={parsed.host} port={parsed.port} user={parsed.username} dbname={parsed.database}"
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute((DATA / "release-0.1-postgresql.sql").read_text())  # type: ignore[arg-type]


def test_first_release_database_upgrades_in_place_and_keeps_its_rows(database_url: str, tmp_path: Path) -> None:
    load_release_database(database_url)
    probe = create_engine(database_url)
    assert "alembic_version" not in inspect(probe).get_table_names()
    probe.dispose()

    engine = create_database(database_url, tmp_path)
    try:
        assert current_revision(engine) == head_revision()
        account = AccountRegistry(engine, [RELEASE_ACCOUNT_KEY]).authenticate(RELEASE_ACCOUNT_KEY)
        assert account is not None
        store = JobStore(engine)
        done = store.find_by_client_request(account.id, "release-done")
        assert done is not None and done.status == "SUCCEEDED" and done.result is not None
        assert store.callback(done.id) is not None
        queued = store.find_by_client_request(account.id, "release-queued")
        assert queued is not None and queued.status == "QUEUED"
        assert store.webhook_secret(account.id).startswith("whsec_")
        # The job the release left RUNNING has no lease: it is claimed at once, the attempt counted.
        claimed = [store.claim_next("host/1/a", NOW, 30.0) for _ in range(3)]
        by_id = {job.id: job for job in claimed if job is not None}
        assert queued.id in by_id and len(by_id) == 2
        running_then = next(job for job in by_id.values() if job.id != queued.id)
        assert running_then.attempts == 2
        profiles = ProfileStore(engine, tmp_path / "profiles")
        ids = profiles.ids(account.id)
        assert len(ids) == 2
        ready = profiles.ready_embeddings(account.id, ids)
        embeddings = [value for status, value in ready.values() if status == "READY"]
        assert len(embeddings) == 1 and embeddings[0] is not None
        expected = np.random.default_rng(0).standard_normal((2, 128)).astype(np.float32)
        np.testing.assert_array_equal(embeddings[0], expected)
    finally:
        engine.dispose()
    again = create_database(database_url, tmp_path)  # a second start finds nothing to do
    assert current_revision(again) == head_revision()
    again.dispose()


def test_migrations_build_exactly_the_schema_of_the_models(database_url: str, tmp_path: Path) -> None:
    engine = create_database(database_url, tmp_path)
    try:
        with engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
        assert differences == []
    finally:
        engine.dispose()


def test_concurrent_starts_on_one_new_database_migrate_once(database_url: str, tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(3) as pool:
        engines = list(pool.map(lambda _: create_database(database_url, tmp_path), range(3)))
    try:
        with engines[0].connect() as connection:
            versions = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
        assert versions == [head_revision()]
    finally:
        for engine in engines:
            engine.dispose()


def test_secret_files_of_the_first_release_move_into_the_database(database_url: str, tmp_path: Path) -> None:
    (tmp_path / "dev-api-key").write_text("dev_from-the-old-file\n")
    engine = create_database(database_url, tmp_path)
    try:
        assert load_or_create_dev_key(engine, tmp_path) == ("dev_from-the-old-file", False)
        (tmp_path / "dev-api-key").unlink()
        # Another replica, with its own (empty) data directory, gets the same key from the database.
        assert load_or_create_dev_key(engine, tmp_path / "elsewhere") == ("dev_from-the-old-file", False)
    finally:
        engine.dispose()


def test_a_new_secret_is_created_once_under_concurrent_first_calls(database: Engine) -> None:
    from concurrent.futures import ThreadPoolExecutor

    secrets_store = ServiceSecrets(database)
    counter = iter(range(100))
    with ThreadPoolExecutor(6) as pool:
        outcomes = list(pool.map(lambda _: secrets_store.get_or_create("probe", lambda: f"v{next(counter)}"), range(6)))
    assert len({value for value, _ in outcomes}) == 1
    assert sum(created for _, created in outcomes) == 1


@pytest.fixture
def database(database_url: str, tmp_path: Path) -> Engine:
    return create_database(database_url, tmp_path)
