"""The hosted routes this service does not offer (``POST /v1/phota/edit``, ``/generate``, ``/remix``):
501 ``NOT_IMPLEMENTED`` in the hosted error shape after authentication, a detail that says what is
offered instead, and the OpenAPI document saying so. The app runs in test mode (no network weights)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from server import Settings, create_app
from server.routes.hosted import EDIT_DETAIL
from tests.live_server import REPO_ROOT

KEY = "hosted-routes-key"
NOT_OFFERED = ["/v1/phota/edit", "/v1/phota/generate", "/v1/phota/remix"]
# What the hosted API's clients send to edit (a prompt and image URLs); the body is never read here.
HOSTED_EDIT_BODY = {"prompt": "remove the people in the background", "image_urls": ["https://example.com/a.jpg"]}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, weights_dir: Path) -> Iterator[TestClient]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("hosted"), weights_dir=weights_dir, api_keys=KEY, device="cpu", mode="test"
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.mark.parametrize("path", NOT_OFFERED)
def test_not_offered_route_is_501_in_the_hosted_error_shape(client: TestClient, path: str) -> None:
    response = client.post(path, headers={"X-API-Key": KEY, "X-Request-Id": "req-hosted-1"}, json=HOSTED_EDIT_BODY)
    assert response.status_code == 501
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"code", "detail", "request_id"}
    assert body["code"] == "NOT_IMPLEMENTED"
    assert body["request_id"] == response.headers["X-Request-Id"] == "req-hosted-1"


@pytest.mark.parametrize("path", NOT_OFFERED)
def test_not_offered_detail_names_the_route_and_what_is_offered_instead(client: TestClient, path: str) -> None:
    detail = client.post(path, headers={"X-API-Key": KEY}, json=HOSTED_EDIT_BODY).json()["detail"]
    assert f"POST {path}" in detail and "does not offer" in detail
    for offered in ("POST /v1/phota/enhance", "/v1/phota/profiles", "/v1/phota/jobs"):
        assert offered in detail
    assert "https://api.photalabs.com" in detail
    # Sentences a person reads in a client's error message: no stack, no code names, ends with a full stop.
    assert detail[0].isupper() and detail.endswith(".") and "Error" not in detail


def test_not_offered_routes_answer_whatever_the_body(client: TestClient) -> None:
    for content in (b"", b"not json", b'{"image": 3}'):
        response = client.post(
            "/v1/phota/remix", headers={"X-API-Key": KEY, "Content-Type": "application/json"}, content=content
        )
        assert response.status_code == 501, content


@pytest.mark.parametrize("path", NOT_OFFERED)
@pytest.mark.parametrize("key", [None, "not-a-key"], ids=["no-key", "unknown-key"])
def test_not_offered_route_needs_a_key_first(client: TestClient, path: str, key: str | None) -> None:
    headers = {} if key is None else {"X-API-Key": key}
    response = client.post(path, headers=headers, json=HOSTED_EDIT_BODY)
    assert response.status_code == 401
    assert response.json()["code"] == "UNAUTHORIZED"
    assert response.json()["detail"] == "Missing or invalid API key in the X-API-Key header."


def test_other_methods_on_a_not_offered_route_stay_405(client: TestClient) -> None:
    # The hosted API has only POST on these routes; another method is a client error, not a missing feature.
    response = client.get("/v1/phota/edit", headers={"X-API-Key": KEY})
    assert response.status_code == 405


def test_openapi_document_lists_the_not_offered_routes_as_501(client: TestClient) -> None:
    document = client.get("/v1/phota/openapi.json").json()
    for path in NOT_OFFERED:
        assert set(document["paths"][path]) == {"post"}, path
        operation = document["paths"][path]["post"]
        responses = operation["responses"]
        assert "200" not in responses and "422" not in responses
        assert responses["501"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ErrorResponse"
        }
        assert "NOT_IMPLEMENTED" in responses["501"]["description"]
        example = responses["501"]["content"]["application/json"]["example"]
        assert example["code"] == "NOT_IMPLEMENTED" and f"POST {path}" in example["detail"]
        assert {"401", "429"} <= set(responses)
        assert operation["security"] == [{"APIKeyHeader": []}]


def test_api_page_shows_the_detail_as_sent() -> None:
    assert EDIT_DETAIL in (REPO_ROOT / "docs" / "api.md").read_text()
