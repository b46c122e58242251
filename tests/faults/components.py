"""Real components the fault tests break and mend: PostgreSQL and SeaweedFS's S3 server stopped and started
again on the same port, a service process in test mode, steady client traffic that counts what it sees,
and the figures each fault reports (appended as JSON lines to ``$ENHANCE_FAULTS_REPORT`` when set; the
script ``tests/benchmarks/run_faults.py`` prints them as a table)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.jobs_helpers import KEY_A, ServiceProcess
from tests.postgres_server import PostgresServer
from tests.s3_server import (
    ACCESS_KEY,
    SECRET_KEY,
    S3Server,
    _answers,
    _wait_writable,
    free_ports,
    stop_process,
    weed_command,
    write_s3_config,
)

REPORT_ENV = "ENHANCE_FAULTS_REPORT"
FULL_ENV = "ENHANCE_FAULTS_FULL"

# The longer faults run only in the whole suite (tests/benchmarks/run_faults.py sets ENHANCE_FAULTS_FULL=1);
# the CI sample (database outage, full disk, SIGTERM in flight) runs in every `pytest`.
full_suite_only = pytest.mark.skipif(
    not os.environ.get(FULL_ENV), reason="the whole fault suite only: python tests/benchmarks/run_faults.py"
)


def report(fault: str, **figures: Any) -> None:
    """Record one fault's measured figures for the suite's table (no-op unless ``$ENHANCE_FAULTS_REPORT``)."""
    path = os.environ.get(REPORT_ENV)
    if path:
        with open(path, "a") as out:
            out.write(json.dumps({"fault": fault, **figures}) + "\n")


class StoppablePostgres(PostgresServer):
    """A PostgreSQL server of its own that a test stops (``pg_ctl stop -m fast``: sessions are ended, as in
    a restart for an upgrade) and starts again on the same port and data."""

    def _options(self) -> str:
        return f"-h 127.0.0.1 -p {self.port} -k {self.root} -c fsync=off -c max_connections=200"

    def stop_server(self) -> None:
        self._run([str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"])

    def start_server(self) -> None:
        log = str(self.root / "server.log")
        self._run([str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", log, "-w", "-o", self._options(), "start"])


class StoppableS3:
    """``weed server -s3`` in ``directory`` on fixed ports: :meth:`stop` ends the process (connections are
    refused), :meth:`start` runs it again on the same ports and data."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.config = write_s3_config(directory)
        self.ports = free_ports()
        self.endpoint_url = f"http://127.0.0.1:{self.ports['s3']}"
        self.server = S3Server(endpoint_url=self.endpoint_url, access_key=ACCESS_KEY, secret_key=SECRET_KEY, pid=0)
        self._process: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        command = weed_command(self.directory, self.ports, self.config)
        with open(self.directory / "weed.log", "ab") as log:
            self._process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 90
        while not _answers(self.endpoint_url):
            if self._process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"SeaweedFS did not start (exit {self._process.returncode})")
            time.sleep(0.25)
        _wait_writable(self.server)

    def stop(self) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        stop_process(self._process)

    def client(self) -> Any:
        return self.server.client()


def service_environment(weights_dir: Path, data_dir: Path, **overrides: str) -> dict[str, str]:
    """``ENHANCE_*`` for one service process in test mode: small outputs, loopback callbacks allowed."""
    values = {
        "ENHANCE_MODE": "test",
        "ENHANCE_API_KEYS": KEY_A,
        "ENHANCE_DATA_DIR": str(data_dir),
        "ENHANCE_WEIGHTS_DIR": str(weights_dir),
        "ENHANCE_AUTO_PULL_WEIGHTS": "false",
        "ENHANCE_DEVICE": "cpu",
        "ENHANCE_TARGET_LONG_SIDE": "256",
        "ENHANCE_ALLOW_PRIVATE_URLS": "true",
        "ENHANCE_ALLOW_HTTP_CALLBACKS": "true",
        "ENHANCE_CALLBACK_RETRY_BASE_S": "0.2",
        "ENHANCE_CALLBACK_RETRY_MAX_S": "2",
        "ENHANCE_JOB_POLL_INTERVAL_S": "0.2",
        "ENHANCE_RETRY_AFTER_S": "1",
        "ENHANCE_LOG_LEVEL": "INFO",
        "ENHANCE_MALLOC_TRIM_INTERVAL_S": "0",
    }
    values.update(overrides)
    return values


def start_service(environment: dict[str, str], log: Path, name: str = "the service") -> ServiceProcess:
    service = ServiceProcess(environment, log, name=name, timeout_s=60)
    service.wait_ready(timeout_s=180)
    return service


@dataclass
class Outcome:
    """One request a traffic loop sent: when (monotonic), its label, status (0: no answer) and Retry-After."""

    at: float
    label: str
    status: int
    retry_after: str | None
    body: dict[str, Any] | None = None


