"""The request conductor (``models.pipeline.enhance_request``): stages in order, one explanation.

The network is a stand-in (bicubic ×4): these tests are about the conductor, not about pixels."""

from __future__ import annotations

import ast
import io
import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from models.errors import InvalidImageError, UnsupportedFormatError
from models.faces import FaceModelFiles, FaceModels
from models.pipeline import (
    CHECK_SIDE,
    EnhanceOptions,
    EnhancePipeline,
    PipelineRequest,
    Timings,
    candidate_ids,
    check_source,
    choose_format,
    enhance_request,
    read_prompt,
)
from models.prompt import merge_candidate_ids
from models.sr import SRModel
from tests.conftest import stand_in_model

HEADER_KEYS = [
    "input",
    "network_input",
    "output",
    "network",
    "device",
    "dtype",
    "tile",
    "overlap",
    "tiles",
    "batches",
    "oom_retries",
    "nan_fallbacks",
    "estimates",
    "prompt",
    "degradation",
    "plan",
    "tone_corrections",
    "variations",
    "alpha",
    "timings",
    "source_format",
    "original_size",
    "output_format",
    "identity",
]


class _Bicubic4x(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=4, mode="bicubic", align_corners=False).clamp(0, 1)


@pytest.fixture(scope="module")
def stand_in() -> SRModel:
    return stand_in_model(_Bicubic4x())


