"""Fault: the callback receiver down (its port refusing connections) while jobs end, then back on the same
port. The retry backoff is compressed through the settings (``ENHANCE_CALLBACK_RETRY_BASE_S`` 0.5 s,
``..._MAX_S`` 4 s, ``..._MAX_ATTEMPTS`` 6: about 12 s of retries where the defaults give about 17
minutes), so the receiver's "several minutes" down fit in 25 s.

What must hold: a job whose callback is still being retried when the receiver returns is delivered
exactly once (after several attempts); a job whose attempts ran out during the outage gives up after
exactly ``callback_max_attempts`` POSTs, its callback FAILED, and the job stays SUCCEEDED and pollable."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import encode_b64
from tests.faults.components import full_suite_only, report, service_environment, start_service
from tests.jobs_helpers import CallbackReceiver, free_port, wait_until

pytestmark = [pytest.mark.faults, full_suite_only]

MAX_ATTEMPTS = 6
DOWN_S = 25.0
EARLY = 3  # jobs ending right after the receiver went down: their retries run out
LATE = 3  # jobs ending a few seconds before it returns: delivered once it is back


def test_a_receiver_down_for_long_gets_each_callback_once_or_gives_up_cleanly(
    tmp_path: Path, weights_dir: Path, chelsea: np.ndarray
) -> None:
    port = free_port()  # nothing listens: connections are refused, as with a receiver that is down
    url = f"http://127.0.0.1:{port}/hooks/enhance"
    data_dir = tmp_path / "data"
    environment = service_environment(
        weights_dir,
        data_dir,
        ENHANCE_CALLBACK_RETRY_BASE_S="0.5",
        ENHANCE_CALLBACK_RETRY_MAX_S="4",
        ENHANCE_CALLBACK_MAX_ATTEMPTS=str(MAX_ATTEMPTS),
    )
    service = start_service(environment, tmp_path / "service.log")
    image = encode_b64(chelsea[100:196, 100:196], "JPEG", quality=90)
    receiver: CallbackReceiver | None = None
    try:
        down_at = time.monotonic()

        def submit() -> str:
            response = service.client.post(
                "/v1/phota/enhance", json={"image": image, "async": True, "callback_url": url}
            )
            assert response.status_code == 202, response.text
            return str(response.json()["job_id"])

        early = [submit() for _ in range(EARLY)]
        time.sleep(DOWN_S - 8.0)
        late = [submit() for _ in range(LATE)]
        time.sleep(max(0.0, DOWN_S - (time.monotonic() - down_at)))
        receiver = CallbackReceiver(port=port)
        up_at, up_wall = time.monotonic(), time.time()
        wait_until(lambda: receiver is not None and receiver.accepted_job_ids() >= set(late), timeout_s=60)
        delivered_at = max(d.at for d in receiver.deliveries)
        time.sleep(6.0)  # any repeat, or a late attempt of a job that gave up, would arrive by now

        for job_id in late:
            deliveries = receiver.for_job(job_id)
            assert len(deliveries) == 1, [d.headers.get("x-phota-delivery-attempt") for d in deliveries]
            assert int(deliveries[0].headers["x-phota-delivery-attempt"]) > 1  # retried through the outage
        for job_id in early:
            assert receiver.for_job(job_id) == []
            document = service.client.get(f"/v1/phota/jobs/{job_id}")
            assert document.status_code == 200 and document.json()["status"] == "SUCCEEDED"
        with sqlite3.connect(data_dir / "enhance.db") as connection:
            rows = dict(
                (
                    (job_id, (status, attempts))
                    for job_id, status, attempts in connection.execute(
                        "SELECT job_id, status, attempts FROM job_callbacks"
                    )
                )
            )
        assert all(rows[job_id] == ("FAILED", MAX_ATTEMPTS) for job_id in early), rows
        assert all(rows[job_id][0] == "DELIVERED" for job_id in late), rows
        report(
            f"callback receiver down {DOWN_S:g} s (backoff 0.5 s doubling to 4 s, {MAX_ATTEMPTS} attempts)",
            client_sees={"callbacks delivered": LATE, "callbacks given up (FAILED)": EARLY},
            kept=f"all {EARLY + LATE} jobs SUCCEEDED and pollable",
            jobs_lost=0,
            repeated_callbacks=sum(max(0, len(receiver.for_job(j)) - 1) for j in late + early),
            recovery_s=round(delivered_at - up_wall, 2),
            outage_s=round(up_at - down_at, 2),
        )
    finally:
        if receiver is not None:
            receiver.close()
        service.stop()
