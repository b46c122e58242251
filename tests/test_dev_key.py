"""``python -m server --dev-key``: the key alone on stdout, the database it came from (absolute path) on
stderr, a warning with what to do when that database was created just now, and no Alembic lines."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from server.dev_key import database_location, print_dev_key
from server.settings import Settings
from server.storage import create_database, load_or_create_dev_key
from tests.live_server import REPO_ROOT


def _run_dev_key(cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {name: value for name, value in os.environ.items() if not name.startswith("ENHANCE_")}
    environment.update(PYTHONPATH=str(REPO_ROOT), **env)
    return subprocess.run(
        [sys.executable, "-m", "server", "--dev-key"],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _dev_key(settings: Settings) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    assert print_dev_key(settings, out=out, err=err) == 0
    return out.getvalue(), err.getvalue()


def test_dev_key_from_another_folder_names_the_new_database_and_warns(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    first = _run_dev_key(photos)
    assert first.returncode == 0, first.stderr
    key = first.stdout.strip()
    assert first.stdout == key + "\n" and key.startswith("dev_")  # KEY=$(python -m server --dev-key) works
    database = str(photos / "data" / "enhance.db")
    assert f"created a new, empty database for this key: {database}" in first.stderr
    assert "ENHANCE_DATA_DIR" in first.stderr and "folder you start the service in" in first.stderr
    # Migrations ran (a new database), yet nothing of Alembic's reaches the terminal.
    assert "alembic" not in first.stderr and " INFO " not in first.stderr
    again = _run_dev_key(photos)
    assert again.stdout.strip() == key
    assert f"development key read from the database {database}" in again.stderr
    assert "warning" not in again.stderr and "alembic" not in again.stderr


def test_dev_key_of_the_services_data_dir_is_the_services_key(tmp_path: Path) -> None:
    service_data = tmp_path / "service" / "data"
    engine = create_database(None, service_data)
    service_key, _ = load_or_create_dev_key(engine, service_data)  # what the service did at its first start
    engine.dispose()
    out, err = _dev_key(Settings(data_dir=service_data))
    assert out.strip() == service_key
    assert err == f"development key read from the database {service_data.resolve() / 'enhance.db'}\n"


def test_dev_key_added_to_a_database_that_had_none_says_so_without_the_new_database_warning(tmp_path: Path) -> None:
    create_database(None, tmp_path).dispose()  # a service on ENHANCE_API_KEYS never stored a development key
    out, err = _dev_key(Settings(data_dir=tmp_path))
    assert out.startswith("dev_")
    assert "development key created in the database" in err and "ENHANCE_API_KEYS" in err
    assert "new, empty" not in err


def test_dev_key_notes_that_configured_api_keys_replace_it(tmp_path: Path) -> None:
    _, err = _dev_key(Settings(data_dir=tmp_path, api_keys="ci-key"))
    assert "ENHANCE_API_KEYS is set here" in err


def test_database_location_is_the_file_the_service_opens(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    relative = Settings(data_dir=Path("data"))
    where, path = database_location(relative)
    engine = create_database(relative.database_url, relative.data_dir)
    assert path is not None and path.is_absolute() and engine.url.database == str(path) == where
    engine.dispose()
    by_url = Settings(database_url="sqlite:///elsewhere/x.db")
    assert database_location(by_url) == (str(tmp_path / "elsewhere" / "x.db"), tmp_path / "elsewhere" / "x.db")


def test_database_location_hides_a_url_password() -> None:
    where, path = database_location(
        Settings(database_url="postgresql+psycopg://enhance:s3cret@db.internal:5432/enhance")
    )
    assert path is None
    assert "s3cret" not in where and where.startswith("postgresql+psycopg://enhance:***@db.internal:5432/enhance")
