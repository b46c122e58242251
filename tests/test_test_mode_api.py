"""Test mode (``ENHANCE_MODE=test``) keeps the enhance contract: the API suite's own checks run again
here with the environment in test mode (every ``Settings`` the reused tests build reads it), and the
labels of test mode are checked where a client sees them."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import torch
from fastapi.testclient import TestClient

from server.services import services_of
from tests.test_api_enhance import (
    HEADERS,
    client,
    photo_b64,
    test_alpha_is_kept_in_png_and_flattened_in_jpg,
    test_bad_requests_are_400_with_a_precise_code,
    test_body_over_the_limit_is_413,
    test_body_validation_is_422_in_fastapi_shape,
    test_default_output_format_follows_the_hosted_schedule,
    test_enhance_returns_a_2k_image_in_the_hosted_shape,
    test_health_readiness_and_metrics_need_no_key,
    test_jpg_output_embeds_srgb_and_keeps_exif_without_orientation,
    test_missing_or_unknown_key_is_401,
    test_num_output_images_gives_distinct_deterministic_variations,
    test_openapi_document_uses_the_hosted_names,
    test_request_id_is_generated_when_missing_or_insane,
    test_second_account_key_is_accepted,
    test_tampered_download_url_is_forbidden,
    test_unexpected_failure_is_a_generic_500,
    test_unknown_fields_are_ignored,
    test_unknown_profile_candidates_are_404,
    test_unknown_route_is_404_with_code,
    test_unsupported_format_is_400,
    test_urls_mode_returns_signed_links_fetchable_without_a_key,
)
from tests.test_prompt_api import (
    test_prompt_changes_the_reported_parameters,
    test_prompt_size_intent_changes_the_output_size,
)

# Fixtures and tests of the API suites, collected again in this module (so in test mode).
__all__ = [
    "client",
    "photo_b64",
    "test_alpha_is_kept_in_png_and_flattened_in_jpg",
    "test_bad_requests_are_400_with_a_precise_code",
    "test_body_over_the_limit_is_413",
    "test_body_validation_is_422_in_fastapi_shape",
    "test_default_output_format_follows_the_hosted_schedule",
    "test_enhance_returns_a_2k_image_in_the_hosted_shape",
    "test_health_readiness_and_metrics_need_no_key",
    "test_jpg_output_embeds_srgb_and_keeps_exif_without_orientation",
    "test_missing_or_unknown_key_is_401",
    "test_num_output_images_gives_distinct_deterministic_variations",
    "test_openapi_document_uses_the_hosted_names",
    "test_prompt_changes_the_reported_parameters",
    "test_prompt_size_intent_changes_the_output_size",
    "test_request_id_is_generated_when_missing_or_insane",
    "test_second_account_key_is_accepted",
    "test_tampered_download_url_is_forbidden",
    "test_unexpected_failure_is_a_generic_500",
    "test_unknown_fields_are_ignored",
    "test_unknown_profile_candidates_are_404",
    "test_unknown_route_is_404_with_code",
    "test_unsupported_format_is_400",
    "test_urls_mode_returns_signed_links_fetchable_without_a_key",
]


@pytest.fixture(scope="module", autouse=True)
def test_mode_environment() -> Iterator[None]:
    """``ENHANCE_MODE=test`` for everything this module builds, the reused fixtures included."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ENHANCE_MODE", "test")
        yield


def test_reused_suite_runs_without_any_network_weights(client: TestClient) -> None:
    runtime = services_of(client.app).runtime
    assert runtime.settings.mode == "test"
    models = runtime.models.values()
    assert {model.network.name for model in models} == {"none"}
    assert sum(p.numel() for model in models for p in model.fast.parameters()) == 0


