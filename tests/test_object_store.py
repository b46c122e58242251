"""The object store (a local folder or S3) under output files, job files and profile files, against a real
S3 server (SeaweedFS, started by the ``s3_server`` fixture) and the real service on it."""

from __future__ import annotations

import base64
import datetime as dt
import io
import itertools
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from server import create_app
from server.services import services_of
from server.settings import Settings
from server.storage import (
    LocalObjectStore,
    ObjectStore,
    OutputFiles,
    ProfileFiles,
    ProfileStore,
    S3ObjectStore,
    StorageConfigError,
    create_database,
    open_object_store,
)
from server.storage.objects import STORAGE_BACKENDS, DuplicateStorageBackendError, StorageBackend, storage_backend
from tests.jobs_helpers import HEADERS_A, job_settings, poll_job
from tests.s3_server import S3Server

SECRET = b"0123456789abcdef0123456789abcdef"
_buckets = itertools.count()


def new_bucket(server: S3Server) -> str:
    name = f"enhance-test-{next(_buckets)}-{int(time.time() * 1000) % 10**8}"
    server.client().create_bucket(Bucket=name)  # type: ignore[attr-defined]
    return name


def bucket_keys(server: S3Server, bucket: str) -> list[str]:
    answer = server.client().list_objects_v2(Bucket=bucket)  # type: ignore[attr-defined]
    return sorted(entry["Key"] for entry in answer.get("Contents", []))


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "local":
        return LocalObjectStore(tmp_path / "objects")
    server: S3Server = request.getfixturevalue("s3_server")
    return S3ObjectStore(server.client(), new_bucket(server), "some/prefix")


def png_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


# --- the interface, on both backends -----------------------------------------------------------------


def test_store_round_trips_lists_and_deletes_objects(store: ObjectStore) -> None:
    store.put("jobs/job_a/source", b"first")
    store.put("jobs/job_a/images.json", b"[]", "application/json")
    store.put("jobs/job_b/source", b"second")
    store.put("files/x.png", b"\x89PNG")
    assert store.get("jobs/job_a/source") == b"first"
    assert store.get("jobs/job_missing/source") is None
    store.put("jobs/job_a/source", b"replaced")
    assert store.get("jobs/job_a/source") == b"replaced"
    listed = {item.key: item.modified for item in store.list("jobs/")}
    assert set(listed) == {"jobs/job_a/source", "jobs/job_a/images.json", "jobs/job_b/source"}
    assert all(abs(modified - time.time()) < 120 for modified in listed.values())
    store.delete("jobs/job_b/source")
    store.delete("jobs/job_b/source")  # deleting twice is fine
    assert store.get("jobs/job_b/source") is None
    assert store.delete_prefix("jobs/job_a/") == 2
    assert list(store.list("jobs/")) == []
    assert [item.key for item in store.list("")] == ["files/x.png"]


def test_store_refuses_keys_that_leave_their_folder(store: ObjectStore) -> None:
    for bad in ("../escape", "a/../../b", "/absolute", "a//b", "", "a/./b", "spaces are bad"):
        with pytest.raises(ValueError, match="object key"):
            store.put(bad, b"x")
    with pytest.raises(ValueError, match="prefix"):
        list(store.list("no-trailing-slash"))


def test_s3_store_keeps_its_objects_under_its_prefix(s3_server: S3Server) -> None:
    bucket = new_bucket(s3_server)
    S3ObjectStore(s3_server.client(), bucket, "tenant/one").put("files/a.jpg", b"a")
    S3ObjectStore(s3_server.client(), bucket, "tenant/two").put("files/b.jpg", b"b")
    assert bucket_keys(s3_server, bucket) == ["tenant/one/files/a.jpg", "tenant/two/files/b.jpg"]
    one = S3ObjectStore(s3_server.client(), bucket, "tenant/one")
    assert [item.key for item in one.list("files/")] == ["files/a.jpg"]
    assert one.get("files/b.jpg") is None


# --- the registry ---------------------------------------------------------------------------------------


def test_storage_url_selects_the_backend_and_unknown_schemes_are_refused(tmp_path: Path) -> None:
    assert storage_backend("").name == "local"
    assert storage_backend("file:///srv/enhance").name == "local"
    assert storage_backend("s3://bucket/prefix").name == "s3"
    with pytest.raises(StorageConfigError, match="unknown scheme 'gs'"):
        storage_backend("gs://bucket")
    duplicate = (*STORAGE_BACKENDS, StorageBackend(name="local", schemes=("other",), open=STORAGE_BACKENDS[0].open))
    with pytest.raises(DuplicateStorageBackendError, match="'local'"):
        storage_backend("", duplicate)
    local = open_object_store(Settings(data_dir=tmp_path, storage_url=f"file://{tmp_path}/elsewhere"))
    assert isinstance(local, LocalObjectStore) and local.root == tmp_path / "elsewhere"
    with pytest.raises(StorageConfigError, match="names no bucket"):
        open_object_store(Settings(data_dir=tmp_path, storage_url="s3:///prefix-only"))