@dataclass
class Traffic:
    """Background threads that send requests in a loop until stopped, recording every outcome. Each
    sender returns an ``httpx.Response``; a transport error is recorded as status 0."""

    outcomes: list[Outcome] = field(default_factory=list)
    pause_s: float = 0.05

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def add(self, label: str, send: Callable[[], httpx.Response], pause_s: float | None = None) -> None:
        pause = self.pause_s if pause_s is None else pause_s

        def loop() -> None:
            while not self._stop.is_set():
                self.once(label, send)
                self._stop.wait(pause)

        thread = threading.Thread(target=loop, daemon=True, name=f"traffic {label}")
        self._threads.append(thread)
        thread.start()

    def once(self, label: str, send: Callable[[], httpx.Response]) -> Outcome:
        try:
            response = send()
            body = None
            if response.headers.get("content-type", "").startswith("application/json"):
                body = response.json()
            outcome = Outcome(time.monotonic(), label, response.status_code, response.headers.get("retry-after"), body)
        except httpx.TransportError:
            outcome = Outcome(time.monotonic(), label, 0, None)
        with self._lock:
            self.outcomes.append(outcome)
        return outcome

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=120)

    def by_status(self, label: str | None = None) -> dict[str, int]:
        with self._lock:
            counts = Counter(str(o.status) for o in self.outcomes if label is None or o.label == label)
        return dict(sorted(counts.items()))

    def between(self, start: float, end: float) -> list[Outcome]:
        with self._lock:
            return [o for o in self.outcomes if start <= o.at <= end]

    def first_success_after(self, moment: float, label: str) -> float | None:
        with self._lock:
            times = [o.at for o in self.outcomes if o.label == label and o.at >= moment and 200 <= o.status < 300]
        return min(times) if times else None


def reference_images(seed: int) -> list[str]:
    """Five base64 photos of one person (Grace Hopper, augmented): a profile a service can build."""
    import base64

    import numpy as np

    from tests.face_photos import augment, jpeg_bytes

    rng = np.random.default_rng(seed)
    return [base64.b64encode(jpeg_bytes(augment("hopper", rng, (90, 180)))).decode() for _ in range(5)]


class RetryingClient:
    """What a well-behaved client does: send to one of the processes (a fresh connection each time), and
    on a refused connection or a 503 try the next one, up to ``tries`` times in all. Anything else is
    its final answer (a transport error or a connection closed unanswered: a lost request)."""

    def __init__(self, urls: list[str], tries: int = 20) -> None:
        self.urls = urls
        self.tries = tries
        self.first_answers: Counter[str] = Counter()
        self.final: Counter[str] = Counter()
        self.retried = 0
        self._lock = threading.Lock()
        self._turn = 0

    def send(self, body: dict[str, Any]) -> None:
        with self._lock:
            self._turn += 1
            start = self._turn
        outcome = "lost"
        for attempt in range(self.tries):
            url = self.urls[(start + attempt) % len(self.urls)]
            try:
                with httpx.Client(timeout=120, headers={"X-API-Key": KEY_A}) as client:
                    status = str(client.post(f"{url}/v1/phota/enhance", json=body).status_code)
            except httpx.ConnectError:
                status = "refused"
            except httpx.RemoteProtocolError:
                # Closed before any answer. Not retried: a stopping process answers every request it
                # accepted a connection for (server/__main__.py), so this counts as a lost request.
                status = "closed unanswered"
            except httpx.TransportError as error:
                status = f"transport error {type(error).__name__}"
            with self._lock:
                if attempt == 0:
                    self.first_answers[status] += 1
                if attempt == 1:
                    self.retried += 1
            if status in ("refused", "503"):
                time.sleep(0.2)
                continue
            outcome = status
            break
        with self._lock:
            self.final[outcome] += 1


def serve_port() -> int:
    """A free port below the ephemeral range (32768+) for Serve's proxy: an OS-chosen ephemeral port can be
    taken by one of Ray's many processes before the proxy binds it ("Failed to bind")."""
    import random
    import socket

    for candidate in random.Random(os.getpid()).sample(range(20000, 30000), 200):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            return candidate
    raise RuntimeError("no free port between 20000 and 30000")


def replica_pids() -> list[int]:
    """The process ids of the cluster's replicas (Ray names them ``ServeReplica:enhance:enhance``)."""
    listing = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True, check=True).stdout
    return sorted(int(line.split()[0]) for line in listing.splitlines() if "ServeReplica:enhance:enhance" in line)


@dataclass
class ClusterProcess:
    """``python -m server.cluster`` on a local Ray instance of its own, serving on ``url``."""

    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=60)


def start_cluster(environment: dict[str, str], log: Path, replicas: int, timeout_s: float = 420) -> ClusterProcess:
    """Start ``python -m server.cluster`` with ``environment`` (its ``ENHANCE_*`` only, over this process's
    other variables) and wait until ``/readyz`` answers 200 and ``replicas`` replica processes run."""
    import sys

    port = serve_port()
    settings = {key: value for key, value in environment.items() if key.startswith("ENHANCE_")}
    inherited = {key: value for key, value in os.environ.items() if not key.startswith("ENHANCE_")}
    inherited.pop("RAY_ADDRESS", None)  # a local Ray instance of its own
    root = Path(__file__).resolve().parents[2]
    with open(log, "wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "server.cluster", "--host", "127.0.0.1", "--port", str(port)],
            cwd=root,
            env={**inherited, "PYTHONPATH": str(root), **settings, "ENHANCE_REPLICAS": str(replicas)},
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    cluster = ClusterProcess(process, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None or time.monotonic() > deadline:
            cluster.stop()
            raise AssertionError(f"the cluster did not start:\n{cluster.tail()}")
        try:
            if httpx.get(f"{cluster.url}/readyz", timeout=5).status_code == 200 and len(replica_pids()) == replicas:
                return cluster
        except httpx.HTTPError:
            pass
        time.sleep(1.0)
