"""Free text a client sends that the service stores or looks up: NUL (which PostgreSQL's text cannot hold)
is refused with FastAPI's 422 body, profile tags refuse every control character, and a profile or job id
with NUL (in the path or among ``profile_ids``) is simply unknown (404). Each case runs on SQLite and on
a real PostgreSQL server, where a NUL used to reach the database and answer 500. The service runs in test
mode (no weights)."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from server import create_app
from tests.test_api_enhance import HEADERS, make_settings

if TYPE_CHECKING:
    from tests.postgres_server import PostgresServer


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def client(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, weights_dir: Path
) -> Iterator[TestClient]:
    data_dir = tmp_path_factory.mktemp("text-fields")
    if request.param == "sqlite":
        database_url, drop = f"sqlite:///{data_dir / 'enhance.db'}", None
    else:
        server: PostgresServer = request.getfixturevalue("postgres_server")
        name = server.create_database()
        database_url, drop = server.url(name), name
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ENHANCE_MODE", "test")
        settings = make_settings(data_dir, weights_dir, database_url=database_url)
        with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
            yield test_client
    if drop is not None:
        server.drop_database(drop)


@pytest.fixture(scope="module")
def photo(chelsea: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(chelsea[40:120, 150:270]).save(buffer, "JPEG", quality=90)
    return base64.b64encode(buffer.getvalue()).decode()


def assert_422_at(response: object, location: list[str | int]) -> None:
    assert response.status_code == 422, response.text  # type: ignore[attr-defined]
    body = response.json()  # type: ignore[attr-defined]
    assert body["request_id"] and any(error["loc"] == location for error in body["detail"])
    error = next(error for error in body["detail"] if error["loc"] == location)
    assert {"type", "loc", "msg", "input"} <= set(error)
    assert "control characters" in error["msg"] or "NUL" in error["msg"]


REFERENCES = ["aGVsbG8="] * 5  # stored, then refused by validation in the background: enough here


@pytest.mark.parametrize("tag", ["team\x00a", "\x00", "line\nbreak", "tab\there", "esc\x1b[31m", "del\x7f"])
def test_profile_tag_with_nul_or_a_control_character_is_422(client: TestClient, tag: str) -> None:
    before = client.get("/v1/phota/profiles/ids", headers=HEADERS).json()["profiles"]
    body = {"image_urls": REFERENCES, "training_tier": "fast", "tag": tag}
    assert_422_at(client.post("/v1/phota/profiles/add", headers=HEADERS, json=body), ["body", "tag"])
    assert_422_at(client.get("/v1/phota/profiles/ids", headers=HEADERS, params={"tag": tag}), ["query", "tag"])
    assert client.get("/v1/phota/profiles/ids", headers=HEADERS).json()["profiles"] == before


def test_profile_tag_of_printable_unicode_is_stored_and_found(client: TestClient) -> None:
    tag = "équipe ✓ 東京 — 2026"
    body = {"image_urls": REFERENCES, "training_tier": "fast", "tag": tag}
    response = client.post("/v1/phota/profiles/add", headers=HEADERS, json=body)
    assert response.status_code == 200, response.text
    found = client.get("/v1/phota/profiles/ids", headers=HEADERS, params={"tag": tag}).json()["profiles"]
    assert found == [response.json()["profile_id"]]


def test_ids_with_nul_in_the_path_are_unknown(client: TestClient) -> None:
    for method, path in (
        ("GET", "/v1/phota/profiles/prof%00x/status"),
        ("GET", "/v1/phota/profiles/prof%00x/profile_picture"),
        ("DELETE", "/v1/phota/profiles/prof%00x"),
        ("GET", "/v1/phota/jobs/job%00x"),
    ):
        response = client.request(method, path, headers=HEADERS)
        assert response.status_code == 404, (path, response.text)
        assert response.json()["code"] == "NOT_FOUND"


@pytest.mark.parametrize("profile_id", ["prof\x00x", "\x00", "prof\nx"])
def test_candidate_profile_id_with_nul_or_a_control_character_is_unknown(
    client: TestClient, photo: str, profile_id: str
) -> None:
    for extra in ({}, {"async": True}):
        body = {"image": photo, "profile_ids": [profile_id], **extra}
        response = client.post("/v1/phota/enhance", headers=HEADERS, json=body)
        assert response.status_code == 404, response.text
        assert response.json()["code"] == "NOT_FOUND"
    # Written as [[id]] in the prompt: NUL is refused in any prompt; a token does not span lines.
    prompted = {"image": photo, "prompt": f"sharper [[{profile_id}]]"}
    status = client.post("/v1/phota/enhance", headers=HEADERS, json=prompted).status_code
    assert status == (422 if "\x00" in profile_id else 200)


@pytest.mark.parametrize(
    ("field", "value", "location"),
    [
        ("prompt", "sharper\x00", ["body", "prompt"]),
        ("client_request_id", "id-\x00", ["body", "client_request_id"]),
        ("callback_url", "https://hooks.example/\x00", ["body", "callback_url"]),
    ],
)
def test_enhance_field_with_nul_is_422_before_anything_runs(
    client: TestClient, photo: str, field: str, value: object, location: list[str | int]
) -> None:
    body = {"image": photo, "async": field in ("client_request_id", "callback_url"), field: value}
    assert_422_at(client.post("/v1/phota/enhance", headers=HEADERS, json=body), location)


def test_prompt_with_newlines_and_tabs_is_still_free_text(client: TestClient, photo: str) -> None:
    body = {"image": photo, "prompt": "sharper\n\twarmer", "async": True, "client_request_id": "multi-line"}
    response = client.post("/v1/phota/enhance", headers=HEADERS, json=body)
    assert response.status_code == 202, response.text
    job = client.get(f"/v1/phota/jobs/{response.json()['job_id']}", headers=HEADERS)
    assert job.status_code == 200 and job.json()["status"] in ("QUEUED", "RUNNING", "SUCCEEDED")