def test_s3_bucket_is_created_at_start_or_refused_when_creation_is_off(s3_server: S3Server, tmp_path: Path) -> None:
    name = f"enhance-created-{int(time.time() * 1000) % 10**8}"
    with pytest.raises(StorageConfigError, match="cannot be used"):
        open_object_store(
            Settings(
                data_dir=tmp_path,
                storage_url=f"s3://{name}/p",
                s3_endpoint_url=s3_server.endpoint_url,
                s3_create_bucket=False,
            )
        )
    store = open_object_store(
        Settings(data_dir=tmp_path, storage_url=f"s3://{name}/p", s3_endpoint_url=s3_server.endpoint_url)
    )
    store.put("files/probe.png", b"x")
    assert bucket_keys(s3_server, name) == ["p/files/probe.png"]


# --- output files: presigned downloads and expiry ---------------------------------------------------------


def test_output_on_s3_downloads_through_a_presigned_url_without_credentials(
    s3_server: S3Server, astronaut: np.ndarray
) -> None:
    files = OutputFiles(S3ObjectStore(s3_server.client(), new_bucket(s3_server), "out"), SECRET, ttl_s=3600)
    data = png_bytes(astronaut[:64, :64])
    url = files.download_url(files.save(data, "png"), "http://service.invalid")
    assert url.startswith(s3_server.endpoint_url + "/")  # the store answers, not the service
    assert "X-Amz-Signature=" in url and "X-Amz-Expires=" in url
    answer = httpx.get(url)
    assert answer.status_code == 200
    assert answer.content == data
    assert answer.headers["content-type"] == "image/png"
    tampered = url.replace("X-Amz-Signature=", "X-Amz-Signature=0")
    assert httpx.get(tampered).status_code == 403


def test_presigned_url_stops_working_when_its_file_expires(s3_server: S3Server) -> None:
    files = OutputFiles(S3ObjectStore(s3_server.client(), new_bucket(s3_server)), SECRET, ttl_s=2)
    stored = files.save(b"\xff\xd8 short-lived", "jpg")
    url = files.download_url(stored, "http://service.invalid")
    # The URL lives as long as the file: signed at X-Amz-Date (whole seconds) for the seconds left, so it
    # ends when the file does (one second later at most, when the clock ticks between save and signing).
    query = dict(part.split("=", 1) for part in url.split("?", 1)[1].split("&"))
    signed_at = dt.datetime.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    ends = int(signed_at.timestamp()) + int(query["X-Amz-Expires"])
    assert stored.expires <= ends <= stored.expires + 1
    assert int(query["X-Amz-Expires"]) in (1, 2)
    assert httpx.get(url).status_code == 200
    time.sleep(3.2)
    assert httpx.get(url).status_code == 403


def test_local_output_keeps_the_service_signed_link(tmp_path: Path) -> None:
    files = OutputFiles(LocalObjectStore(tmp_path), SECRET, ttl_s=60)
    stored = files.save(b"\x89PNG", "png")
    url = files.download_url(stored, "http://127.0.0.1:8000/")
    assert url == f"http://127.0.0.1:8000/v1/phota/files/{stored.name}?{stored.query}"
    assert files.local_path(stored.name) == tmp_path / "files" / stored.name


def test_expired_outputs_are_deleted_from_the_bucket(s3_server: S3Server) -> None:
    bucket = new_bucket(s3_server)
    files = OutputFiles(S3ObjectStore(s3_server.client(), bucket, "out"), SECRET, ttl_s=600)
    before = int(time.time())
    stored = [files.save(b"x", "png") for _ in range(3)]
    assert files.remove_expired(before + 599) == 0  # every name says it expires at before + 600 or later
    assert len(bucket_keys(s3_server, bucket)) == 3
    assert files.remove_expired(time.time() + 601) == 3
    assert bucket_keys(s3_server, bucket) == []
    assert files.read(stored[0].name) is None


# --- profile files -----------------------------------------------------------------------------------------


