"""A seeded sample of the image fuzzing corpus through the real app: every input ends as a 200 or a
documented 4xx with a clear detail (the whole corpus: ``tests/benchmarks/fuzz_images.py``)."""

from __future__ import annotations

import random
import resource
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image
from skimage import data as skdata

from models.pipeline._ops import gaussian_blur
from server import create_app
from tests.benchmarks.fuzz_images import KEY, fuzz_settings, install_stand_in_network
from tests.conftest import decode_b64, encode_b64
from tests.image_corpus import CORPUS_SIZE, Outcome, corpus_case, judge, seeds

SAMPLE = 240
# Inputs that once failed, kept as regression cases (indices into the corpus). All twelve were JPEGs
# whose frame header was cut to 1 px high or wide (1×1, 1×4096, 4096×1, 2×2048...): they decoded, then
# the back-projection's Gaussian blur asked for reflect padding wider than the image (500).
REGRESSIONS = [1750, 2378, 2379, 3904, 4278, 4553, 4927, 5552, 8130, 8575, 8704, 9525]


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, weights_dir: Path) -> Iterator[TestClient]:
    settings = fuzz_settings(tmp_path_factory.mktemp("fuzz"), weights_dir=weights_dir, sync_timeout_s=60)
    app = create_app(settings)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        install_stand_in_network(app)
        yield test_client


def _run(client: TestClient, index: int) -> tuple[Outcome, str]:
    case = corpus_case(index)
    started = time.perf_counter()
    response = client.post(
        "/v1/phota/enhance", headers={"X-API-Key": KEY}, json={"image": case.payload, "output_format": "png"}
    )
    try:
        body: object = response.json()
    except ValueError:
        body = None
    outcome = judge(index, response.status_code, body, time.perf_counter() - started)
    return outcome, f"#{index} {case.seed} {case.mutation}: {outcome.problem} {outcome.code} {outcome.detail}"


def test_corpus_is_deterministic_and_covers_every_seed_format() -> None:
    assert corpus_case(4321) == corpus_case(4321)
    assert corpus_case(4321) != corpus_case(4322)
    names = {name for name, _ in seeds()}
    assert {
        "jpeg-progressive",
        "jpeg-cmyk",
        "png-16bit",
        "webp-animated",
        "heic",
        "avif",
        "tiff-jpeg",
        "gif-animated",
    } <= names
    assert {corpus_case(i).seed for i in range(len(names), 2 * len(names))} == names


def test_every_seed_image_is_enhanced(client: TestClient) -> None:
    failures = []
    for index in range(len(seeds())):
        outcome, description = _run(client, index)
        if outcome.status != 200 or not outcome.ok:
            failures.append(description)
    assert not failures, failures


def test_sampled_mutants_end_in_200_or_a_documented_4xx(client: TestClient) -> None:
    indices = sorted(random.Random(2026).sample(range(len(seeds()), CORPUS_SIZE), SAMPLE)) + REGRESSIONS
    failures = [description for outcome, description in (_run(client, i) for i in indices) if not outcome.ok]
    assert not failures, failures
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    assert peak_mib < 4096, f"peak RSS {peak_mib:.0f} MiB"


@pytest.mark.parametrize(("height", "width"), [(1, 1), (1, 40), (40, 1), (2, 2)])
def test_gaussian_blur_keeps_one_pixel_thin_images(height: int, width: int) -> None:
    x = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(0))
    blurred = gaussian_blur(x, 1.5)
    assert blurred.shape == x.shape
    assert torch.isfinite(blurred).all()
    if height == 1 and width == 1:
        assert torch.allclose(blurred, x)


@pytest.mark.parametrize("size", [(1, 1), (1, 300), (300, 1)])
def test_one_pixel_thin_image_is_enhanced(client: TestClient, size: tuple[int, int]) -> None:
    image = Image.fromarray(skdata.astronaut()[:300, :300]).resize(size)
    response = client.post(
        "/v1/phota/enhance",
        headers={"X-API-Key": KEY},
        json={"image": encode_b64(image, "PNG"), "output_format": "png"},
    )
    assert response.status_code == 200, response.text
    width, height = decode_b64(response.json()["images"][0]).size
    assert (width >= height) == (size[0] >= size[1])
