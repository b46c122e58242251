"""The one place that tells an outage from a bug (``server.storage.outages``), and what the API answers
for each: 503 ``SERVICE_UNAVAILABLE`` with ``Retry-After`` for the database or the object store, 507
``INSUFFICIENT_STORAGE`` for a full disk, 500 for anything else. The real outages are in
tests/test_faults_*.py (marker ``faults``)."""

from __future__ import annotations

import errno
import logging
import os
import sqlite3
import time
from pathlib import Path

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from server.errors import install_error_handlers
from server.middleware import RequestContextMiddleware
from server.storage.objects import LocalObjectStore, PatientObjectStore
from server.storage.outages import log_failure, outage_kind, retry_blocking


def _sqlite_error(tmp_path: Path, statement: str) -> OperationalError:
    engine = create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    with pytest.raises(OperationalError) as caught, engine.connect() as connection:
        connection.execute(text(statement))
    return caught.value


def _postgres_refused() -> OperationalError:
    from tests.jobs_helpers import free_port

    engine = create_engine(
        f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/none", connect_args={"connect_timeout": 2}
    )
    with pytest.raises(OperationalError) as caught:
        engine.connect()
    return caught.value


def test_outages_are_told_from_bugs(tmp_path: Path) -> None:
    assert outage_kind(_postgres_refused()) == "database"
    locked = OperationalError("INSERT", {}, sqlite3.OperationalError("database is locked"))
    assert outage_kind(locked) == "database"
    full = OperationalError("INSERT", {}, sqlite3.OperationalError("database or disk is full"))
    assert outage_kind(full) == "disk"
    assert outage_kind(_sqlite_error(tmp_path, "SELECT * FROM no_such_table")) is None  # our bug: 500
    assert outage_kind(OSError(errno.ENOSPC, "No space left on device")) == "disk"
    assert outage_kind(OSError(errno.EACCES, "Permission denied")) is None
    assert outage_kind(EndpointConnectionError(endpoint_url="http://127.0.0.1:1")) == "store"
    server_error = {"Error": {"Code": "InternalError"}, "ResponseMetadata": {"HTTPStatusCode": 500}}
    assert outage_kind(ClientError(server_error, "PutObject")) == "store"
    missing = {"Error": {"Code": "NoSuchBucket"}, "ResponseMetadata": {"HTTPStatusCode": 404}}
    assert outage_kind(ClientError(missing, "PutObject")) is None
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as error:
            raise RuntimeError("wrapped") from error
    except RuntimeError as wrapped:
        assert outage_kind(wrapped) == "disk"  # found through the cause


def _app(error: BaseException) -> TestClient:
    app = FastAPI()
    app.add_middleware(RequestContextMiddleware, max_body_bytes=1024, latency=_histogram())
    install_error_handlers(app, retry_after_s=7)

    @app.get("/fail")
    def fail() -> None:
        raise error

    return TestClient(app, raise_server_exceptions=False)


def _histogram():  # type: ignore[no-untyped-def]
    from prometheus_client import CollectorRegistry, Histogram

    return Histogram("t", "t", ["route", "method", "status"], registry=CollectorRegistry())


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (OperationalError("SELECT 1", {}, sqlite3.OperationalError("database is locked")), 503, "SERVICE_UNAVAILABLE"),
        (EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), 503, "SERVICE_UNAVAILABLE"),
        (OSError(errno.ENOSPC, "No space left on device"), 507, "INSUFFICIENT_STORAGE"),
        (OperationalError("SELECT", {}, sqlite3.OperationalError("no such table: x")), 500, "INTERNAL_ERROR"),
        (OSError(errno.EACCES, "Permission denied"), 500, "INTERNAL_ERROR"),
    ],
)
def test_the_api_answers_an_outage_503_or_507_and_a_bug_500(error: BaseException, status: int, code: str) -> None:
    response = _app(error).get("/fail")
    assert response.status_code == status
    assert response.json()["code"] == code
    assert ("retry-after" in response.headers) == (status == 503)
    if status == 503:
        assert response.headers["retry-after"] == "7"


def test_a_failed_local_write_leaves_no_partial_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = LocalObjectStore(tmp_path)
    store.put("files/a.png", b"old")

    def full(_fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError):
        store.put("files/a.png", b"new and longer")
    assert store.get("files/a.png") == b"old"
    assert [p.name for p in (tmp_path / "files").iterdir()] == ["a.png"]


def test_patience_retries_an_outage_until_it_ends_and_not_a_bug(tmp_path: Path) -> None:
    calls: list[float] = []

    def flaky() -> str:
        calls.append(time.monotonic())
        if len(calls) < 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return "stored"

    assert retry_blocking(flaky, what="test", patience_s=30) == "stored"
    assert len(calls) == 3

    def bug() -> None:
        calls.append(0.0)
        raise ValueError("ours")

    calls.clear()
    with pytest.raises(ValueError):
        retry_blocking(bug, what="test", patience_s=30)
    assert len(calls) == 1
    store = PatientObjectStore(LocalObjectStore(tmp_path), patience_s=0.0)
    with pytest.raises(ValueError):
        store.put("../escape", b"x")  # a refused key is no outage: at once


def test_a_background_loop_logs_an_outage_in_one_line_and_a_bug_with_its_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = logging.getLogger("tests.faults.loop")
    with caplog.at_level(logging.INFO, logger="tests.faults.loop"):
        try:
            raise EndpointConnectionError(endpoint_url="http://127.0.0.1:1")
        except EndpointConnectionError:
            log_failure(log, "claiming a job failed")
        try:
            raise KeyError("ours")
        except KeyError:
            log_failure(log, "claiming a job failed")
    outage, bug = caplog.records
    assert outage.levelno == logging.WARNING and outage.exc_info is None
    assert "store unavailable" in outage.getMessage()
    assert bug.levelno == logging.ERROR and bug.exc_info is not None
