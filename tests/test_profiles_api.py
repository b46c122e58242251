"""The profiles API and identity in enhance, end to end on CPU with real face photos (public domain,
fetched from packages by tests/face_photos.py) and the real x4plus network."""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from server import Settings, create_app
from server.services import services_of
from server.storage import ProfileStore, create_database
from tests.face_photos import augment, jpeg_bytes, load_photo
from tests.test_faces import paste_faces

KEY_A = "test-key-profiles-a"
KEY_B = "test-key-profiles-b"
A = {"X-API-Key": KEY_A}
B = {"X-API-Key": KEY_B}


def make_settings(data_dir: Path, weights_dir: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "data_dir": data_dir,
        "weights_dir": weights_dir,
        "api_keys": f"{KEY_A},{KEY_B}",
        "device": "cpu",
        "network_max_side": 48,  # the real network, a second per request
        "cpu_tile_size": 64,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def b64(image: np.ndarray) -> str:
    return base64.b64encode(jpeg_bytes(image)).decode()


def references(names: list[str], seed: int, face_px: tuple[int, int] = (90, 180)) -> list[str]:
    rng = np.random.default_rng(seed)
    return [b64(augment(name, rng, face_px)) for name in names]


def wait_finished(
    client: TestClient, profile_id: str, headers: dict[str, str], timeout_s: float = 180
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        body = client.get(f"/v1/phota/profiles/{profile_id}/status", headers=headers).json()
        if body["status"] in ("READY", "ERROR"):
            return body
        time.sleep(0.1)
    raise AssertionError(f"profile {profile_id} did not finish in {timeout_s} s")


def add(client: TestClient, refs: list[str], headers: dict[str, str] = A, **fields: object) -> str:
    response = client.post("/v1/phota/profiles/add", headers=headers, json={"image_urls": refs, **fields})
    assert response.status_code == 200, response.text
    return str(response.json()["profile_id"])


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, weights_dir: Path) -> Iterator[TestClient]:
    app = create_app(make_settings(tmp_path_factory.mktemp("profiles"), weights_dir))
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def people(client: TestClient) -> dict[str, str]:
    """READY profiles of account A: Obama (from two of his three photos; obama3 is held out for the
    probes), Biden and Grace Hopper (augmented views of one photo each)."""
    obama_refs = references(["obama", "obama2", "obama_partial_face2", "obama2", "obama", "obama2"], seed=1)
    ids = {
        "obama": add(client, obama_refs, training_tier="fast", tag="family"),
        "biden": add(client, references(["biden"] * 5, seed=2), training_tier="fast", tag="family"),
        "hopper": add(client, references(["hopper"] * 5, seed=3), training_tier="fast"),
    }
    for profile_id in ids.values():
        assert wait_finished(client, profile_id, A)["status"] == "READY"
    return ids


def enhance(client: TestClient, image: np.ndarray, **fields: object) -> tuple[dict[str, Any], dict[str, Any]]:
    response = client.post("/v1/phota/enhance", headers=A, json={"image": b64(image), "output_format": "jpg", **fields})
    assert response.status_code == 200, response.text
    return response.json(), json.loads(response.headers["X-Enhance-Parameters"])


# --- lifecycle --------------------------------------------------------------------------------------


def test_add_profile_answers_an_opaque_url_safe_id(client: TestClient, people: dict[str, str]) -> None:
    for profile_id in people.values():
        assert re.fullmatch(r"[A-Za-z0-9_-]{8,64}", profile_id)
    assert len(set(people.values())) == 3


def test_profile_status_goes_validating_queuing_in_progress_ready(
    client: TestClient, people: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    store: ProfileStore = services_of(client.app).profiles.store
    seen: list[str] = []
    original_claim, original_set, original_finish = store.claim_next, store.set_status, store.finish

    def claim_next(owner: str, now: dt.datetime, lease_s: float) -> Any:
        claimed = original_claim(owner, now, lease_s)
        if claimed is not None:
            seen.append("VALIDATING")
        return claimed

    def set_status(profile_id: str, status: Any, now: dt.datetime, **kwargs: Any) -> bool:
        seen.append(status)
        return original_set(profile_id, status, now, **kwargs)

    def finish(profile_id: str, now: dt.datetime, **kwargs: Any) -> bool:
        seen.append("READY" if kwargs.get("embeddings") is not None else "ERROR")
        return original_finish(profile_id, now, **kwargs)

    monkeypatch.setattr(store, "claim_next", claim_next)
    monkeypatch.setattr(store, "set_status", set_status)
    monkeypatch.setattr(store, "finish", finish)
    profile_id = add(client, references(["hopper"] * 5, seed=4), training_tier="fast")
    first = client.get(f"/v1/phota/profiles/{profile_id}/status", headers=A).json()
    assert first["status"] in ("VALIDATING", "QUEUING", "IN_PROGRESS", "READY")
    assert wait_finished(client, profile_id, A) == {"profile_id": profile_id, "status": "READY", "message": None}
    assert seen == ["VALIDATING", "QUEUING", "IN_PROGRESS", "READY"]
    assert not store.files.has_build_files(profile_id)  # references and their fetched bytes are gone


def test_ready_profile_has_a_jpeg_picture_of_the_face(client: TestClient, people: dict[str, str]) -> None:
    response = client.get(f"/v1/phota/profiles/{people['biden']}/profile_picture", headers=A)
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/jpeg"
    picture = Image.open(io.BytesIO(response.content))
    assert picture.format == "JPEG" and picture.size == (256, 256)
    face_models = services_of(client.app).runtime.faces
    from models.faces import detect_faces

    faces = detect_faces(np.asarray(picture.convert("RGB")), face_models)
    assert len(faces) == 1 and faces[0].box.width > 80


def test_profile_ids_lists_own_profiles_and_filters_by_tag(client: TestClient, people: dict[str, str]) -> None:
    everything = client.get("/v1/phota/profiles/ids", headers=A).json()["profiles"]
    assert set(people.values()) <= set(everything)
    tagged = client.get("/v1/phota/profiles/ids", params={"tag": "family"}, headers=A).json()
    assert tagged == {"profiles": [people["obama"], people["biden"]]}
    assert client.get("/v1/phota/profiles/ids", params={"tag": "nobody"}, headers=A).json() == {"profiles": []}
    assert client.get("/v1/phota/profiles/ids", headers=B).json() == {"profiles": []}


def test_another_accounts_profile_is_404_everywhere(client: TestClient, people: dict[str, str]) -> None:
    profile_id = people["obama"]
    for method, path in (
        ("GET", f"/v1/phota/profiles/{profile_id}/status"),
        ("GET", f"/v1/phota/profiles/{profile_id}/profile_picture"),
        ("DELETE", f"/v1/phota/profiles/{profile_id}"),
    ):
        response = client.request(method, path, headers=B)
        assert response.status_code == 404, (method, path)
        assert response.json()["code"] == "NOT_FOUND"
    image = b64(augment("obama3", np.random.default_rng(5), (90, 110)))
    response = client.post("/v1/phota/enhance", headers=B, json={"image": image, "profile_ids": [profile_id]})
    assert response.status_code == 404 and response.json()["code"] == "NOT_FOUND"
    assert client.get(f"/v1/phota/profiles/{profile_id}/status", headers=A).json()["status"] == "READY"


def test_unknown_profile_id_is_404(client: TestClient) -> None:
    for path in ("/v1/phota/profiles/prof_0000/status", "/v1/phota/profiles/nope/profile_picture"):
        response = client.get(path, headers=A)
        assert response.status_code == 404 and response.json()["code"] == "NOT_FOUND"
    assert client.delete("/v1/phota/profiles/prof_0000", headers=A).status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"image_urls": ["x"] * 4, "training_tier": "fast"},
        {"image_urls": ["x"] * 51},
        {"image_urls": ["x"] * 7},
        {"image_urls": ["x"] * 7, "training_tier": "standard"},
        {"image_urls": ["x"] * 11, "training_tier": "fast"},
        {"image_urls": ["x"] * 10, "training_tier": "slow"},
        {"image_urls": ["x"] * 10, "tag": ""},
        {"image_urls": ["x"] * 10, "tag": "t" * 129},
        {"training_tier": "fast"},
    ],
)
def test_add_profile_with_a_bad_count_tier_or_tag_is_422(client: TestClient, body: dict[str, object]) -> None:
    response = client.post("/v1/phota/profiles/add", headers=A, json=body)
    assert response.status_code == 422, response.text
    assert isinstance(response.json()["detail"], list)


