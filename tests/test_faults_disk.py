"""Fault: the data directory (SQLite database and stored files) on a small tmpfs that the fixture mounts,
filled up to the last byte under a real service process (test mode), then freed again.

What a client must see: a request that has to write (urls-mode enhance, job submit, profile add) answers
507 ``INSUFFICIENT_STORAGE`` (503 is allowed too), never 500; reads and bytes-mode requests keep working;
the database stays consistent (``PRAGMA integrity_check``, no job row without its files), no partial
file is left or served; once space returns, writes succeed again without a restart."""

from __future__ import annotations

import errno
import io
import os
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.conftest import encode_b64
from tests.faults.components import Traffic, reference_images, report, service_environment, start_service
from tests.jobs_helpers import KEY_A, wait_until

pytestmark = pytest.mark.faults

DISK_MB = 64
FULL_S = 8.0
WRITES = ("urls enhance", "submit", "profile add")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A ``DISK_MB`` tmpfs mounted on a fresh folder (root only), unmounted afterwards."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem needs root")
    completed = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_MB}m", "tmpfs", str(mount)], capture_output=True, text=True
    )
    if completed.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {completed.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(folder: Path) -> Path:
    """Write a filler file until the filesystem has no byte left; returns it."""
    filler = folder / "filler"
    chunk = b"\0" * (1 << 20)
    with open(filler, "wb", buffering=0) as out:
        while True:
            try:
                out.write(chunk)
            except OSError as error:
                assert error.errno == errno.ENOSPC
                break
        for size in (4096, 512, 1):  # the last pages too
            while True:
                try:
                    out.write(b"\0" * size)
                except OSError:
                    break
    return filler


def test_a_full_disk_answers_507_keeps_everything_consistent_and_recovers(
    tmp_path: Path, weights_dir: Path, chelsea: np.ndarray, small_disk: Path
) -> None:
    data_dir = small_disk / "data"
    environment = service_environment(weights_dir, data_dir, ENHANCE_MAX_CONCURRENT_JOBS="1")
    service = start_service(environment, tmp_path / "service.log")
    small = encode_b64(chelsea[100:196, 100:196], "JPEG", quality=90)
    headers = {"X-API-Key": KEY_A}
    traffic = Traffic(pause_s=0.1)
    try:
        before = service.client.post("/v1/phota/enhance", json={"image": small, "async": True})
        assert before.status_code == 202
        first_job = before.json()["job_id"]
        wait_until(lambda: service.client.get(f"/v1/phota/jobs/{first_job}").json()["status"] == "SUCCEEDED")
        clients = [httpx.Client(base_url=service.base_url, headers=headers, timeout=60) for _ in range(5)]
        urls_body = {"image": small, "response_mode": "urls"}
        traffic.add("urls enhance", lambda: clients[0].post("/v1/phota/enhance", json=urls_body))
        bytes_body = {"image": small, "response_mode": "bytes"}
        traffic.add("bytes enhance", lambda: clients[1].post("/v1/phota/enhance", json=bytes_body))
        submit_body = {"image": small, "async": True, "response_mode": "bytes"}
        traffic.add("submit", lambda: clients[2].post("/v1/phota/enhance", json=submit_body), pause_s=0.3)
        traffic.add("poll", lambda: clients[3].get(f"/v1/phota/jobs/{first_job}"))
        profile_body = {"image_urls": reference_images(seed=9), "training_tier": "fast"}
        traffic.add("profile add", lambda: clients[4].post("/v1/phota/profiles/add", json=profile_body), pause_s=2.0)

        time.sleep(1.5)
        filler = fill(small_disk)
        full_at = time.monotonic()
        time.sleep(FULL_S)
        filler.unlink()
        freed_at = time.monotonic()
        for label in WRITES:
            wait_until(lambda label=label: traffic.first_success_after(freed_at, label), timeout_s=120, interval_s=0.2)
        time.sleep(2.0)
        traffic.stop()
        for client in clients:
            client.close()

        outcomes = traffic.outcomes
        assert {o.status for o in outcomes} <= {200, 202, 503, 507}, traffic.by_status()
        refused = [o for o in outcomes if o.status in (503, 507)]
        assert all(o.body and o.body["code"] in ("INSUFFICIENT_STORAGE", "SERVICE_UNAVAILABLE") for o in refused)
        for label in WRITES:
            # The first write after the disk filled (a moment for the last page of slack) was refused.
            during = [o for o in traffic.between(full_at + 1.0, freed_at - 0.5) if o.label == label]
            assert during and {o.status for o in during} <= {503, 507}, (label, [o.status for o in during])
        assert traffic.by_status("bytes enhance").keys() == {"200"}
        assert traffic.by_status("poll").keys() == {"200"}
        assert service.process.poll() is None

        # Every job accepted (before, during, after) ends SUCCEEDED with its images.
        submitted = [o.body["job_id"] for o in outcomes if o.label == "submit" and o.status == 202 and o.body]
        for job_id in submitted:
            document = wait_until(
                lambda j=job_id: (
                    (d := service.client.get(f"/v1/phota/jobs/{j}").json())["status"] != "QUEUED"
                    and d["status"] != "RUNNING"
                    and d
                )
            )
            assert document["status"] == "SUCCEEDED" and len(document["result"]["images"]) == 1, document
        # Every profile accepted is built (a build the full disk interrupted is handed back and run again).
        profiles = [o.body["profile_id"] for o in outcomes if o.label == "profile add" and o.status == 200 and o.body]
        for profile_id in profiles:
            status = wait_until(
                lambda p=profile_id: (
                    (s := service.client.get(f"/v1/phota/profiles/{p}/status").json()["status"]) in ("READY", "ERROR")
                    and s
                ),
                timeout_s=300,
                interval_s=0.5,
            )
            assert status == "READY", profile_id
        # Every URL answered downloads as a whole image.
        named = [
            url
            for o in outcomes
            if o.label == "urls enhance" and o.status == 200 and o.body
            for url in o.body["download_urls"]
        ]
        for url in named:
            fetched = httpx.get(url, timeout=30)
            assert fetched.status_code == 200
            Image.open(io.BytesIO(fetched.content)).load()  # a truncated file fails here
        # No partial file left, every stored output decodes, the database is intact.
        assert not [p for p in data_dir.rglob(".*.tmp")]
        for path in (data_dir / "files").glob("*"):
            Image.open(path).load()
        with sqlite3.connect(data_dir / "enhance.db") as connection:
            assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            queued = connection.execute("SELECT id FROM jobs WHERE status IN ('QUEUED', 'RUNNING')").fetchall()
        assert not queued
        recovered_s = max((traffic.first_success_after(freed_at, label) or freed_at) - freed_at for label in WRITES)
        report(
            f"data directory full {FULL_S:g} s (tmpfs {DISK_MB} MB)",
            client_sees={label: traffic.by_status(label) for label in (*WRITES, "bytes enhance", "poll")},
            kept=f"SQLite integrity ok, {len(submitted)} jobs SUCCEEDED, {len(named)} URLs whole, 0 partial files",
            jobs_lost=0,
            repeated_callbacks=0,
            recovery_s=round(recovered_s, 2),
            outage_s=round(freed_at - full_at, 2),
        )
    finally:
        traffic.stop()
        service.stop()