def _file(image: np.ndarray, fmt: str = "JPEG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, fmt)
    return buffer.getvalue()


def _options() -> EnhanceOptions:
    return EnhanceOptions(target_long_side=512, network_max_side=128, tile=64, overlap=8)


def test_enhance_request_runs_the_stages_from_bytes_to_encoded_files(stand_in: SRModel, coffee: np.ndarray) -> None:
    small = np.asarray(Image.fromarray(coffee).resize((150, 100), Image.Resampling.LANCZOS))
    pipeline = EnhancePipeline(networks={"photo": stand_in}, options=_options())
    outcome = enhance_request(PipelineRequest(source=_file(small), num_outputs=2, prompt="sharper"), pipeline)
    assert outcome.output_format == "png" and len(outcome.outputs) == 2
    for blob in outcome.outputs:
        image = Image.open(io.BytesIO(blob))
        assert image.format == "PNG" and image.size == (512, 341)
    header = outcome.explanation.to_json()
    assert header["input"] == [150, 100] and header["output"] == [512, 341]
    assert header["source_format"] == "jpeg" and header["original_size"] == [150, 100]
    assert [v["name"] for v in header["variations"]] == ["inferred", "natural"]
    assert [i["name"] for i in header["prompt"]["intents"]] == ["sharper"]
    assert header["identity"] is None and outcome.counts == {}
    assert all(header["timings"][key] > 0 for key in ("decode_s", "analysis_s", "network_s", "encode_s"))


def test_explanation_serialises_to_the_header_keys_in_order(stand_in: SRModel, astronaut: np.ndarray) -> None:
    small = np.asarray(Image.fromarray(astronaut).resize((96, 96), Image.Resampling.LANCZOS))
    pipeline = EnhancePipeline(networks={"photo": stand_in}, options=_options())
    header = enhance_request(PipelineRequest(source=_file(small), default_format="jpg"), pipeline).explanation
    parsed = json.loads(json.dumps(header.to_json()))
    assert list(parsed) == HEADER_KEYS
    assert parsed["output_format"] == "jpg" and parsed["alpha"] is None
    assert "identity_s" not in parsed["timings"]


def test_enhance_request_keeps_alpha_as_png_unless_jpg_is_asked(stand_in: SRModel, chelsea: np.ndarray) -> None:
    small = np.asarray(Image.fromarray(chelsea).resize((90, 60), Image.Resampling.LANCZOS))
    rgba = np.dstack([small, np.full(small.shape[:2], 128, np.uint8)])
    pipeline = EnhancePipeline(networks={"photo": stand_in}, options=_options())
    kept = enhance_request(PipelineRequest(source=_file(rgba, "PNG"), default_format="jpg"), pipeline)
    flat = enhance_request(PipelineRequest(source=_file(rgba, "PNG"), output_format="jpg"), pipeline)
    assert kept.output_format == "png" and Image.open(io.BytesIO(kept.outputs[0])).mode == "RGBA"
    assert kept.explanation.alpha is not None and kept.explanation.alpha.startswith("kept")
    assert flat.output_format == "jpg" and Image.open(io.BytesIO(flat.outputs[0])).mode == "RGB"
    assert flat.explanation.alpha is not None and "flattened" in flat.explanation.alpha


@pytest.mark.parametrize(
    ("requested", "has_alpha", "expected"),
    [(None, False, "jpg"), (None, True, "png"), ("png", False, "png"), ("jpg", True, "jpg")],
)
def test_choose_format_follows_request_then_alpha_then_default(
    requested: str | None, has_alpha: bool, expected: str
) -> None:
    chosen, _ = choose_format(requested, "jpg", has_alpha)  # type: ignore[arg-type]
    assert chosen == expected


def test_enhance_request_refuses_bytes_that_are_no_image(stand_in: SRModel) -> None:
    pipeline = EnhancePipeline(networks={"photo": stand_in}, options=_options())
    with pytest.raises(InvalidImageError):
        enhance_request(PipelineRequest(source=b"<html>not an image</html>"), pipeline)


def test_enhance_request_reads_a_prompt_it_is_given_read_only_once(stand_in: SRModel, coffee: np.ndarray) -> None:
    # The server reads the prompt once (candidates' ids) and hands over what it read: the pipeline
    # steers by that very object instead of reading the text again.
    steering = read_prompt("sharper, warmer [[prof_1]]")
    small = np.asarray(Image.fromarray(coffee).resize((90, 60), Image.Resampling.LANCZOS))
    pipeline = EnhancePipeline(networks={"photo": stand_in}, options=_options())
    outcome = enhance_request(PipelineRequest(source=_file(small), prompt=steering), pipeline)
    assert outcome.explanation.prompt is steering
    from_text = enhance_request(PipelineRequest(source=_file(small), prompt="sharper, warmer [[prof_1]]"), pipeline)
    assert from_text.explanation.prompt == steering
    assert from_text.explanation.to_json()["prompt"] == outcome.explanation.to_json()["prompt"]


@pytest.mark.parametrize(
    ("profile_ids", "prompt"),
    [(None, None), (["p_2", "p_3"], "[[p_1]] [[p_2]] sharper"), ([], "[[ p_9 ]] and [[p_9]]"), (["a"], "[[not ok]]")],
)
def test_candidate_ids_are_the_profile_ids_then_the_prompts_tokens(
    profile_ids: list[str] | None, prompt: str | None
) -> None:
    assert candidate_ids(profile_ids, read_prompt(prompt)) == merge_candidate_ids(profile_ids, prompt)


def test_explanation_is_complete_when_the_pipeline_returns(stand_in: SRModel, coffee: np.ndarray) -> None:
    small = np.asarray(Image.fromarray(coffee).resize((90, 60), Image.Resampling.LANCZOS))
    pipeline = EnhancePipeline(networks={"photo": stand_in}, options=_options())
    plain = enhance_request(PipelineRequest(source=_file(small)), pipeline).explanation
    assert plain.mode is None and plain.timings.enhance_s is None and "mode" not in plain.to_json()
    queued_at = time.perf_counter()
    request = PipelineRequest(source=_file(small), fetch_s=5.0, queued_at=queued_at, mode="test")
    explanation = enhance_request(request, pipeline).explanation
    spent = explanation.timings
    assert explanation.to_json()["mode"] == "test"
    assert spent.decode_s is not None and 5.0 < spent.decode_s < 5.0 + (time.perf_counter() - queued_at)
    assert spent.enhance_s is not None and spent.enhance_s >= spent.analysis_s + spent.network_s
    assert spent.store_s is None and spent.total_s is None
    delivered = explanation.delivered(store_s=0.25, total_s=9.5)
    assert (delivered.timings.store_s, delivered.timings.total_s) == (0.25, 9.5)
    assert delivered.to_json() == {**explanation.to_json(), "timings": delivered.timings.to_json()}
    assert list(delivered.timings.to_json())[-2:] == ["store_s", "total_s"]


def test_timings_are_typed_and_frozen() -> None:
    timings = Timings(decode_s=0.5)
    with pytest.raises(AttributeError):
        timings.decode_s = 1.0  # type: ignore[misc]
    assert timings.delivered(store_s=None, total_s=2.0).to_json()["total_s"] == 2.0


def test_check_source_accepts_an_image_and_names_its_format_and_size(coffee: np.ndarray) -> None:
    checked = check_source(_file(coffee), EnhanceOptions())
    assert (checked.source_format, checked.original_size) == ("jpeg", (coffee.shape[1], coffee.shape[0]))
    assert max(coffee.shape[:2]) > CHECK_SIDE  # checked at reduced scale, yet the size is the source's


def test_check_source_refuses_what_the_decode_stage_refuses(coffee: np.ndarray) -> None:
    whole = _file(coffee)
    with pytest.raises(InvalidImageError):
        check_source(whole[: len(whole) * 2 // 3], EnhanceOptions())  # truncated pixel data
    png = _file(coffee, "PNG")
    assert check_source(png, EnhanceOptions()).source_format == "png"
    with pytest.raises(InvalidImageError):
        check_source(png[: len(png) * 2 // 3], EnhanceOptions())  # a PNG is checked at its own size
    with pytest.raises(InvalidImageError):
        check_source(b"<html>not an image</html>", EnhanceOptions())
    with pytest.raises(InvalidImageError):
        check_source(whole, EnhanceOptions(max_input_pixels=coffee.shape[0] * coffee.shape[1] - 1))
    with pytest.raises(UnsupportedFormatError):
        check_source(b"8BPS" + bytes(40), EnhanceOptions())  # a Photoshop file


def test_identify_stage_guards_and_reports_faces_of_a_real_portrait(
    stand_in: SRModel, astronaut: np.ndarray, weights_dir: Path
) -> None:
    import weights

    names = {
        "embedder": "dlib-face-recognition-resnet-v1",
        "landmarks": "dlib-shape-predictor-5",
        "detector": "dlib-mmod-face-detector",
    }
    faces = FaceModels(FaceModelFiles(**{r: weights.model_file_path(n, weights_dir) for r, n in names.items()}))
    small = np.asarray(Image.fromarray(astronaut).resize((256, 256), Image.Resampling.LANCZOS))
    pipeline = EnhancePipeline(networks={"photo": stand_in}, options=_options(), faces=faces)
    outcome = enhance_request(PipelineRequest(source=_file(small)), pipeline)
    header = outcome.explanation.to_json()
    assert len(header["identity"]["faces"]) == 1  # Eileen Collins
    assert header["identity"]["faces"][0]["outputs"][0]["guard"] in ("kept", "softened")
    assert header["timings"]["identity_s"] > 0 and outcome.counts == {}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_models_import_neither_the_server_nor_any_network_client() -> None:
    root = Path(__file__).resolve().parents[1] / "models"
    offending = {
        str(path.relative_to(root.parent)): sorted(found)
        for path in root.rglob("*.py")
        if (found := _imports(path) & {"server", "fastapi", "starlette", "httpx", "httpcore", "socket", "urllib"})
    }
    assert offending == {}
    # The one place that vets outbound addresses serves both image fetches and callbacks.
    server = Path(__file__).resolve().parents[1] / "server"
    vetting = [p.name for p in server.rglob("*.py") if "def refused_address_reason" in p.read_text()]
    assert vetting == ["outbound.py"]
    # ... and the one DNS resolution: the callbacks' URL check and delivery resolve through it.
    resolving = [p.name for p in server.rglob("*.py") if "getaddrinfo(" in p.read_text()]
    assert resolving == ["outbound.py"]
    assert "resolve_vetted" in (server / "jobs" / "_callbacks.py").read_text()