def test_profile_files_live_in_the_bucket_and_leave_with_the_profile(s3_server: S3Server, tmp_path: Path) -> None:
    bucket = new_bucket(s3_server)
    database = create_database(None, tmp_path)
    try:
        from server.storage import AccountRegistry

        account = AccountRegistry(database, ["profile-files-key"]).authenticate("profile-files-key")
        assert account is not None
        store = ProfileStore(database, ProfileFiles(S3ObjectStore(s3_server.client(), bucket, "p")))
        now = dt.datetime.now(dt.UTC)
        record = store.create(
            account.id, ["https://example.com/a.jpg", "data:x"], training_tier="fast", tag=None, now=now
        )
        assert bucket_keys(s3_server, bucket) == [f"p/profiles/{record.id}/references.json"]
        assert store.references(record.id) == ["https://example.com/a.jpg", "data:x"]
        store.save_reference_image(record.id, 1, b"jpeg bytes")
        assert store.reference_image(record.id, 1) == b"jpeg bytes"
        embeddings = np.random.default_rng(0).standard_normal((2, 128)).astype(np.float32)
        claimed = store.claim_next("builder-1", now, 60)
        assert claimed is not None and claimed.id == record.id
        assert store.finish(record.id, now, owner="builder-1", embeddings=embeddings, picture=b"\xff\xd8 picture")
        assert bucket_keys(s3_server, bucket) == [f"p/profiles/{record.id}/picture.jpg"]
        assert store.picture(account.id, record.id) == b"\xff\xd8 picture"
        assert store.picture("another-account", record.id) is None
        assert store.delete(account.id, record.id)
        assert bucket_keys(s3_server, bucket) == []
    finally:
        database.dispose()


# --- the service on S3 ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def s3_client_app(
    s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory, weights_dir: Path
) -> Iterator[tuple[TestClient, str]]:
    bucket = f"enhance-service-{int(time.time() * 1000) % 10**8}"
    settings = job_settings(
        tmp_path_factory.mktemp("s3-service"),
        weights_dir,
        storage_url=f"s3://{bucket}/enhance",
        s3_endpoint_url=s3_server.endpoint_url,
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client, bucket


def test_service_on_s3_answers_urls_with_presigned_links_to_the_store(
    s3_client_app: tuple[TestClient, str], s3_server: S3Server, chelsea: np.ndarray
) -> None:
    client, bucket = s3_client_app
    photo = base64.b64encode(png_bytes(np.asarray(Image.fromarray(chelsea).resize((120, 80))))).decode()
    response = client.post(
        "/v1/phota/enhance",
        headers=HEADERS_A,
        json={"image": photo, "response_mode": "urls", "num_output_images": 2, "output_format": "png"},
    )
    assert response.status_code == 200, response.text
    urls = response.json()["download_urls"]
    assert len(urls) == 2 and len(set(urls)) == 2
    for url in urls:
        assert url.startswith(f"{s3_server.endpoint_url}/{bucket}/enhance/files/")
        download = httpx.get(url)  # straight from the store, no API key, no service
        assert download.status_code == 200
        assert Image.open(io.BytesIO(download.content)).size == (120, 80)
    assert not (services_of(client.app).settings.data_dir / "files").exists()


def test_service_on_s3_keeps_job_files_in_the_bucket_until_they_expire(
    s3_client_app: tuple[TestClient, str], s3_server: S3Server, chelsea: np.ndarray
) -> None:
    client, bucket = s3_client_app
    photo = base64.b64encode(png_bytes(np.asarray(Image.fromarray(chelsea).resize((120, 80))))).decode()
    accepted = client.post(
        "/v1/phota/enhance", headers=HEADERS_A, json={"image": photo, "async": True, "output_format": "jpg"}
    )
    assert accepted.status_code == 202, accepted.text
    job_id = accepted.json()["job_id"]
    document: dict[str, Any] = poll_job(client, job_id, HEADERS_A)
    assert document["status"] == "SUCCEEDED"
    assert Image.open(io.BytesIO(base64.b64decode(document["result"]["images"][0]))).size == (120, 80)
    keys = bucket_keys(s3_server, bucket)
    assert f"enhance/jobs/{job_id}/images.json" in keys  # the bytes result, kept for polls
    assert f"enhance/jobs/{job_id}/source" not in keys  # the input is dropped once the job has ended
    jobs = services_of(client.app).jobs
    completed = dt.datetime.fromisoformat(document["completed_at"])
    ttl = dt.timedelta(seconds=services_of(client.app).settings.url_ttl_s)
    assert jobs.sweep(completed + ttl) >= 1
    assert client.get(f"/v1/phota/jobs/{job_id}", headers=HEADERS_A).status_code == 404
    files = services_of(client.app).files
    files.remove_expired(time.time() + ttl.total_seconds() + 1)
    assert bucket_keys(s3_server, bucket) == []


def test_leftover_profile_folders_are_those_without_a_row_and_a_minute_old(tmp_path: Path) -> None:
    database = create_database(None, tmp_path)
    try:
        files = ProfileFiles(LocalObjectStore(tmp_path / "objects"))
        store = ProfileStore(database, files)
        files.save_references("prof_" + "a" * 24, ["crashed before its row"])
        files.save_references("prof_" + "b" * 24, ["another replica is creating it now"])
        old = time.time() - 120
        for path in (tmp_path / "objects" / "profiles" / ("prof_" + "a" * 24)).iterdir():
            os.utime(path, (old, old))
        assert store.leftover_directories() == ["prof_" + "a" * 24]
    finally:
        database.dispose()
