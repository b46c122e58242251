"""The composition root: ``create_app(settings, services=...)`` serves with the parts handed in (here a
runtime whose network is a stand-in), the lifespan builds the rest around them, and a part that is not
started yet answers 503."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from server import create_app
from server.errors import NotReadyError
from server.runtime import ModelRuntime
from server.services import Services, services_of
from tests.conftest import encode_b64, stand_in_model
from tests.jobs_helpers import poll_job
from tests.test_api_enhance import HEADERS, make_settings


class CountingUpscaler(torch.nn.Module):
    """A ×4 stand-in network (nearest-neighbour) that counts its calls."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return torch.nn.functional.interpolate(x, scale_factor=4, mode="nearest")


@pytest.fixture
def stand_in() -> CountingUpscaler:
    return CountingUpscaler()


@pytest.fixture
def client(tmp_path: Path, weights_dir: Path, stand_in: CountingUpscaler) -> Iterator[TestClient]:
    settings = make_settings(tmp_path, weights_dir, mode="test")
    runtime = ModelRuntime.load(settings)  # test mode: no weights read, no face models
    network = stand_in_model(stand_in)
    runtime.models = dict.fromkeys(runtime.models or {"photo": None}, network)
    runtime.model = network
    services = Services(settings, runtime=runtime)
    app = create_app(settings, services=services)
    assert services_of(app) is services
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def test_create_app_serves_through_the_handed_in_runtime(
    client: TestClient, stand_in: CountingUpscaler, chelsea: np.ndarray
) -> None:
    photo = chelsea[40:120, 150:270]
    response = client.post(
        "/v1/phota/enhance", headers=HEADERS, json={"image": encode_b64(photo, "PNG"), "output_format": "png"}
    )
    assert response.status_code == 200, response.text
    assert stand_in.calls > 0
    out = np.asarray(Image.open(io.BytesIO(base64.b64decode(response.json()["images"][0]))).convert("RGB"))
    assert max(out.shape[:2]) == 2048
    # Test mode's own stand-in is the network "none": this answer went through the handed-in one.
    explanation = json.loads(response.headers["X-Enhance-Parameters"])
    assert (explanation["mode"], explanation["network"]) == ("test", "x4plus")
    assert stand_in.calls >= explanation["batches"] >= 1


def test_the_lifespan_builds_the_rest_around_the_handed_in_parts(
    client: TestClient, stand_in: CountingUpscaler, chelsea: np.ndarray
) -> None:
    services = services_of(client.app)
    assert services.accounts is not None and services.profiles is not None
    assert services.jobs is not None and services.worker is not None
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["features"]["identity"] == {
        "enabled": False,
        "detail": "no face models handed in with the runtime: profiles and profile_ids are refused",
    }
    # An asynchronous job, run by the job service the lifespan built, goes through the stand-in too.
    before = stand_in.calls
    accepted = client.post(
        "/v1/phota/enhance",
        headers=HEADERS,
        json={"image": encode_b64(chelsea[40:120, 150:270], "PNG"), "output_format": "png", "async": True},
    )
    assert accepted.status_code == 202, accepted.text
    document = poll_job(client, accepted.json()["job_id"], HEADERS)
    assert document["status"] == "SUCCEEDED", document
    out = np.asarray(Image.open(io.BytesIO(base64.b64decode(document["result"]["images"][0]))).convert("RGB"))
    assert max(out.shape[:2]) == 2048
    assert stand_in.calls > before


def test_a_part_not_started_yet_answers_not_ready(tmp_path: Path, weights_dir: Path) -> None:
    services = Services(make_settings(tmp_path, weights_dir, mode="test"))
    with pytest.raises(NotReadyError, match="models are still loading"):
        services.started_runtime()
    with pytest.raises(NotReadyError, match="job service is still starting"):
        services.started_jobs()
