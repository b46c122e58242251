"""``X-Enhance-Parameters`` keeps its JSON: keys, their order, value types and rounding, for real requests.

The expected headers (tests/data/explain_headers.json) were recorded from the service before the
explanation became typed end to end (issue 13), so this proves the typed :class:`Explanation` still
serialises to the header clients have always read. Timings vary: for them only the keys and the
number type are compared. Other numbers may differ in their last rounded digit on another CPU (the
estimators' float arithmetic), so they are compared within that digit, and their rounding is checked.

Requests run in the service's test mode (stand-in network, every other stage real). To record the
file again after a deliberate change of the header: ``ENHANCE_RECORD_HEADERS=1 pytest
tests/test_explain_header.py`` (and say why in the commit).
"""

from __future__ import annotations

import base64
import io
import json
import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from models.analysis import FaceBox, analyse_image
from models.faces import FaceModelFiles, FaceModels, IdentityPolicy, KnownProfile, detect_faces
from models.pipeline import (
    EnhanceOptions,
    EnhancePipeline,
    PipelineRequest,
    enhance_request,
    estimates_json,
    prompt_json,
)
from models.prompt import parse_prompt
from models.sr import SRModel
from server import create_app
from tests.conftest import encode_b64, stand_in_model
from tests.test_api_enhance import HEADERS, make_settings
from tests.test_conductor import _Bicubic4x

EXPECTED_FILE = Path(__file__).parent / "data" / "explain_headers.json"
RECORD = os.environ.get("ENHANCE_RECORD_HEADERS") == "1"
FACE_NAMES = {
    "embedder": "dlib-face-recognition-resnet-v1",
    "landmarks": "dlib-shape-predictor-5",
    "detector": "dlib-mmod-face-detector",
}


def _expected(case: str) -> Any:
    return json.loads(EXPECTED_FILE.read_text())[case]


def check_header(case: str, header: dict[str, Any]) -> None:
    """``header`` (parsed JSON) has the recorded layout of ``case``; in record mode, store it instead."""
    if RECORD:
        stored = json.loads(EXPECTED_FILE.read_text()) if EXPECTED_FILE.exists() else {}
        stored[case] = header
        EXPECTED_FILE.write_text(json.dumps(stored, indent=1) + "\n")
        pytest.skip(f"recorded {case}")
    assert_same_layout(header, _expected(case), "$")


def assert_same_layout(actual: Any, expected: Any, where: str, *, timing: bool = False) -> None:
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{where}: {actual!r} is not an object"
        assert list(actual) == list(expected), f"{where}: keys {list(actual)} != {list(expected)}"
        for key in expected:
            inside = timing or key == "timings"
            assert_same_layout(actual[key], expected[key], f"{where}.{key}", timing=inside)
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), f"{where}: {actual!r} != {expected!r}"
        for index, (a, e) in enumerate(zip(actual, expected, strict=True)):
            assert_same_layout(a, e, f"{where}[{index}]", timing=timing)
    elif isinstance(expected, float) or (timing and isinstance(expected, int) and not isinstance(expected, bool)):
        assert isinstance(actual, float | int) and not isinstance(actual, bool), f"{where}: {actual!r} not a number"
        if timing:
            assert actual >= 0 and _decimals(actual) <= 4, f"{where}: {actual!r} (seconds, 4 decimals)"
            return
        assert isinstance(actual, float), f"{where}: {actual!r} is not a float like {expected!r}"
        assert _decimals(actual) <= max(3, _decimals(expected)), f"{where}: {actual!r} lost its rounding"
        assert abs(actual - expected) <= 0.0101 + 1e-3 * abs(expected), f"{where}: {actual!r} != {expected!r}"
    else:
        assert type(actual) is type(expected) and actual == expected, f"{where}: {actual!r} != {expected!r}"


def _decimals(value: float) -> int:
    text = repr(float(value))
    return 0 if "e" in text else len(text.split(".")[1].rstrip("0"))


