"""POST /v1/phota/enhance end to end on CPU with the real x4plus weights and real photos."""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageCms

from server import Settings, create_app
from server.services import services_of
from tests.conftest import decode_b64, encode_b64

KEY_A = "test-key-account-a"
KEY_B = "test-key-account-b"
HEADERS = {"X-API-Key": KEY_A}


def make_settings(tmp_path: Path, weights_dir: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "data_dir": tmp_path,
        "weights_dir": weights_dir,
        "api_keys": f"{KEY_A},{KEY_B}",
        "device": "cpu",
        "network_max_side": 48,  # keeps the real network's CPU time to a second per request
        "cpu_tile_size": 64,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, weights_dir: Path) -> Iterator[TestClient]:
    app = create_app(make_settings(tmp_path_factory.mktemp("data"), weights_dir))
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def photo_b64(chelsea: np.ndarray) -> str:
    """A 120×80 JPEG crop of a real photo (the cat's face)."""
    return encode_b64(chelsea[40:120, 150:270], "JPEG", quality=90)


def test_enhance_returns_a_2k_image_in_the_hosted_shape(client: TestClient, photo_b64: str) -> None:
    response = client.post("/v1/phota/enhance", headers=HEADERS, json={"image": photo_b64, "output_format": "png"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"known_subjects", "images", "download_urls"}
    assert body["known_subjects"] == {"counts": {}}
    assert body["download_urls"] == []
    assert len(body["images"]) == 1
    assert not body["images"][0].startswith("data:")
    image = decode_b64(body["images"][0])
    assert image.format == "PNG"
    assert image.size == (2048, 1365)


def test_enhance_sets_the_contract_headers(client: TestClient, photo_b64: str) -> None:
    response = client.post(
        "/v1/phota/enhance", headers={**HEADERS, "X-Request-Id": "client-id-42"}, json={"image": photo_b64}
    )
    assert response.status_code == 200
    assert response.headers["X-Request-Id"] == "client-id-42"
    assert response.headers["X-Phota-Deprecation-Date"] == "2026-05-08"
    parameters = json.loads(response.headers["X-Enhance-Parameters"])
    assert parameters["input"] == [120, 80]
    assert parameters["output"] == [2048, 1365]
    assert parameters["network"] == "x4plus"
    assert parameters["tiles"] >= 1
    assert [v["name"] for v in parameters["variations"]] == ["inferred"]
    assert parameters["timings"]["total_s"] > 0


def test_request_id_is_generated_when_missing_or_insane(client: TestClient) -> None:
    first = client.get("/healthz")
    second = client.get("/healthz", headers={"X-Request-Id": "bad id with spaces\t"})
    assert len(first.headers["X-Request-Id"]) >= 16
    assert second.headers["X-Request-Id"] != "bad id with spaces\t"
    assert first.headers["X-Request-Id"] != second.headers["X-Request-Id"]


def test_num_output_images_gives_distinct_deterministic_variations(client: TestClient, photo_b64: str) -> None:
    payload = {"image": photo_b64, "num_output_images": 3, "output_format": "png"}
    first = client.post("/v1/phota/enhance", headers=HEADERS, json=payload).json()["images"]
    second = client.post("/v1/phota/enhance", headers=HEADERS, json=payload).json()["images"]
    assert len(first) == 3
    assert first == second
    arrays = [np.asarray(decode_b64(b), dtype=np.float32) for b in first]
    for i in range(3):
        for j in range(i + 1, 3):
            assert np.abs(arrays[i] - arrays[j]).mean() > 0.5


@pytest.mark.parametrize(
    ("today", "expected"), [(dt.date(2026, 5, 7), "PNG"), (dt.date(2026, 5, 8), "JPEG"), (dt.date(2027, 1, 1), "JPEG")]
)
def test_default_output_format_follows_the_hosted_schedule(
    client: TestClient, photo_b64: str, today: dt.date, expected: str
) -> None:
    services_of(client.app).today = lambda: today
    try:
        response = client.post("/v1/phota/enhance", headers=HEADERS, json={"image": photo_b64})
    finally:
        services_of(client.app).today = lambda: dt.date.today()
    assert decode_b64(response.json()["images"][0]).format == expected


def test_default_output_format_is_overridable_by_configuration(
    tmp_path: Path, weights_dir: Path, photo_b64: str
) -> None:
    settings = make_settings(tmp_path, weights_dir, default_output_format="png")
    app = create_app(settings, today=lambda: dt.date(2027, 1, 1))
    with TestClient(app) as own:
        response = own.post("/v1/phota/enhance", headers=HEADERS, json={"image": photo_b64})
    assert decode_b64(response.json()["images"][0]).format == "PNG"


def test_jpg_output_embeds_srgb_and_keeps_exif_without_orientation(client: TestClient, chelsea: np.ndarray) -> None:
    exif = Image.Exif()
    exif[0x010F] = "TestCamera"  # Make
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display
    payload = encode_b64(chelsea[40:120, 150:270], "JPEG", quality=90, exif=exif.tobytes())
    response = client.post("/v1/phota/enhance", headers=HEADERS, json={"image": payload, "output_format": "jpg"})
    image = decode_b64(response.json()["images"][0])
    assert image.format == "JPEG"
    assert image.size == (1365, 2048)  # orientation applied: portrait now
    profile = ImageCms.ImageCmsProfile(io.BytesIO(image.info["icc_profile"]))
    assert "sRGB" in ImageCms.getProfileDescription(profile)
    out_exif = image.getexif()
    assert out_exif.get(0x010F) == "TestCamera"
    assert out_exif.get(0x0112) in (None, 1)


def test_alpha_is_kept_in_png_and_flattened_in_jpg(client: TestClient, chelsea: np.ndarray) -> None:
    rgba = np.dstack([chelsea[40:120, 150:270], np.full((80, 120), 255, np.uint8)])
    rgba[:, :60, 3] = 0
    payload = encode_b64(rgba, "PNG")
    kept = client.post("/v1/phota/enhance", headers=HEADERS, json={"image": payload})
    image = decode_b64(kept.json()["images"][0])
    assert image.mode == "RGBA"
    alpha = np.asarray(image)[:, :, 3]
    assert alpha[:, :900].max() < 10 and alpha[:, 1100:].min() > 245
    assert json.loads(kept.headers["X-Enhance-Parameters"])["alpha"].startswith("kept")

    flat = client.post("/v1/phota/enhance", headers=HEADERS, json={"image": payload, "output_format": "jpg"})
    flat_image = decode_b64(flat.json()["images"][0])
    assert flat_image.mode == "RGB"
    assert np.asarray(flat_image)[:, :900].mean() > 245  # transparent half composited on white
    assert "flattened" in json.loads(flat.headers["X-Enhance-Parameters"])["alpha"]


def test_urls_mode_returns_signed_links_fetchable_without_a_key(client: TestClient, photo_b64: str) -> None:
    response = client.post(
        "/v1/phota/enhance",
        headers=HEADERS,
        json={"image": photo_b64, "response_mode": "urls", "num_output_images": 2, "output_format": "jpg"},
    )
    body = response.json()
    assert body["images"] == []
    assert len(body["download_urls"]) == 2
    for url in body["download_urls"]:
        assert url.startswith("http://testserver/v1/phota/files/")
        download = client.get(url)
        assert download.status_code == 200
        assert download.headers["content-type"] == "image/jpeg"
        assert Image.open(io.BytesIO(download.content)).size == (2048, 1365)


def test_tampered_download_url_is_forbidden(client: TestClient, photo_b64: str) -> None:
    url = client.post("/v1/phota/enhance", headers=HEADERS, json={"image": photo_b64, "response_mode": "urls"}).json()[
        "download_urls"
    ][0]
    signature = url.rsplit("signature=", 1)[1]
    forged = url.replace(signature, ("0" if signature[0] != "0" else "1") + signature[1:])
    assert client.get(forged).status_code == 403
    later = url.replace("expires=", "expires=9")  # extending the expiry breaks the signature
    response = client.get(later)
    assert response.status_code == 403
    assert response.json()["code"] == "FORBIDDEN"


@pytest.mark.parametrize("headers", [{}, {"X-API-Key": "not-a-key"}])
def test_missing_or_unknown_key_is_401(client: TestClient, photo_b64: str, headers: dict[str, str]) -> None:
    response = client.post("/v1/phota/enhance", headers=headers, json={"image": photo_b64})
    assert response.status_code == 401
    body = response.json()
    assert body["detail"] == "Missing or invalid API key in the X-API-Key header."
    assert body["code"] == "UNAUTHORIZED"
    assert body["request_id"] == response.headers["X-Request-Id"]


def test_second_account_key_is_accepted(client: TestClient, photo_b64: str) -> None:
    response = client.post("/v1/phota/enhance", headers={"X-API-Key": KEY_B}, json={"image": photo_b64})
    assert response.status_code == 200


def test_unknown_route_is_404_with_code(client: TestClient) -> None:
    response = client.get("/v1/phota/nothing-here", headers=HEADERS)
    assert response.status_code == 404
    assert response.json()["code"] == "NOT_FOUND"
    assert response.json()["request_id"] == response.headers["X-Request-Id"]


@pytest.mark.parametrize("extra", [{"profile_ids": ["prof_unknown"]}, {"prompt": "sharpen [[prof_unknown]] please"}])
def test_unknown_profile_candidates_are_404(client: TestClient, photo_b64: str, extra: dict[str, object]) -> None:
    response = client.post("/v1/phota/enhance", headers=HEADERS, json={"image": photo_b64, **extra})
    assert response.status_code == 404
    assert response.json()["code"] == "NOT_FOUND"
    assert "prof_unknown" in response.json()["detail"]


@pytest.mark.parametrize(
    ("payload", "location"),
    [
        ({}, ["body", "image"]),
        ({"image": "x", "num_output_images": 5}, ["body", "num_output_images"]),
        ({"image": "x", "num_output_images": 0}, ["body", "num_output_images"]),
        ({"image": "x", "output_format": "jpeg"}, ["body", "output_format"]),
        ({"image": "x", "response_mode": "files"}, ["body", "response_mode"]),
    ],
)
def test_body_validation_is_422_in_fastapi_shape(
    client: TestClient, payload: dict[str, object], location: list[str]
) -> None:
    response = client.post("/v1/phota/enhance", headers=HEADERS, json=payload)
    assert response.status_code == 422
    errors = response.json()["detail"]
    assert any(error["loc"] == location for error in errors)
    assert {"type", "loc", "msg"} <= set(errors[0])


def test_unknown_fields_are_ignored(client: TestClient, photo_b64: str) -> None:
    response = client.post("/v1/phota/enhance", headers=HEADERS, json={"image": photo_b64, "pro_mode": True})
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("payload", "code", "fragment"),
    [
        ({"image": "%%%not base64%%%"}, "INVALID_IMAGE", "base64"),
        ({"image": base64.b64encode(b"just some text, not an image").decode()}, "INVALID_IMAGE", ""),
        ({"image": "http://127.0.0.1:9/photo.jpg"}, "IMAGE_FETCH_FAILED", "loopback"),
        ({"image": "http://169.254.169.254/latest/meta-data"}, "IMAGE_FETCH_FAILED", ""),
        ({"image": "file:///etc/passwd"}, "IMAGE_FETCH_FAILED", ""),
        ({"image": "x", "async": True, "callback_url": "ftp://example.com/hook"}, "BAD_REQUEST", "callback_url"),
        ({"image": "x", "callback_url": "https://example.invalid/hook"}, "BAD_REQUEST", "callback_url"),
    ],
)
def test_bad_requests_are_400_with_a_precise_code(
    client: TestClient, payload: dict[str, object], code: str, fragment: str
) -> None:
    response = client.post("/v1/phota/enhance", headers=HEADERS, json=payload)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == code
    assert fragment.lower() in body["detail"].lower()
    assert body["request_id"] == response.headers["X-Request-Id"]


