"""``python -m server keys create|list|revoke``: manage named API keys without restarting the service.

The database is the service's own (``ENHANCE_DATABASE_URL``, else SQLite in ``ENHANCE_DATA_DIR``), so
a key created or revoked here takes effect on every process serving that database within
``ENHANCE_KEY_CACHE_TTL_S`` seconds."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TextIO

from server.settings import Settings, get_settings
from server.storage import KeyAdmin, KeyNameTakenError, UnknownAccountError, UnknownKeyError, create_database


def _when(value: object) -> str:
    return "-" if value is None else str(value).replace("+00:00", "Z")


def run_keys_command(argv: Sequence[str], settings: Settings | None = None, out: TextIO = sys.stdout) -> int:
    """Run one ``keys`` subcommand; its exit status (0 done, 1 refused, 2 usage)."""
    parser = argparse.ArgumentParser(prog="python -m server keys", description="Manage named API keys.")
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create", help="make a key and print it once (only its hash is stored)")
    create.add_argument("--name", required=True, help="a unique name for the key (1-128 characters)")
    create.add_argument(
        "--account", default=None, help="add the key to this existing account id (rotation); default: a new account"
    )
    commands.add_parser("list", help="names, accounts, creation, last use and revocation of every named key")
    revoke = commands.add_parser("revoke", help="refuse the key from now on (every process, within seconds)")
    revoke.add_argument("name", help="the key's name")
    args = parser.parse_args(list(argv))

    settings = settings or get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    database = create_database(settings.database_url, settings.data_dir)
    admin = KeyAdmin(database)
    try:
        if args.command == "create":
            try:
                key, account = admin.create(args.name, args.account)
            except (KeyNameTakenError, UnknownAccountError, ValueError) as error:
                print(f"error: {error}", file=sys.stderr)
                return 1
            print(key, file=out)
            print(f"created key {args.name!r} for account {account}; it is shown only this once", file=sys.stderr)
            return 0
        if args.command == "list":
            print(f"{'name':<24} {'account':<26} {'created':<33} {'last used':<33} revoked", file=out)
            for row in admin.list():
                print(
                    f"{row.name:<24} {row.account_id:<26} {_when(row.created_at):<33} "
                    f"{_when(row.last_used_at):<33} {_when(row.revoked_at)}",
                    file=out,
                )
            return 0
        try:
            revoked = admin.revoke(args.name)
        except UnknownKeyError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        print(f"revoked key {args.name!r}" if revoked else f"key {args.name!r} was already revoked", file=out)
        return 0
    finally:
        database.dispose()