def test_add_profile_accepts_each_tiers_bounds(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    service = services_of(client.app).profiles
    monkeypatch.setattr(service.store, "claim_next", lambda *args: None)  # stored, not built
    for count, tier in ((5, "fast"), (10, "fast"), (10, "standard"), (50, "standard")):
        profile_id = add(client, ["aGVsbG8="] * count, training_tier=tier)
        assert client.get(f"/v1/phota/profiles/{profile_id}/status", headers=A).json()["status"] == "VALIDATING"
        assert client.delete(f"/v1/phota/profiles/{profile_id}", headers=A).status_code == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/phota/profiles/add"),
        ("GET", "/v1/phota/profiles/ids"),
        ("GET", "/v1/phota/profiles/prof_x/status"),
        ("GET", "/v1/phota/profiles/prof_x/profile_picture"),
        ("DELETE", "/v1/phota/profiles/prof_x"),
    ],
)
def test_profiles_endpoints_need_an_api_key(client: TestClient, method: str, path: str) -> None:
    response = client.request(method, path, headers={"X-API-Key": "wrong"}, json={"image_urls": ["x"] * 10})
    assert response.status_code == 401 and response.json()["code"] == "UNAUTHORIZED"


def test_references_without_faces_end_in_error_with_a_message(client: TestClient) -> None:
    from skimage import data

    images = [data.coffee(), data.chelsea(), data.rocket(), data.coffee()[:200], data.chelsea()[50:]]
    profile_id = add(client, [b64(np.ascontiguousarray(i)) for i in images], training_tier="fast")
    body = wait_finished(client, profile_id, A)
    assert body["status"] == "ERROR"
    assert "Only 0 of 5 references" in body["message"] and "no face found: 5" in body["message"]


