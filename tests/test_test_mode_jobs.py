"""Test mode keeps the asynchronous contract: the job and callback suites' own checks run again with
``ENHANCE_MODE=test`` (202, polling, results, errors, idempotency, signed callbacks)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from server.services import services_of
from tests.test_jobs_api import (
    client,
    photo_b64,
    test_async_submit_answers_202_then_the_job_runs_to_a_downloadable_result,
    test_bad_async_submit_is_400_and_stores_no_job,
    test_bytes_result_matches_what_the_synchronous_call_returns,
    test_failing_job_reports_the_error_a_synchronous_call_would_give,
    test_job_of_another_account_or_unknown_id_is_404,
    test_same_client_request_id_returns_the_original_job_without_running_it_again,
)
from tests.test_jobs_callbacks import (
    receiver,
    test_callback_carries_the_job_document_signed_with_the_account_secret,
    test_failed_job_is_called_back_with_its_error,
)

# Fixtures and tests of the job suites, collected again in this module (so in test mode).
__all__ = [
    "client",
    "photo_b64",
    "receiver",
    "test_async_submit_answers_202_then_the_job_runs_to_a_downloadable_result",
    "test_bad_async_submit_is_400_and_stores_no_job",
    "test_bytes_result_matches_what_the_synchronous_call_returns",
    "test_callback_carries_the_job_document_signed_with_the_account_secret",
    "test_failed_job_is_called_back_with_its_error",
    "test_failing_job_reports_the_error_a_synchronous_call_would_give",
    "test_job_of_another_account_or_unknown_id_is_404",
    "test_same_client_request_id_returns_the_original_job_without_running_it_again",
]


@pytest.fixture(scope="module", autouse=True)
def test_mode_environment() -> Iterator[None]:
    """``ENHANCE_MODE=test`` for everything this module builds, the reused fixtures included."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ENHANCE_MODE", "test")
        yield


def test_job_suite_runs_in_test_mode(client: TestClient) -> None:
    runtime = services_of(client.app).runtime
    assert runtime.settings.mode == "test"
    assert {model.network.name for model in runtime.models.values()} == {"none"}
