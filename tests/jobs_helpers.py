"""Helpers of the job tests: tiny settings, polling, and a real callback receiver on loopback."""

from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from fastapi.testclient import TestClient

from server import Settings

KEY_A = "jobs-test-key-account-a"
KEY_B = "jobs-test-key-account-b"
HEADERS_A = {"X-API-Key": KEY_A}
HEADERS_B = {"X-API-Key": KEY_B}
FINISHED = ("SUCCEEDED", "FAILED")


def job_settings(data_dir: Path, weights_dir: Path, **overrides: object) -> Settings:
    """Settings that keep each job to a fraction of a second on CPU: a 48-px network input and a
    64-px output target (the 120×80 test photo keeps its size), loopback callbacks allowed, and one
    runner (so that a second job stays queued while the first runs)."""
    values: dict[str, object] = {
        "data_dir": data_dir,
        "weights_dir": weights_dir,
        "api_keys": f"{KEY_A},{KEY_B}",
        "device": "cpu",
        "network_max_side": 48,
        "cpu_tile_size": 64,
        "target_long_side": 64,
        "allow_private_urls": True,
        "allow_http_callbacks": True,
        "callback_retry_base_s": 0.05,
        "callback_retry_max_s": 0.2,
        "max_concurrent_jobs": 1,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


# Waits are bounds on "it happens", not timings: generous, so a loaded CI machine is not a failure (a
# passing wait returns as soon as its condition holds).
WAIT_S = 180.0


def wait_until(predicate: Callable[[], Any], timeout_s: float = WAIT_S, interval_s: float = 0.02) -> Any:
    """Poll ``predicate`` until it returns something truthy; that value, or AssertionError on timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        time.sleep(interval_s)


def poll_job(client: TestClient, job_id: str, headers: dict[str, str], timeout_s: float = WAIT_S) -> dict[str, Any]:
    """Poll ``GET /v1/phota/jobs/{job_id}`` until the job has finished; its document."""

    def finished() -> dict[str, Any] | None:
        response = client.get(f"/v1/phota/jobs/{job_id}", headers=headers)
        assert response.status_code == 200, response.text
        document = response.json()
        return document if document["status"] in FINISHED else None

    return wait_until(finished, timeout_s)  # type: ignore[no-any-return]


def verify_signature(secret: str, body: bytes, header: str) -> bool:
    """What a receiver does: recompute the HMAC-SHA256 of the raw body and compare in constant time."""
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header)


@dataclass
class Delivery:
    """One POST the receiver got."""

    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    answered: int

    @property
    def job_id(self) -> str:
        return str(json.loads(self.body)["job_id"])


@dataclass
class CallbackReceiver:
    """A real HTTP server on 127.0.0.1 (``port``; 0: any free one) that records every POST. The first
    ``fail_first`` POSTs of each job are answered 500; a POST whose URL has ``stall=1`` in its query
    waits ``stall_s`` before it is answered."""

    fail_first: int = 0
    port: int = 0
    stall_s: float = 0.0
    deliveries: list[Delivery] = field(default_factory=list)
    stalled: list[str] = field(default_factory=list)  # job ids whose POST is being held

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                job_id = str(json.loads(body).get("job_id"))
                if "stall=1" in self.path:
                    with receiver._lock:
                        receiver.stalled.append(job_id)
                    time.sleep(receiver.stall_s)
                with receiver._lock:
                    seen = sum(1 for d in receiver.deliveries if d.job_id == job_id)
                    status = 500 if seen < receiver.fail_first else 204
                    receiver.deliveries.append(
                        Delivery(self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.time(), status)
                    )
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hooks/enhance"

    def for_job(self, job_id: str) -> list[Delivery]:
        with self._lock:
            return [d for d in self.deliveries if d.job_id == job_id]

    def accepted_job_ids(self) -> set[str]:
        with self._lock:
            return {d.job_id for d in self.deliveries if d.answered < 300}

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def free_port() -> int:
    """A loopback port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServiceProcess:
    """``python -m server`` on a loopback port, configured through the environment as an operator would:
    ``settings`` (``ENHANCE_*`` variables) over this process's environment without its own ``ENHANCE_*``;
    the service's output appended to ``log``; ``client`` holds key A. ``name`` labels its failures."""

    def __init__(
        self, settings: dict[str, str], log: Path, *, name: str = "the service", timeout_s: float = 60
    ) -> None:
        self.name = name
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        inherited = {key: value for key, value in os.environ.items() if not key.startswith("ENHANCE_")}
        self._log = open(log, "ab")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "server", "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=Path(__file__).resolve().parent.parent,
            env={**inherited, **settings},
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.client = httpx.Client(base_url=self.base_url, headers={"X-API-Key": KEY_A}, timeout=timeout_s)

    def ready(self) -> bool:
        """``/readyz`` answers 200; AssertionError when the process has exited."""
        if self.process.poll() is not None:
            raise AssertionError(f"{self.name} exited with {self.process.returncode}")
        try:
            return self.client.get("/readyz").status_code == 200
        except httpx.TransportError:
            return False

    def wait_ready(self, timeout_s: float = 240) -> None:
        wait_until(self.ready, timeout_s=timeout_s, interval_s=0.3)

    def kill(self) -> None:
        """SIGKILL: no shutdown of any kind, as a crash or an OOM kill ends a process."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        """SIGTERM (SIGKILL after 30 s) when still running; closes the client and the log."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.client.close()
        self._log.close()
