"""A real PostgreSQL server for the tests: Debian's ``postgresql`` package, ``initdb`` and ``pg_ctl`` run
as an unprivileged user in a temporary directory, listening on a free loopback port.

When the server binaries are missing, the fixture installs the package (``apt-get install -y
postgresql``) when it runs as root, and fails with the command to run otherwise. Each test gets its own
empty database (``PostgresServer.create_database``), dropped afterwards.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

# Debian installs the server outside PATH, under its major version.
_BIN_GLOBS = ("/usr/lib/postgresql/*/bin",)
# The account the server runs as when the tests run as root (PostgreSQL refuses to run as root).
_UNPRIVILEGED_USERS = ("postgres", "nobody")


class PostgresUnavailableError(RuntimeError):
    """Raised when no PostgreSQL server can be found or installed on this machine."""


def _find_bindir() -> Path | None:
    for pattern in _BIN_GLOBS:
        candidates = sorted(glob.glob(pattern), key=lambda path: int(Path(path).parent.name), reverse=True)
        for candidate in candidates:
            if (Path(candidate) / "initdb").exists() and (Path(candidate) / "pg_ctl").exists():
                return Path(candidate)
    on_path = shutil.which("initdb")
    if on_path is not None:
        return Path(os.path.realpath(on_path)).parent
    return None


def postgres_bindir() -> Path:
    """The directory holding ``initdb``, ``pg_ctl`` and ``postgres``; installs Debian's package when it is
    missing and this process may (root). Raises ``PostgresUnavailableError`` otherwise."""
    found = _find_bindir()
    if found is not None:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise PostgresUnavailableError(
            "PostgreSQL's server is not installed and cannot be installed from here: run "
            "`apt-get install -y postgresql` as root (the storage tests start their own server)."
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "postgresql"], check=True, env=env)
    found = _find_bindir()
    if found is None:
        raise PostgresUnavailableError("apt-get installed postgresql but no initdb was found under /usr/lib/postgresql")
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    """One PostgreSQL cluster in a temporary directory, on 127.0.0.1:``port``, trust authentication."""

    def __init__(self) -> None:
        self.bindir = postgres_bindir()
        self.port = _free_port()
        self.root = Path(tempfile.mkdtemp(prefix="enhance-pg-"))
        self.data = self.root / "data"
        self._user: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            self._user = next((pwd.getpwnam(name) for name in _UNPRIVILEGED_USERS if _has_user(name)), None)
            if self._user is None:
                raise PostgresUnavailableError("running as root and no unprivileged user (postgres, nobody) exists")
            os.chmod(self.root, 0o755)
            os.chown(self.root, self._user.pw_uid, self._user.pw_gid)
        self._databases = 0
        self._run([str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8"])
        options = f"-h 127.0.0.1 -p {self.port} -k {self.root} -c fsync=off -c max_connections=200"
        log = str(self.root / "server.log")
        self._run([str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", log, "-w", "-o", options, "start"])

    def _run(self, command: list[str]) -> None:
        if self._user is not None:
            command = ["runuser", "-u", self._user.pw_name, "--", *command]
        completed = subprocess.run(command, capture_output=True, text=True, cwd=self.root, check=False)
        if completed.returncode != 0:
            log = self.root / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise PostgresUnavailableError(
                f"{' '.join(command)} failed ({completed.returncode}): {completed.stderr.strip()}\n{tail}"
            )

    def url(self, database: str = "postgres") -> str:
        """The SQLAlchemy URL of ``database`` on this server (psycopg 3)."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def _admin(self, statement: str) -> None:
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True) as c:
            c.execute(statement)  # type: ignore[arg-type]

    def create_database(self) -> str:
        """A new empty database; returns its name."""
        self._databases += 1
        name = f"test_{os.getpid()}_{self._databases}_{int(time.time() * 1000) % 100000}"
        self._admin(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        try:
            self._run([str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"])
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True
