"""Hostile requests against the running app: deep JSON, non-finite and giant numbers, NUL and lone
surrogates, path tricks, oversized ids and keys. Each must end in a documented 4xx, never a 5xx."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from server import create_app
from tests.benchmarks.fuzz_images import KEY, fuzz_settings, install_stand_in_network

HEADERS = {"X-API-Key": KEY, "Content-Type": "application/json"}

BODIES: dict[str, tuple[bytes, int]] = {
    "deep-array": (b"[" * 100_000 + b"]" * 100_000, 400),
    "deep-object": (b'{"a":' * 50_000 + b"1" + b"}" * 50_000, 400),
    "deep-in-a-field": (b'{"image": ' + b"[" * 50_000 + b"]" * 50_000 + b"}", 400),
    "infinity": (b'{"image": "abc", "num_output_images": 1e309}', 422),
    "nan": (b'{"image": "abc", "num_output_images": NaN}', 422),
    "5000-digit-integer": (b'{"image": "abc", "num_output_images": ' + b"9" * 5000 + b"}", 400),
    "nul-image": (b'{"image": "\\u0000\\u0000"}', 400),
    "lone-surrogate": (b'{"image": "\\ud800"}', 400),
    "not-utf8": (b"\xff\xfe\x00", 400),
    "empty": (b"", 422),
    "huge-prompt": (json.dumps({"image": "abc", "prompt": "sharper " * 200_000}).encode(), 400),
    "bracket-prompt": (json.dumps({"image": "abc", "prompt": "[[" * 10_000 + "]]" * 10_000}).encode(), 400),
    "100k-profile-ids": (json.dumps({"image": "abc", "profile_ids": ["x"] * 100_000}).encode(), 404),
    "path-profile-id": (json.dumps({"image": "abc", "profile_ids": ["../../etc/passwd", "\u0000"]}).encode(), 404),
    "broken-callback-url": (json.dumps({"image": "abc", "async": True, "callback_url": "https://[::1"}).encode(), 400),
    "mapped-loopback-url": (json.dumps({"image": "http://[::ffff:127.0.0.1]:99999/x"}).encode(), 400),
    "file-url": (json.dumps({"image": "file:///etc/passwd"}).encode(), 400),
    "3-char-data-url": (json.dumps({"image": "data:image/png;base64,AAA"}).encode(), 400),
}

PATHS = [
    "/v1/phota/jobs/" + "a" * 5000,
    "/v1/phota/jobs/%ff%fe",
    "/v1/phota/profiles/%00/status",
    "/v1/phota/profiles/..%2F..%2Fetc/status",
    "/v1/phota/files/..%2F..%2Fetc%2Fpasswd?expires=1&signature=x",
    "/v1/phota/profiles/ids?tag=" + "x" * 129,
]


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, weights_dir: Path) -> Iterator[TestClient]:
    settings = fuzz_settings(tmp_path_factory.mktemp("hostile"), weights_dir=weights_dir, rate_limit_per_minute=100_000)
    app = create_app(settings)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        install_stand_in_network(app)
        yield test_client


@pytest.mark.parametrize("name", list(BODIES))
def test_hostile_body_is_refused_with_a_documented_4xx(client: TestClient, name: str) -> None:
    body, expected = BODIES[name]
    response = client.post("/v1/phota/enhance", headers=HEADERS, content=body)
    assert response.status_code == expected, response.text[:300]
    document = response.json()
    assert document["request_id"] == response.headers["X-Request-Id"]
    if expected != 422:
        assert document["code"] and len(document["detail"]) >= 10


@pytest.mark.parametrize("path", PATHS)
def test_hostile_path_is_a_4xx(client: TestClient, path: str) -> None:
    response = client.get(path, headers=HEADERS)
    assert 400 <= response.status_code < 500, response.text[:300]


@pytest.mark.parametrize(
    "headers",
    [[(b"X-API-Key", b"k" * 100_000)], [(b"X-API-Key", b"\xe9\xff")], [(b"X-API-Key", b"")], []],
    ids=["100-kB-key", "latin-1-key", "empty-key", "no-key"],
)
def test_hostile_key_is_a_401(client: TestClient, headers: list[tuple[bytes, bytes]]) -> None:
    response = client.get("/v1/phota/profiles/ids", headers=headers)
    assert response.status_code == 401
    assert response.json()["code"] == "UNAUTHORIZED"
