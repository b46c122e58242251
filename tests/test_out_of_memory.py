"""One place turns running out of device memory into an answer (``server.runtime.out_of_memory``): inside
the pipeline (``ModelRuntime.run``) and anywhere else in a request, the client gets the same 503
SERVICE_UNAVAILABLE with ``Retry-After``, never a 500."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from fastapi.testclient import TestClient

from models.pipeline import ModelOutOfMemoryError
from server import runtime as runtime_module
from server.runtime import out_of_memory
from server.services import services_of
from tests.test_api_enhance import HEADERS, client, photo_b64

__all__ = ["client", "photo_b64"]


def _simulated(*_args: Any, **_kwargs: Any) -> Any:
    raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (simulated)")


def _assert_503(response: Any) -> None:
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["code"] == "SERVICE_UNAVAILABLE"
    assert body["detail"] == "out of device memory while rendering; try again later"
    assert body["request_id"] == response.headers["X-Request-Id"]
    assert int(response.headers["Retry-After"]) >= 1
    assert "2.00 GiB" not in response.text


def test_out_of_memory_inside_the_pipeline_is_503(
    client: TestClient, photo_b64: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runtime_module, "enhance_request", _simulated)
    _assert_503(client.post("/v1/phota/enhance", headers=HEADERS, json={"image": photo_b64}))


def test_out_of_memory_outside_the_pipeline_is_the_same_503(
    client: TestClient, photo_b64: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Raised past ModelRuntime.run's own conversion: the API's handler answers through the same function.
    monkeypatch.setattr(services_of(client.app).runtime, "run", _simulated)
    _assert_503(client.post("/v1/phota/enhance", headers=HEADERS, json={"image": photo_b64}))


def test_out_of_memory_is_the_service_error() -> None:
    error = out_of_memory(torch.OutOfMemoryError("simulated"))
    assert isinstance(error, ModelOutOfMemoryError)
    assert error.code == "SERVICE_UNAVAILABLE"
