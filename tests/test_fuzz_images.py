"""A seeded sample of the image fuzzing corpus through the real app: every input ends as a 200 or a
documented 4xx with a clear detail (the whole corpus: ``tests/benchmarks/fuzz_images.py``)."""

from __future__ import annotations

import random
import resource
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from server import create_app
from tests.benchmarks.fuzz_images import KEY, fuzz_settings, install_stand_in_network
from tests.image_corpus import CORPUS_SIZE, Outcome, corpus_case, judge, seeds

SAMPLE = 240
# Inputs that once failed, kept as regression cases (indices into the corpus).
REGRESSIONS: list[int] = []


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
