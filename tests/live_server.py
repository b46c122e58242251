"""A real service process on a free loopback port (``python -m server``), for tests that need one
over HTTP: the command-line tool's ``--url`` mode and the page in a browser."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class LiveServer:
    url: str
    key: str
    log: Path


@contextmanager
def live_server(data_dir: Path, key: str, *args: str, env: dict[str, str] | None = None) -> Iterator[LiveServer]:
    """Start ``python -m server --host 127.0.0.1 --port <free> *args`` on ``data_dir`` with one API key;
    yields once ``/readyz`` answers 200 (within 180 s), stops the process (SIGTERM) afterwards. The
    service's log is kept in ``data_dir/server.log``."""
    port = free_port()
    log = data_dir / "server.log"
    environment = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "ENHANCE_DATA_DIR": str(data_dir),
        "ENHANCE_API_KEYS": key,
        "ENHANCE_DEVICE": "cpu",
        **(env or {}),
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "server", "--host", "127.0.0.1", "--port", str(port), *args],
            cwd=REPO_ROOT,
            env=environment,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the service exited with {process.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the service was not ready within 180 s:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield LiveServer(url=url, key=key, log=log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