def test_unfetchable_and_undecodable_references_are_named_in_the_error(client: TestClient) -> None:
    refs = ["http://127.0.0.1:9/a.jpg", "http://10.0.0.1/b.jpg", "aGVsbG8gd29ybGQ="]
    refs += references(["biden", "biden"], seed=6)
    profile_id = add(client, refs, training_tier="fast")
    body = wait_finished(client, profile_id, A)
    assert body["status"] == "ERROR"
    assert "could not be fetched: 2 (#1, #2)" in body["message"]
    assert "is not a decodable image: 1 (#3)" in body["message"]


def test_profile_with_some_unusable_references_is_ready_and_says_which(client: TestClient) -> None:
    refs = [*references(["hopper"] * 4, seed=7), b64(np.ascontiguousarray(load_photo("biden")[::4, ::4]))]
    profile_id = add(client, refs, training_tier="fast")
    body = wait_finished(client, profile_id, A)
    assert body["status"] == "READY"
    assert body["message"] == "Built from 4 of 5 references; #5 shows someone else"


def test_profile_not_ready_is_400_in_enhance_and_picture(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    store: ProfileStore = services_of(client.app).profiles.store
    account_id = services_of(client.app).accounts.authenticate(KEY_A).id
    monkeypatch.setattr(store, "claim_next", lambda *args: None)  # this service builds nothing meanwhile
    record = store.create(account_id, ["aGVsbG8="] * 5, training_tier="fast", tag=None, now=dt.datetime.now(dt.UTC))
    image = b64(augment("obama3", np.random.default_rng(8), (90, 110)))
    for fields in ({"profile_ids": [record.id]}, {"prompt": f"brighter [[{record.id}]]"}):
        response = client.post("/v1/phota/enhance", headers=A, json={"image": image, **fields})
        assert response.status_code == 400
        assert response.json()["code"] == "PROFILE_NOT_READY"
        assert "VALIDATING" in response.json()["detail"]
    picture = client.get(f"/v1/phota/profiles/{record.id}/profile_picture", headers=A)
    assert picture.status_code == 400 and picture.json()["code"] == "PROFILE_NOT_READY"
    # Another process builds it, and fails.
    assert ProfileStore.claim_next(store, "elsewhere/1/x", dt.datetime.now(dt.UTC), 600).id == record.id  # type: ignore[union-attr]
    store.finish(record.id, dt.datetime.now(dt.UTC), owner="elsewhere/1/x", message="broken")
    response = client.post("/v1/phota/enhance", headers=A, json={"image": image, "profile_ids": [record.id]})
    assert response.status_code == 400 and "ERROR" in response.json()["detail"]


def test_delete_removes_the_profile_and_everything_derived(client: TestClient, tmp_path: Path) -> None:
    profile_id = add(client, references(["biden"] * 5, seed=9), training_tier="fast")
    assert wait_finished(client, profile_id, A)["status"] == "READY"
    store: ProfileStore = services_of(client.app).profiles.store
    account_id = services_of(client.app).accounts.authenticate(KEY_A).id
    assert store.ready_embeddings(account_id, [profile_id])[profile_id][1] is not None
    assert store.picture(account_id, profile_id) is not None
    response = client.delete(f"/v1/phota/profiles/{profile_id}", headers=A)
    assert response.status_code == 200
    assert response.json() == {"profile_id": profile_id, "status": "ok"}
    assert store.ready_embeddings(account_id, [profile_id]) == {}
    assert store.picture(account_id, profile_id) is None
    assert profile_id not in store.files.profile_ids()
    assert client.get(f"/v1/phota/profiles/{profile_id}/status", headers=A).status_code == 404
    assert client.delete(f"/v1/phota/profiles/{profile_id}", headers=A).status_code == 404
    assert profile_id not in client.get("/v1/phota/profiles/ids", headers=A).json()["profiles"]


def test_unfinished_profile_is_built_after_a_restart(tmp_path: Path, weights_dir: Path) -> None:
    settings = make_settings(tmp_path, weights_dir)
    with TestClient(create_app(settings)) as first:
        account_id = services_of(first.app).accounts.authenticate(KEY_A).id
    # What a crash mid-build leaves: the row IN_PROGRESS under the lease of a process of this host that
    # no longer runs, and its references on disk. The restarted service takes it over at once.
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_owner = f"{socket.gethostname()[:40]}/{int(dead.stdout)}/dead"
    database = create_database(None, tmp_path)
    store = ProfileStore(database, tmp_path / "profiles")
    now = dt.datetime.now(dt.UTC)
    record = store.create(account_id, references(["hopper"] * 5, seed=10), training_tier="fast", tag=None, now=now)
    assert store.claim_next(dead_owner, now, 3600).id == record.id  # type: ignore[union-attr]
    assert store.set_status(record.id, "IN_PROGRESS", now, owner=dead_owner)
    database.dispose()
    with TestClient(create_app(settings)) as second:
        body = wait_finished(second, record.id, A)
    assert body["status"] == "READY"


# --- counting in enhance -------------------------------------------------------------------------------


def test_enhance_counts_the_right_profile_once_per_output(client: TestClient, people: dict[str, str]) -> None:
    probe = augment("obama3", np.random.default_rng(11), (100, 100))  # a photo not among the references
    candidates = [people["hopper"], people["obama"], people["biden"]]
    body, parameters = enhance(client, probe, profile_ids=candidates, num_output_images=2)
    assert body["known_subjects"] == {"counts": {people["obama"]: 2}}
    (face,) = parameters["identity"]["faces"]
    assert [output["match"] for output in face["outputs"]] == [people["obama"]] * 2


def test_prompt_tokens_are_merged_with_profile_ids(client: TestClient, people: dict[str, str]) -> None:
    probe = augment("obama3", np.random.default_rng(12), (100, 100))
    prompt = f"a bit brighter [[{people['obama']}]] [[{people['hopper']}]] [[{people['obama']}]]"
    body, _ = enhance(client, probe, profile_ids=[people["biden"]], prompt=prompt)
    assert body["known_subjects"] == {"counts": {people["obama"]: 1}}


def test_enhance_counts_two_candidates_in_one_photo_in_every_output(client: TestClient, people: dict[str, str]) -> None:
    image = paste_faces(["obama3", "biden"], 80, (560, 420), seed=1)
    body, parameters = enhance(client, image, profile_ids=[people["obama"], people["biden"]], num_output_images=3)
    assert body["known_subjects"] == {"counts": {people["obama"]: 3, people["biden"]: 3}}
    assert len(parameters["identity"]["faces"]) == 2


def test_photo_of_someone_else_is_counted_nowhere(client: TestClient, people: dict[str, str]) -> None:
    collins = augment("collins", np.random.default_rng(13), (100, 100))
    body, parameters = enhance(client, collins, profile_ids=list(people.values()), num_output_images=2)
    assert body["known_subjects"] == {"counts": {}}
    assert len(parameters["identity"]["faces"]) == 1


def test_a_face_whose_profile_is_not_a_candidate_is_not_counted(client: TestClient, people: dict[str, str]) -> None:
    biden = augment("biden", np.random.default_rng(14), (100, 100))
    body, parameters = enhance(client, biden, profile_ids=[people["obama"], people["hopper"]])
    assert body["known_subjects"] == {"counts": {}}
    assert all("match" not in output for face in parameters["identity"]["faces"] for output in face["outputs"])
    assert people["biden"] not in json.dumps(parameters)


def test_image_without_faces_counts_nothing(client: TestClient, people: dict[str, str]) -> None:
    from skimage import data

    body, parameters = enhance(client, np.ascontiguousarray(data.coffee()[::2, ::2]), profile_ids=[people["obama"]])
    assert body["known_subjects"] == {"counts": {}}
    assert parameters["identity"]["faces"] == []


def test_enhance_reports_face_drift_and_guard_decisions(client: TestClient, people: dict[str, str]) -> None:
    probe = augment("obama3", np.random.default_rng(15), (100, 100))
    _, parameters = enhance(client, probe, num_output_images=2)
    identity = parameters["identity"]
    assert identity["guard"] == {"enabled": True, "max_drift": 0.2}
    (face,) = identity["faces"]
    assert len(face["box"]) == 4 and face["box"][2] > 60
    for output in face["outputs"]:
        assert output["guard"] in ("kept", "softened")
        assert output["drift"] >= 0
        if output["guard"] == "softened":
            assert output["drift"] > 0.2 and output["drift_after"] < output["drift"]
    assert "identity_s" in parameters["timings"]


def test_async_enhance_counts_profiles_in_the_job_result(client: TestClient, people: dict[str, str]) -> None:
    probe = b64(augment("obama3", np.random.default_rng(16), (100, 100)))
    payload = {"image": probe, "async": True, "profile_ids": [people["biden"]], "prompt": f"[[{people['obama']}]]"}
    accepted = client.post("/v1/phota/enhance", headers=A, json=payload)
    assert accepted.status_code == 202, accepted.text
    job_id = accepted.json()["job_id"]
    deadline = time.monotonic() + 600  # a bound on "it finishes", not a timing
    while (job := client.get(f"/v1/phota/jobs/{job_id}", headers=A).json())["status"] not in ("SUCCEEDED", "FAILED"):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert job["status"] == "SUCCEEDED", job["error"]
    assert job["result"]["known_subjects"] == {"counts": {people["obama"]: 1}}


def test_async_enhance_with_another_accounts_profile_is_404_at_submit(
    client: TestClient, people: dict[str, str]
) -> None:
    probe = b64(augment("obama3", np.random.default_rng(17), (100, 100)))
    payload = {"image": probe, "async": True, "profile_ids": [people["obama"]]}
    response = client.post("/v1/phota/enhance", headers=B, json=payload)
    assert response.status_code == 404 and response.json()["code"] == "NOT_FOUND"
