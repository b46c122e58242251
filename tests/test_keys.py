"""Named API keys: ``python -m server keys``, hashes at rest, revocation on every process within seconds."""

from __future__ import annotations

import io
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine

from server import Settings
from server.keys import run_keys_command
from server.storage import (
    AccountRegistry,
    KeyAdmin,
    KeyNameTakenError,
    UnknownAccountError,
    UnknownKeyError,
    create_database,
    hash_api_key,
)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def database(tmp_path: Path) -> Engine:
    return create_database(None, tmp_path)


def test_created_key_authenticates_and_only_its_hash_is_stored(tmp_path: Path, database: Engine) -> None:
    key, account = KeyAdmin(database).create("ci-pipeline")
    registry = AccountRegistry(database, [], cache_ttl_s=0.2)
    resolved = registry.authenticate(key)
    assert resolved is not None and resolved.id == account
    raw = (tmp_path / "enhance.db").read_bytes() + b"".join(
        p.read_bytes() for p in tmp_path.glob("enhance.db-*") if p.is_file()
    )
    assert key.encode() not in raw
    rows = sqlite3.connect(tmp_path / "enhance.db").execute("select key_hash from api_keys").fetchall()
    assert rows == [(hash_api_key(key),)]


def test_revoked_key_is_refused_by_another_registry_within_its_cache_lifetime(database: Engine) -> None:
    admin = KeyAdmin(database)
    key, _ = admin.create("mobile-app")
    other_process = AccountRegistry(database, [], cache_ttl_s=0.5)
    assert other_process.authenticate(key) is not None
    assert admin.revoke("mobile-app") is True
    deadline = time.monotonic() + 0.5 + 2.0  # the cache lifetime, and slack for a loaded machine
    while other_process.authenticate(key) is not None:
        assert time.monotonic() < deadline, "the revoked key was still accepted after the cache lifetime"
        time.sleep(0.05)
    assert admin.revoke("mobile-app") is False


def test_key_created_after_start_is_accepted_without_a_restart(database: Engine) -> None:
    registry = AccountRegistry(database, ["env-key-1"], cache_ttl_s=0.2)
    assert registry.authenticate("phk_not_yet") is None
    key, _ = KeyAdmin(database).create("late")
    time.sleep(0.25)
    assert registry.authenticate(key) is not None
    assert registry.authenticate("env-key-1") is not None


def test_rotation_key_joins_an_existing_account(database: Engine) -> None:
    admin = KeyAdmin(database)
    old, account = admin.create("v1")
    new, same = admin.create("v2", account_id=account)
    registry = AccountRegistry(database, [], cache_ttl_s=0.1)
    assert same == account
    assert registry.authenticate(old) == registry.authenticate(new)


def test_duplicate_name_and_unknown_revoke_are_refused(database: Engine) -> None:
    admin = KeyAdmin(database)
    admin.create("dup")
    with pytest.raises(KeyNameTakenError):
        admin.create("dup")
    with pytest.raises(UnknownKeyError):
        admin.revoke("nobody")
    with pytest.raises(UnknownAccountError):
        admin.create("orphan", account_id="acct_nobody")


def test_last_use_is_recorded_when_a_key_is_used(database: Engine) -> None:
    admin = KeyAdmin(database)
    key, _ = admin.create("used")
    admin.create("idle")
    AccountRegistry(database, [], cache_ttl_s=0.1).authenticate(key)
    rows = {row.name: row for row in admin.list()}
    assert rows["used"].last_used_at is not None
    assert rows["idle"].last_used_at is None
    assert rows["used"].created_at.tzinfo is not None


def test_keys_command_creates_lists_and_revokes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = Settings(data_dir=tmp_path)
    out = io.StringIO()
    assert run_keys_command(["create", "--name", "team-a"], settings, out) == 0
    key = out.getvalue().strip()
    assert key.startswith("phk_") and len(key) > 40
    listing = io.StringIO()
    assert run_keys_command(["list"], settings, listing) == 0
    assert "team-a" in listing.getvalue() and key not in listing.getvalue()
    assert run_keys_command(["create", "--name", "team-a"], settings, io.StringIO()) == 1
    assert run_keys_command(["revoke", "team-a"], settings, io.StringIO()) == 0
    assert run_keys_command(["revoke", "nobody"], settings, io.StringIO()) == 1
    database = create_database(None, tmp_path)
    assert AccountRegistry(database, [], cache_ttl_s=0.1).authenticate(key) is None


def test_python_m_server_keys_runs_as_a_separate_process(tmp_path: Path) -> None:
    env = {**os.environ, "ENHANCE_DATA_DIR": str(tmp_path), "PYTHONPATH": str(REPO)}
    created = subprocess.run(
        [sys.executable, "-m", "server", "keys", "create", "--name", "cli"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    key = created.stdout.strip()
    listing = subprocess.run(
        [sys.executable, "-m", "server", "keys", "list"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "cli" in listing.stdout
    database = create_database(None, tmp_path)
    assert AccountRegistry(database, [], cache_ttl_s=0.1).authenticate(key) is not None
