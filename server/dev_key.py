"""``python -m server --dev-key``: print the development key of the service's database.

The key goes alone to stdout (``KEY=$(python -m server --dev-key)``); stderr says which database it
came from (the absolute path of the SQLite file, or the URL without its password), and warns when
that database did not exist before this command made it: a key from a new, empty database is not the
key of a service started elsewhere (run from another folder, ``data/`` is another database)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from sqlalchemy import create_engine, inspect
from sqlalchemy.engine import make_url

from server.settings import Settings
from server.storage import create_database, load_or_create_dev_key

DATABASE_FILE = "enhance.db"


def database_location(settings: Settings) -> tuple[str, Path | None]:
    """Where the service's database is, as an operator would find it: the absolute path of the SQLite
    file (also returned as a path), or the URL with its password hidden (and no path)."""
    if settings.database_url is None:
        path = (settings.data_dir / DATABASE_FILE).resolve()
        return str(path), path
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        path = Path(url.database).resolve()
        return str(path), path
    return url.render_as_string(hide_password=True), None


def database_exists(settings: Settings) -> bool:
    """Whether the service's database holds the service's tables already (a SQLite file is not opened
    when it is absent, so asking creates nothing)."""
    _, path = database_location(settings)
    if path is not None and (not path.exists() or path.stat().st_size == 0):
        return False
    url = settings.database_url or f"sqlite:///{path}"
    engine = create_engine(url)
    try:
        return "accounts" in inspect(engine).get_table_names()
    finally:
        engine.dispose()


def print_dev_key(settings: Settings, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Print the development key (read, or created when missing) to ``out`` and where it is kept to
    ``err``, with a warning when the database was created just now. Returns the exit status (0)."""
    where, _ = database_location(settings)
    existed = database_exists(settings)
    database = create_database(settings.database_url, settings.data_dir)
    try:
        key, created = load_or_create_dev_key(database, settings.data_dir)
    finally:
        database.dispose()
    print(key, file=out)
    if not existed and created:
        print(
            f"warning: created a new, empty database for this key: {where}\n"
            "  A service that keeps its data elsewhere (started from another folder, or with another "
            "ENHANCE_DATA_DIR) has its own database and refuses this key (401).\n"
            "  Run this command from the folder you start the service in, or set ENHANCE_DATA_DIR to the "
            "service's data folder (or ENHANCE_DATABASE_URL to its database).",
            file=err,
        )
    elif created:
        print(
            f"development key created in the database {where} (it had none: its service runs with "
            "ENHANCE_API_KEYS, or has not started yet); a service reads it when it starts without ENHANCE_API_KEYS",
            file=err,
        )
    else:
        print(f"development key read from the database {where}", file=err)
    if settings.api_key_list:
        print(
            "note: ENHANCE_API_KEYS is set here; a service started with it accepts those keys, not this one",
            file=err,
        )
    return 0
