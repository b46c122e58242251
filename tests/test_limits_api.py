"""Limits and key management seen by clients of the running app: 429 RATE_LIMITED with Retry-After,
no effect on other accounts, and a key revoked with ``python -m server keys`` refused within seconds."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from server import create_app
from server.keys import run_keys_command
from server.services import services_of
from tests.conftest import encode_b64
from tests.jobs_helpers import HEADERS_A, HEADERS_B, job_settings

PER_MINUTE = 6


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("limits")


@pytest.fixture(scope="module")
def client(data_dir: Path, weights_dir: Path) -> Iterator[TestClient]:
    settings = job_settings(
        data_dir,
        weights_dir,
        rate_limit_per_minute=PER_MINUTE,
        account_max_concurrent=1,
        max_concurrent_jobs=4,
        key_cache_ttl_s=1.0,
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def photo_b64(chelsea: np.ndarray) -> str:
    return encode_b64(chelsea[40:120, 150:270], "JPEG", quality=90)


def _spend_the_minute(client: TestClient, headers: dict[str, str]) -> Any:
    for _ in range(PER_MINUTE * 2):
        response = client.get("/v1/phota/profiles/ids", headers=headers)
        if response.status_code == 429:
            return response
    raise AssertionError("no 429 after twice the limit")


def test_rate_limit_answers_429_with_retry_after_and_spares_other_accounts(client: TestClient) -> None:
    limits = services_of(client.app).limits
    if 60 - time.time() % 60 < 5:  # keep the whole test inside one minute window
        time.sleep(6)
    refused = _spend_the_minute(client, HEADERS_A)
    body = refused.json()
    assert body["code"] == "RATE_LIMITED"
    assert "ENHANCE_RATE_LIMIT_PER_MINUTE" in body["detail"]
    assert body["request_id"] == refused.headers["X-Request-Id"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert client.get("/v1/phota/profiles/ids", headers=HEADERS_B).status_code == 200
    assert client.get("/healthz").status_code == 200  # no key, no count
    assert limits.per_minute == PER_MINUTE


def test_concurrent_enhancements_of_one_account_beyond_the_limit_are_429(
    client: TestClient, photo_b64: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = services_of(client.app).runtime
    real = runtime.run
    entered = threading.Event()
    release = threading.Event()

    def held(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        release.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(runtime, "run", held)
    # Account B has its own minute; A may have spent its own in the previous test.
    results: dict[str, Any] = {}

    def first() -> None:
        results["first"] = client.post("/v1/phota/enhance", headers=HEADERS_B, json={"image": photo_b64})

    thread = threading.Thread(target=first)
    thread.start()
    assert entered.wait(30)
    second = client.post("/v1/phota/enhance", headers=HEADERS_B, json={"image": photo_b64})
    release.set()
    thread.join(60)
    assert second.status_code == 429, second.text
    assert second.json()["code"] == "RATE_LIMITED"
    assert "ENHANCE_ACCOUNT_MAX_CONCURRENT" in second.json()["detail"]
    assert int(second.headers["Retry-After"]) >= 1
    assert results["first"].status_code == 200


def test_key_created_and_revoked_while_running_takes_effect_within_seconds(client: TestClient, data_dir: Path) -> None:
    settings = services_of(client.app).settings
    out = io.StringIO()
    assert run_keys_command(["create", "--name", "live"], settings, out) == 0
    headers = {"X-API-Key": out.getvalue().strip()}
    assert client.get("/v1/phota/webhook-secret", headers=headers).status_code == 200
    assert run_keys_command(["revoke", "live"], settings, io.StringIO()) == 0
    revoked_at = time.monotonic()
    while True:
        response = client.get("/v1/phota/webhook-secret", headers=headers)
        if response.status_code == 401:
            break
        assert time.monotonic() - revoked_at < 1.0 + 2.0, "revoked key still accepted"  # cache + slack
        time.sleep(0.05)
    assert response.json()["code"] == "UNAUTHORIZED"


@pytest.fixture(scope="module")
def fresh_account(client: TestClient) -> dict[str, str]:
    """A named key of its own, so that its requests stay within this module's small per-minute limit."""
    out = io.StringIO()
    assert run_keys_command(["create", "--name", "fresh"], services_of(client.app).settings, out) == 0
    return {"X-API-Key": out.getvalue().strip()}


@pytest.mark.parametrize("number", [b"NaN", b"Infinity", b"-Infinity", b"1e309"])
def test_non_finite_numbers_in_the_body_are_a_422_not_a_500(
    client: TestClient, fresh_account: dict[str, str], number: bytes
) -> None:
    # Found by hostile-request probing: the 422 body echoed the non-finite input and could not be encoded.
    response = client.post(
        "/v1/phota/enhance",
        headers={**fresh_account, "Content-Type": "application/json"},
        content=b'{"image": "abc", "num_output_images": ' + number + b"}",
    )
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", "num_output_images"]
    assert isinstance(response.json()["detail"][0]["input"], str)
