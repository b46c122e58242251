"""The prompt and the inferred parameters through the HTTP API: X-Enhance-Parameters explains them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from server import create_app
from tests.conftest import decode_b64, encode_b64
from tests.test_analysis import cartoon
from tests.test_api_enhance import HEADERS, make_settings


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, weights_dir: Path) -> Iterator[TestClient]:
    app = create_app(make_settings(tmp_path_factory.mktemp("data"), weights_dir))
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def photo_b64(chelsea: np.ndarray) -> str:
    return encode_b64(chelsea[40:120, 150:270], "JPEG", quality=70)


def enhance(client: TestClient, **body: object) -> tuple[dict, dict]:  # type: ignore[type-arg]
    response = client.post("/v1/phota/enhance", headers=HEADERS, json=body)
    assert response.status_code == 200, response.text
    return response.json(), json.loads(response.headers["X-Enhance-Parameters"])


def test_header_carries_estimates_plan_and_per_output_parameters(client: TestClient, photo_b64: str) -> None:
    _, parameters = enhance(client, image=photo_b64, num_output_images=2)
    estimates = parameters["estimates"]
    assert (estimates["jpeg_quality"], estimates["jpeg_quality_source"]) == (70, "tables")
    assert estimates["content"] == "photo"
    assert estimates["faces"]["estimated"] is True
    assert parameters["plan"]["content"] == "photo"
    assert [v["name"] for v in parameters["variations"]] == ["inferred", "natural"]
    assert parameters["variations"][1]["strength"] < parameters["variations"][0]["strength"]
    assert parameters["prompt"] == {"intents": [], "unrecognised": []}
    assert parameters["timings"]["analysis_s"] > 0


def test_prompt_changes_the_reported_parameters(client: TestClient, photo_b64: str) -> None:
    _, plain = enhance(client, image=photo_b64)
    _, steered = enhance(client, image=photo_b64, prompt="sharper and warmer, keep grain; plus de contraste")
    assert [i["name"] for i in steered["prompt"]["intents"]] == ["sharper", "warmer", "keep_grain"]
    assert steered["prompt"]["unrecognised"] == ["plus de contraste"]
    before, after = plain["variations"][0], steered["variations"][0]
    assert after["sharpen"] > before["sharpen"]
    assert after["warmth"] > before["warmth"]
    assert after["grain"] > before["grain"]


def test_prompt_size_intent_changes_the_output_size(client: TestClient, photo_b64: str) -> None:
    body, parameters = enhance(client, image=photo_b64, prompt="2x please", output_format="png")
    assert parameters["output"] == [240, 160]
    assert decode_b64(body["images"][0]).size == (240, 160)


def test_illustration_is_routed_to_the_illustration_network(client: TestClient) -> None:
    _, parameters = enhance(client, image=encode_b64(cartoon(1, side=96), "PNG"), prompt="keep size")
    assert parameters["estimates"]["content"] == "illustration"
    assert parameters["network"] == "x4plus-anime"


@pytest.mark.parametrize("asynchronous", [False, True])
def test_a_prompt_beyond_the_limit_is_a_400_before_any_work(
    client: TestClient, photo_b64: str, asynchronous: bool
) -> None:
    from server.enhancing import MAX_PROMPT_CHARS

    prompt = "sharper " * (MAX_PROMPT_CHARS // 8 + 1)
    body = {"image": photo_b64, "prompt": prompt, "async": asynchronous}
    response = client.post("/v1/phota/enhance", headers=HEADERS, json=body)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "BAD_REQUEST"
    assert f"at most {MAX_PROMPT_CHARS:,}" in response.json()["detail"]


def test_a_prompt_at_the_limit_is_read_whole() -> None:
    import anyio

    from server.enhance_bodies import EnhanceRequest
    from server.enhancing import MAX_PROMPT_CHARS, read_request_prompt

    prompt = ("warmer, " * MAX_PROMPT_CHARS)[: MAX_PROMPT_CHARS - len("keep grain")] + "keep grain"
    steering = anyio.run(read_request_prompt, EnhanceRequest(image="x", prompt=prompt))
    assert [intent.name for intent in steering.intents] == ["warmer", "keep_grain"]
