"""Request dependencies, as ``Annotated`` aliases: the app's one typed :class:`Services` (``ServicesDep``;
a route reads the parts it needs with ``services.started_*()``, 503 while that part is still starting)
and the caller's account (``CurrentAccount``, read through ``ServicesDep``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader

from server.errors import UNAUTHORIZED_DETAIL, RateLimitedError, UnauthorizedError
from server.services import Services, services_of
from server.storage import Account

# Named APIKeyHeader in the OpenAPI document, as in the hosted API. auto_error=False: our own 401 body.
api_key_header = APIKeyHeader(name="X-API-Key", scheme_name="APIKeyHeader", auto_error=False)


def _services(request: Request) -> Services:
    return services_of(request.app)


ServicesDep = Annotated[Services, Depends(_services)]


def _account(services: ServicesDep, key: Annotated[str | None, Depends(api_key_header)]) -> Account:
    account = services.started_accounts().authenticate(key)
    if account is None:
        raise UnauthorizedError(UNAUTHORIZED_DETAIL)
    limits = services.limits
    if limits is not None and limits.per_minute > 0:
        decision = limits.count_request(account.id)
        if not decision.allowed:
            raise RateLimitedError(
                f"This account made more than {limits.per_minute} requests this minute "
                "(ENHANCE_RATE_LIMIT_PER_MINUTE); retry after the Retry-After seconds.",
                decision.retry_after_s,
            )
    return account


CurrentAccount = Annotated[Account, Depends(_account)]
