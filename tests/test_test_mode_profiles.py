"""Test mode keeps identity: the profile suite's counting checks run again with ``ENHANCE_MODE=test``
on real face photos, and every count equals the count the real network's outputs give."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from skimage import data as skdata

from server import create_app
from server.services import services_of
from tests.face_photos import augment
from tests.test_faces import paste_faces
from tests.test_profiles_api import (
    A,
    b64,
    make_settings,
    people,
    test_a_face_whose_profile_is_not_a_candidate_is_not_counted,
    test_enhance_counts_the_right_profile_once_per_output,
    test_enhance_counts_two_candidates_in_one_photo_in_every_output,
    test_image_without_faces_counts_nothing,
    test_photo_of_someone_else_is_counted_nowhere,
    test_profile_not_ready_is_400_in_enhance_and_picture,
)

# Fixtures and tests of the profile suite, collected again in this module (so in test mode).
__all__ = [
    "people",
    "test_a_face_whose_profile_is_not_a_candidate_is_not_counted",
    "test_enhance_counts_the_right_profile_once_per_output",
    "test_enhance_counts_two_candidates_in_one_photo_in_every_output",
    "test_image_without_faces_counts_nothing",
    "test_photo_of_someone_else_is_counted_nowhere",
    "test_profile_not_ready_is_400_in_enhance_and_picture",
]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("profiles-test-mode")


@pytest.fixture(scope="module")
def client(data_dir: Path, weights_dir: Path) -> Iterator[TestClient]:
    """The profile suite's service in test mode."""
    with TestClient(create_app(make_settings(data_dir, weights_dir, mode="test")), raise_server_exceptions=False) as c:
        yield c


def _probes() -> dict[str, tuple[np.ndarray, list[str]]]:
    """Real photos and which of the ``people`` to offer as candidates."""
    return {
        "obama alone": (augment("obama3", np.random.default_rng(21), (100, 100)), ["hopper", "obama", "biden"]),
        "obama and biden": (paste_faces(["obama3", "biden"], 80, (560, 420), seed=2), ["obama", "biden"]),
        "collins": (augment("collins", np.random.default_rng(23), (100, 100)), ["obama", "biden", "hopper"]),
        "coffee": (np.ascontiguousarray(skdata.coffee()[::2, ::2]), ["obama"]),
    }


def _counts(client: TestClient, people: dict[str, str]) -> dict[str, dict[str, int]]:
    found = {}
    for name, (image, offered) in _probes().items():
        payload = {"image": b64(image), "profile_ids": [people[p] for p in offered], "num_output_images": 2}
        response = client.post("/v1/phota/enhance", headers=A, json=payload)
        assert response.status_code == 200, response.text
        found[name] = response.json()["known_subjects"]["counts"]
    return found


def test_counts_in_test_mode_equal_the_counts_with_the_network(
    client: TestClient, people: dict[str, str], data_dir: Path, weights_dir: Path
) -> None:
    in_test_mode = _counts(client, people)
    # The same database and profiles, served by the real network.
    with TestClient(create_app(make_settings(data_dir, weights_dir, mode="real"))) as real:
        assert json.loads(real.get("/readyz").text)["network"] == "x4plus"
        with_network = _counts(real, people)
    assert in_test_mode == with_network
    assert in_test_mode["obama alone"] == {people["obama"]: 2}
    assert in_test_mode["obama and biden"] == {people["obama"]: 2, people["biden"]: 2}
    assert in_test_mode["collins"] == {} and in_test_mode["coffee"] == {}


def test_profile_suite_runs_in_test_mode(client: TestClient) -> None:
    assert services_of(client.app).runtime.settings.mode == "test"