def test_unsupported_format_is_400(client: TestClient, chelsea: np.ndarray) -> None:
    buffer = io.BytesIO()
    Image.fromarray(chelsea[:64, :64]).save(buffer, format="ICO")
    response = client.post(
        "/v1/phota/enhance", headers=HEADERS, json={"image": base64.b64encode(buffer.getvalue()).decode()}
    )
    assert response.status_code == 400
    assert response.json()["code"] == "UNSUPPORTED_FORMAT"


def test_body_over_the_limit_is_413(tmp_path: Path, weights_dir: Path, photo_b64: str) -> None:
    app = create_app(make_settings(tmp_path, weights_dir, max_body_bytes=4096))
    with TestClient(app) as own:
        response = own.post("/v1/phota/enhance", headers=HEADERS, json={"image": photo_b64})

        def chunks() -> Iterator[bytes]:
            yield b'{"image": "'
            for _ in range(10):
                yield b"A" * 1024
            yield b'"}'

        streamed = own.post(
            "/v1/phota/enhance",
            headers={**HEADERS, "Content-Type": "application/json"},
            content=chunks(),
        )
    assert response.status_code == 413
    assert response.json()["code"] == "PAYLOAD_TOO_LARGE"
    assert streamed.status_code == 413
    assert streamed.json()["code"] == "PAYLOAD_TOO_LARGE"