def _header(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    return json.loads(response.headers["X-Enhance-Parameters"])  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def test_mode() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ENHANCE_MODE", "test")
        yield


@pytest.fixture(scope="module")
def client(test_mode: None, tmp_path_factory: pytest.TempPathFactory, weights_dir: Path) -> Iterator[TestClient]:
    app = create_app(make_settings(tmp_path_factory.mktemp("explain"), weights_dir))
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def faceless_client(
    test_mode: None, tmp_path_factory: pytest.TempPathFactory, weights_dir: Path
) -> Iterator[TestClient]:
    """The service where the face models cannot be had: no identity stage, no identity section."""
    from server import features

    def no_identity(settings: object) -> tuple[None, features.Feature]:
        return None, features.Feature(features.IDENTITY, False, "face models left out by the test")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(features, "load_identity", no_identity)
        app = create_app(make_settings(tmp_path_factory.mktemp("explain-faceless"), weights_dir))
        with TestClient(app, raise_server_exceptions=False) as test_client:
            yield test_client


@pytest.fixture(scope="module")
def portrait_jpeg(astronaut: np.ndarray) -> bytes:
    """The astronaut (one face: Eileen Collins), 256² JPEG at quality 80."""
    buffer = io.BytesIO()
    Image.fromarray(astronaut).resize((256, 256), Image.Resampling.LANCZOS).save(buffer, "JPEG", quality=80)
    return buffer.getvalue()


PROMPT = "sharper and warmer, dont denoise, keep the colurs; plus de contraste"


def test_header_of_a_portrait_with_a_prompt_keeps_its_layout(client: TestClient, portrait_jpeg: bytes) -> None:
    body = {"image": base64.b64encode(portrait_jpeg).decode(), "prompt": PROMPT, "output_format": "jpg"}
    header = _header(client.post("/v1/phota/enhance", headers=HEADERS, json=body))
    assert header["mode"] == "test" and header["identity"]["faces"]
    check_header("portrait_prompt", header)


def test_header_of_a_png_with_alpha_and_three_outputs_keeps_its_layout(client: TestClient, chelsea: np.ndarray) -> None:
    rgba = np.dstack([chelsea[40:120, 150:270], np.full((80, 120), 255, np.uint8)])
    rgba[:, :60, 3] = 0
    body = {"image": encode_b64(rgba, "PNG"), "num_output_images": 3}
    header = _header(client.post("/v1/phota/enhance", headers=HEADERS, json=body))
    assert [v["name"] for v in header["variations"]] == ["inferred", "natural", "detail"]
    assert header["identity"] == {"faces": [], "timings": header["identity"]["timings"]}
    check_header("alpha_three_outputs", header)


def test_header_without_face_models_keeps_its_layout(faceless_client: TestClient, portrait_jpeg: bytes) -> None:
    body = {"image": base64.b64encode(portrait_jpeg).decode(), "num_output_images": 2, "response_mode": "urls"}
    header = _header(faceless_client.post("/v1/phota/enhance", headers=HEADERS, json=body))
    assert header["identity"] is None and "identity_s" not in header["timings"]
    check_header("portrait_faceless_urls", header)


@pytest.fixture(scope="module")
def face_models(weights_dir: Path) -> FaceModels:
    import weights

    return FaceModels(FaceModelFiles(**{r: weights.model_file_path(n, weights_dir) for r, n in FACE_NAMES.items()}))


@pytest.fixture(scope="module")
def stand_in() -> SRModel:
    return stand_in_model(_Bicubic4x())


@pytest.mark.parametrize("guard", [True, False])
def test_header_identity_with_a_match_and_a_softened_face_keeps_its_layout(
    stand_in: SRModel, face_models: FaceModels, portrait_jpeg: bytes, guard: bool
) -> None:
    """The identity entries a request rarely shows: a candidate matched (match, distance) and, with a
    guard that tolerates no drift, a softened face (blend, drift_after); without the guard, drift only."""
    rgb = np.asarray(Image.open(io.BytesIO(portrait_jpeg)).convert("RGB"))
    (face,) = detect_faces(rgb, face_models)
    collins = KnownProfile("prof_collins", face_models.embed(rgb, [face.box])[0])
    pipeline = EnhancePipeline(
        networks={"photo": stand_in},
        options=EnhanceOptions(target_long_side=512, network_max_side=128, tile=64, overlap=8),
        faces=face_models,
        identity=IdentityPolicy(guard=guard, max_drift=1e-6),
    )
    request = PipelineRequest(source=portrait_jpeg, num_outputs=2, prompt="brighter", candidates=[collins])
    outcome = enhance_request(request, pipeline)
    assert outcome.counts == {"prof_collins": 2}
    header = json.loads(json.dumps(outcome.explanation.to_json()))
    check_header("conductor_match_guard" if guard else "conductor_match_unguarded", header)


def test_estimates_section_lists_eight_faces_and_says_when_none_were_looked_for(astronaut: np.ndarray) -> None:
    rgb = (astronaut[:128, :128].astype(np.float32) / 255.0).copy()
    skipped = analyse_image(rgb, detect=False)
    assert estimates_json(skipped)["faces"] == {"estimated": False}
    crowd = replace(skipped, faces=[FaceBox(x=4 * i, y=2 * i, size=20 + i) for i in range(10)])
    faces = estimates_json(crowd)["faces"]
    assert faces["count"] == 10 and faces["sizes"] == list(range(20, 28))
    assert faces["boxes"][7] == [28, 14, 27] and len(faces["boxes"]) == 8


def test_prompt_section_names_corrections_only_when_there_were_some() -> None:
    plain = prompt_json(parse_prompt("sharper, not warmer"))
    assert list(plain) == ["intents", "unrecognised"]
    corrected = prompt_json(parse_prompt("sharpr please"))
    assert list(corrected) == ["intents", "unrecognised", "corrected"] and corrected["corrected"] == {
        "sharpr": "sharper"
    }