def test_enhance_is_labelled_test_mode_in_its_parameters(client: TestClient, photo_b64: str) -> None:
    response = client.post("/v1/phota/enhance", headers=HEADERS, json={"image": photo_b64, "num_output_images": 2})
    assert response.status_code == 200
    parameters = json.loads(response.headers["X-Enhance-Parameters"])
    assert parameters["mode"] == "test" and parameters["network"] == "none"
    assert parameters["output"] == [2048, 1365] and parameters["tiles"] == 1
    assert [v["name"] for v in parameters["variations"]] == ["inferred", "natural"]
    assert {"analysis_s", "network_s", "render_s", "encode_s", "total_s"} <= set(parameters["timings"])


def test_readiness_and_metrics_say_test_mode(client: TestClient) -> None:
    ready = client.get("/readyz").json()
    assert {k: ready[k] for k in ("status", "device", "network", "mode")} == {
        "status": "ready",
        "device": "cpu",
        "network": "none",
        "mode": "test",
    }
    metrics = client.get("/metrics").text
    assert 'enhance_mode_info{mode="test",network="none"} 1.0' in metrics


def test_start_logs_a_test_mode_warning(
    tmp_path_factory: pytest.TempPathFactory, caplog: pytest.LogCaptureFixture
) -> None:
    from server import Settings, create_app

    settings = Settings(data_dir=tmp_path_factory.mktemp("warn"), api_keys="k", device="cpu")
    with caplog.at_level("WARNING"), TestClient(create_app(settings)):
        pass
    assert any(r.levelname == "WARNING" and "TEST MODE" in r.getMessage() for r in caplog.records)


def test_stand_in_upscaler_is_deterministic_and_close_to_bicubic(astronaut: object) -> None:
    from models.sr import build_weightless_model, get_network
    from tests.conftest import to_float

    model = build_weightless_model(get_network("none"), torch.device("cpu"))
    image = torch.from_numpy(to_float(astronaut)[200:264, 200:264]).permute(2, 0, 1)[None]  # type: ignore[index]
    with torch.inference_mode():
        first, second = model.fast(image), model.fast(image.clone())
        bicubic = torch.nn.functional.interpolate(image, scale_factor=4, mode="bicubic").clamp(0, 1)
    assert first.shape == (1, 3, 256, 256) and torch.equal(first, second)
    difference = (first - bicubic).abs()
    assert 0.002 < float(difference.mean()) < 0.03  # a mild sharpening, not a copy and not a different image


@pytest.mark.parametrize(
    ("size", "mode"),
    [((1, 1), "RGB"), ((2, 2), "RGBA"), ((1, 300), "RGB"), ((9, 17), "L"), ((3, 4000), "RGB"), ((4000, 6), "RGB")],
)
def test_tiny_and_thin_images_are_enhanced_to_their_planned_size(
    client: TestClient, size: tuple[int, int], mode: str
) -> None:
    """A 1-px image blown up to 2048 px once took 18 s in its sharpening blur (a 2305-tap kernel as
    shifted sums; now by FFT) and the ×1024 upscale's phases; it is an ordinary request now. Strips a
    few pixels wide made the face detector's convolutions fail (a 500 in the hour-long soak)."""
    import base64
    import io

    import numpy as np
    from PIL import Image

    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    pixels = np.random.default_rng(5).integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels.squeeze(2) if channels == 1 else pixels, mode).save(buffer, "PNG")
    body = {"image": base64.b64encode(buffer.getvalue()).decode(), "num_output_images": 2, "output_format": "png"}
    response = client.post("/v1/phota/enhance", headers=HEADERS, json=body)
    assert response.status_code == 200, response.text
    parameters = json.loads(response.headers["X-Enhance-Parameters"])
    width, height = parameters["output"]
    assert max(width, height) >= 2048 or max(size) >= 2048
    for encoded in response.json()["images"]:
        image = Image.open(io.BytesIO(base64.b64decode(encoded)))
        assert image.size == (width, height)
        assert image.mode == ("RGBA" if mode == "RGBA" else "RGB")