def test_unexpected_failure_is_a_generic_500(
    client: TestClient, photo_b64: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(services_of(client.app).runtime, "run", explode)
    response = client.post("/v1/phota/enhance", headers=HEADERS, json={"image": photo_b64})
    assert response.status_code == 500
    body = response.json()
    assert body["code"] == "INTERNAL_ERROR"
    assert "secret" not in response.text and "Traceback" not in response.text
    assert body["request_id"] == response.headers["X-Request-Id"]


def test_out_of_memory_after_retries_is_503_with_retry_after(
    client: TestClient, photo_b64: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from models.errors import ModelOutOfMemoryError

    def oom(*_args: object, **_kwargs: object) -> None:
        raise ModelOutOfMemoryError("out of GPU memory even with 64px tiles; try again later")

    monkeypatch.setattr(services_of(client.app).runtime, "run", oom)
    response = client.post("/v1/phota/enhance", headers=HEADERS, json={"image": photo_b64})
    assert response.status_code == 503
    assert response.json()["code"] == "SERVICE_UNAVAILABLE"
    assert int(response.headers["Retry-After"]) >= 1


def test_health_readiness_and_metrics_need_no_key(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready" and ready.json()["device"] == "cpu"
    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    assert "enhance_http_request_seconds" in metrics.text


def test_openapi_document_uses_the_hosted_names(client: TestClient) -> None:
    response = client.get("/v1/phota/openapi.json")
    assert response.status_code == 200
    document = response.json()
    schemas = document["components"]["schemas"]
    assert {"EnhanceRequest", "EditResponse", "KnownSubjects"} <= set(schemas)
    assert "async" in schemas["EnhanceRequest"]["properties"]
    assert schemas["EnhanceRequest"]["required"] == ["image"]
    assert "APIKeyHeader" in document["components"]["securitySchemes"]
    assert "/v1/phota/enhance" in document["paths"]


def test_concurrent_requests_each_get_their_own_image(
    client: TestClient, astronaut: np.ndarray, coffee: np.ndarray, chelsea: np.ndarray
) -> None:
    """Three different photos sent at once (their tiles share network batches) come back each equal
    to its own result sent alone."""
    photos = [astronaut[180:260, 200:320], coffee[100:180, 300:420], chelsea[40:120, 150:270]]
    bodies = [
        {"image": encode_b64(photo, "PNG"), "output_format": "png", "prompt": "Make it 2x larger."} for photo in photos
    ]

    def send(body: dict[str, object]) -> np.ndarray:
        response = client.post("/v1/phota/enhance", headers=HEADERS, json=body)
        assert response.status_code == 200, response.text
        return np.asarray(decode_b64(response.json()["images"][0]).convert("RGB"))

    alone = [send(body) for body in bodies]
    with ThreadPoolExecutor(max_workers=3) as pool:
        together = list(pool.map(send, bodies))
    for single, shared in zip(alone, together, strict=True):
        assert single.shape == shared.shape == (160, 240, 3)
        assert int(np.abs(single.astype(int) - shared.astype(int)).max()) <= 1
    # And they are three different images, not one answer repeated.
    assert np.abs(together[0].astype(int) - together[1].astype(int)).mean() > 10


def test_full_queue_is_503_with_retry_after_while_admitted_requests_finish(
    tmp_path: Path, weights_dir: Path, photo_b64: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(tmp_path, weights_dir, max_concurrent_jobs=1, max_queued_jobs=0, retry_after_s=7)
    with TestClient(create_app(settings), raise_server_exceptions=False) as own:
        engine = services_of(own.app).runtime
        real, started, release = engine.run, threading.Event(), threading.Event()

        def gated(*args: object, **kwargs: object) -> object:
            started.set()
            assert release.wait(30)
            return real(*args, **kwargs)

        monkeypatch.setattr(engine, "run", gated)
        with ThreadPoolExecutor(max_workers=1) as pool:
            first = pool.submit(own.post, "/v1/phota/enhance", headers=HEADERS, json={"image": photo_b64})
            assert started.wait(30)
            refused = own.post("/v1/phota/enhance", headers=HEADERS, json={"image": photo_b64})
            release.set()
            assert first.result(60).status_code == 200
    assert refused.status_code == 503
    assert refused.json()["code"] == "SERVICE_UNAVAILABLE"
    assert refused.headers["Retry-After"] == "7"


def test_enhance_passes_the_admission_gate_once_per_request(
    client: TestClient, photo_b64: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from server.worker import EnhanceWorker

    admitted: list[object] = []
    real = EnhanceWorker.run_cancellable

    async def counting(self: EnhanceWorker, fn: object, **kwargs: object) -> object:
        admitted.append(fn)
        return await real(self, fn, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(EnhanceWorker, "run_cancellable", counting)
    response = client.post("/v1/phota/enhance", headers=HEADERS, json={"image": photo_b64, "num_output_images": 2})
    assert response.status_code == 200
    parameters = json.loads(response.headers["X-Enhance-Parameters"])
    assert "identity_s" in parameters["timings"] and parameters["identity"] is not None  # identity ran too
    assert len(admitted) == 1
