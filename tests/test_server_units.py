"""Server pieces on their own: signed file store, worker bound, settings, accounts, prompt tokens."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from pathlib import Path

import pytest
from pydantic import ValidationError

from models.prompt import extract_profile_tokens, merge_candidate_ids
from server.errors import OverloadedError
from server.settings import Settings
from server.storage import AccountRegistry, LocalFileStore, create_database, load_or_create_dev_key
from server.worker import EnhanceWorker

SECRET = b"0123456789abcdef0123456789abcdef"


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_signed_file_verifies_until_expiry_then_is_refused_and_swept(tmp_path: Path) -> None:
    clock = FakeClock(1_800_000_000.0)
    store = LocalFileStore(tmp_path, SECRET, ttl_s=24 * 3600, clock=clock)
    handle = store.save(b"\x89PNG fake", "png")
    assert handle.expires == 1_800_000_000 + 24 * 3600
    assert store.verify(handle.name, handle.expires, handle.signature) == handle.name
    assert store.local_path(handle.name) == tmp_path / "files" / handle.name
    clock.now += 24 * 3600 - 1
    assert store.verify(handle.name, handle.expires, handle.signature) is not None
    assert store.remove_expired() == 0
    clock.now += 1
    assert store.verify(handle.name, handle.expires, handle.signature) is None
    assert store.remove_expired() == 1
    assert not (tmp_path / "files" / handle.name).exists()


def test_signed_file_refuses_tampering(tmp_path: Path) -> None:
    store = LocalFileStore(tmp_path, SECRET, ttl_s=60, clock=FakeClock(1_800_000_000.0))
    handle = store.save(b"data", "jpg")
    other = LocalFileStore(tmp_path, b"f" * 32, ttl_s=60, clock=FakeClock(1_800_000_000.0))
    assert store.verify(handle.name, handle.expires + 1, handle.signature) is None
    assert store.verify(handle.name, handle.expires, handle.signature[:-1] + "0") is None or handle.signature[-1] == "0"
    assert other.verify(handle.name, handle.expires, handle.signature) is None
    assert store.verify("../../etc/passwd", handle.expires, handle.signature) is None


def test_file_store_refuses_a_short_secret(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        LocalFileStore(tmp_path, b"short", ttl_s=60)


def test_worker_refuses_beyond_its_queue_bound() -> None:
    async def scenario() -> list[object]:
        worker = EnhanceWorker(max_concurrent=1, max_queued=1)
        release = threading.Event()
        first = asyncio.create_task(worker.run(release.wait, 5))
        second = asyncio.create_task(worker.run(lambda: "second"))
        await asyncio.sleep(0.05)
        assert worker.depth == 2
        with pytest.raises(OverloadedError):
            await worker.run(lambda: "third")
        release.set()
        return [await first, await second]

    assert asyncio.run(scenario()) == [True, "second"]


def test_worker_runs_one_at_a_time_when_configured_so() -> None:
    active = 0
    peak = 0
    lock = threading.Lock()

    def job() -> None:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        threading.Event().wait(0.02)
        with lock:
            active -= 1

    async def scenario() -> None:
        worker = EnhanceWorker(max_concurrent=1, max_queued=10)
        await asyncio.gather(*(worker.run(job) for _ in range(5)))

    asyncio.run(scenario())
    assert peak == 1


@pytest.mark.parametrize("secret", ["short", "changeme"])
def test_settings_refuse_a_weak_signing_secret(secret: str) -> None:
    with pytest.raises(ValidationError):
        Settings(signing_secret=secret)


def test_settings_refuse_a_zero_url_lifetime() -> None:
    with pytest.raises(ValidationError):
        Settings(url_ttl_s=0)


def test_settings_default_format_switches_on_the_hosted_date() -> None:
    settings = Settings()
    assert settings.default_format_on(dt.date(2026, 5, 7)) == "png"
    assert settings.default_format_on(dt.date(2026, 5, 8)) == "jpg"
    assert Settings(default_output_format="png").default_format_on(dt.date(2030, 1, 1)) == "png"


def test_settings_read_the_environment_when_built(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENHANCE_API_KEYS", "a, b ,,c")
    monkeypatch.setenv("ENHANCE_ALLOW_PRIVATE_URLS", "true")
    settings = Settings()
    assert settings.api_key_list == ["a", "b", "c"]
    assert settings.allow_private_urls is True


def test_dev_key_is_created_once_in_the_database_and_reused(tmp_path: Path) -> None:
    engine = create_database(None, tmp_path)
    key, created = load_or_create_dev_key(engine, tmp_path)
    again, created_again = load_or_create_dev_key(engine, tmp_path / "another-replica")
    assert created and not created_again
    assert key == again and key.startswith("dev_") and len(key) > 20
    assert not (tmp_path / "dev-api-key").exists()  # no file: every process on the database shares it


def test_accounts_store_only_key_hashes_and_are_stable(tmp_path: Path) -> None:
    engine = create_database(None, tmp_path)
    first = AccountRegistry(engine, ["key-one", "key-two"])
    second = AccountRegistry(engine, ["key-one"])
    one = first.authenticate("key-one")
    assert one is not None and one == second.authenticate("key-one")
    assert first.authenticate("key-two") != one
    assert first.authenticate("nope") is None and first.authenticate(None) is None
    assert b"key-one" not in (tmp_path / "enhance.db").read_bytes()


def test_prompt_tokens_are_lifted_out_and_merged() -> None:
    ids, rest = extract_profile_tokens("make [[p_1]] sharper, keep [[ p_2 ]] and [[p_1]] natural")
    assert ids == ["p_1", "p_2"]
    assert rest == "make sharper, keep and natural"
    assert merge_candidate_ids(["p_2", "p_3"], "[[p_1]] [[p_2]]") == ["p_2", "p_3", "p_1"]
    assert merge_candidate_ids(None, None) == []
    assert extract_profile_tokens("[[not valid]]")[0] == []
