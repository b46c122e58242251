"""Request dependencies, as ``Annotated`` aliases: settings, the caller's account, the models, stores."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader

from server.errors import UNAUTHORIZED_DETAIL, NotReadyError, RateLimitedError, UnauthorizedError
from server.jobs import JobService
from server.profiles import ProfileCandidates
from server.runtime import ModelRuntime
from server.settings import Settings
from server.storage import Account, AccountLimits, AccountRegistry, LocalFileStore
from server.worker import EnhanceWorker

# Named APIKeyHeader in the OpenAPI document, as in the hosted API. auto_error=False: our own 401 body.
api_key_header = APIKeyHeader(name="X-API-Key", scheme_name="APIKeyHeader", auto_error=False)


def _settings(request: Request) -> Settings:
    return request.app.state.settings


def _account(request: Request, key: Annotated[str | None, Depends(api_key_header)]) -> Account:
    registry: AccountRegistry = request.app.state.accounts
    account = registry.authenticate(key)
    if account is None:
        raise UnauthorizedError(UNAUTHORIZED_DETAIL)
    limits: AccountLimits | None = getattr(request.app.state, "limits", None)
    if limits is not None and limits.per_minute > 0:
        decision = limits.count_request(account.id)
        if not decision.allowed:
            raise RateLimitedError(
                f"This account made more than {limits.per_minute} requests this minute "
                "(ENHANCE_RATE_LIMIT_PER_MINUTE); retry after the Retry-After seconds.",
                decision.retry_after_s,
            )
    return account


def _runtime(request: Request) -> ModelRuntime:
    runtime: ModelRuntime | None = getattr(request.app.state, "runtime", None)
    if runtime is None:
        raise NotReadyError("The models are still loading; retry shortly.")
    return runtime


def _worker(request: Request) -> EnhanceWorker:
    return request.app.state.worker


def _files(request: Request) -> LocalFileStore:
    return request.app.state.files


def _jobs(request: Request) -> JobService:
    jobs: JobService | None = getattr(request.app.state, "jobs", None)
    if jobs is None:
        raise NotReadyError("The job service is still starting; retry shortly.")
    return jobs


def _candidates(request: Request) -> ProfileCandidates:
    candidates: ProfileCandidates | None = getattr(request.app.state, "candidates", None)
    if candidates is None:
        raise NotReadyError("The profile store is still starting; retry shortly.")
    return candidates


def _today(request: Request) -> dt.date:
    clock: Callable[[], dt.date] = request.app.state.today
    return clock()


SettingsDep = Annotated[Settings, Depends(_settings)]
CurrentAccount = Annotated[Account, Depends(_account)]
RuntimeDep = Annotated[ModelRuntime, Depends(_runtime)]
WorkerDep = Annotated[EnhanceWorker, Depends(_worker)]
FilesDep = Annotated[LocalFileStore, Depends(_files)]
JobsDep = Annotated[JobService, Depends(_jobs)]
TodayDep = Annotated[dt.date, Depends(_today)]
CandidatesDep = Annotated[ProfileCandidates, Depends(_candidates)]
