"""Authentication and authorisation, in one place for every route.

Every /v1 request carries X-API-Key. A platform key acts on its own platform only; the admin key
(SHOPREC_ADMIN_KEY) names the platform it acts on with X-Platform and holds every scope.

Scopes are enforced here, centrally, by `get_principal` (which every authenticated route depends on,
through PlatformDep, PrincipalDep, AdminDep or PlatformAdminDep), so a new route is covered without doing
anything: GET and HEAD need `read`, other methods need `write`, a route that depends on
PlatformAdminDep or AdminDep needs `admin` instead, and one that depends on TrainPlatformDep (training, job
cancellation) needs `train` (a `write` key cannot start training unless it also holds `train`). The per-key
rate limit (SHOPREC_RATE_LIMIT) is taken here too: 429 with Retry-After when a key's bucket is empty.

    AdminDep          the deployment admin key only (creating platforms)
    PlatformAdminDep  the acting platform, for a key with the `admin` scope (key management, audit log)
    TrainPlatformDep  the acting platform, for a key with the `train` scope (POST /v1/models/train, job cancel)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Header, HTTPException, Request
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from shoprec.errors import DataError
from shoprec.logs import bind_context
from shoprec.service import Services
from shoprec.service.config import parse_rate_limit
from shoprec.service.platform import Principal
from shoprec.service.ratelimit import LocalRateLimiter, RateLimiter, make_rate_limiter

READ_METHODS = frozenset({"GET", "HEAD"})


class RateLimited(Exception):
    """A key's bucket is empty: answered 429 with Retry-After (seconds, rounded up)."""

    def __init__(self, key_id: str, retry_after_s: float) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(f"rate limit of API key {key_id} exceeded; retry after {retry_after_s:.2f} s")


async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def _rate_limiter(request: Request, services: Services) -> RateLimiter | None:
    """The app's limiter, built on first use from the serving config (the services exist by then)."""
    state = request.app.state
    if not hasattr(state, "rate_limiter"):
        state.rate_limiter = make_rate_limiter(parse_rate_limit(services.config.rate_limit), services.cache)
    limiter: RateLimiter | None = state.rate_limiter
    return limiter


def required_scope(request: Request) -> str:
    """The scope the matched route needs (route_scope)."""
    route = request.scope.get("route")
    return route_scope(route if isinstance(route, APIRoute) else None, request.method)


def route_scope(route: APIRoute | None, method: str) -> str:
    """admin for admin routes, train for training and job control (routes that depend on TrainPlatformDep),
    else read (GET/HEAD) or write."""
    if route is not None:
        calls = _route_calls(route)
        if calls & {require_admin, get_admin_platform}:
            return "admin"
        if get_train_platform in calls:
            return "train"
    return "read" if method in READ_METHODS else "write"


def _route_calls(route: APIRoute) -> frozenset[Callable[..., Any]]:
    """Every dependency callable of the route (computed once per route)."""
    cached: frozenset[Callable[..., Any]] | None = getattr(route, "_shoprec_calls", None)
    if cached is None:
        calls: set[Callable[..., Any]] = set()
        stack = [route.dependant]
        while stack:
            dep = stack.pop()
            if dep.call is not None:
                calls.add(dep.call)
            stack.extend(dep.dependencies)
        cached = frozenset(calls)
        route._shoprec_calls = cached  # type: ignore[attr-defined]
    return cached


async def get_principal(request: Request, services: ServicesDep,
                        x_api_key: Annotated[str | None, Header(max_length=512)] = None) -> Principal:
    """The caller, after the rate limit and the scope check of the matched route. Dependencies run on the
    event loop (a sync one would cost a hop to a worker thread per request); what may wait on the network
    (a key not cached in this process, a Redis cache or rate limit) goes to a worker thread."""
    principal = services.platforms.authenticate(x_api_key, cached_only=True)
    if principal is None and x_api_key:
        principal = await run_in_threadpool(services.platforms.authenticate, x_api_key)
    if principal is None:
        raise HTTPException(401, "missing, unknown or revoked API key (header X-API-Key)")
    limiter = _rate_limiter(request, services)
    if limiter is not None:
        wait = (limiter.acquire(principal.actor) if isinstance(limiter, LocalRateLimiter)
                else await run_in_threadpool(limiter.acquire, principal.actor))
        if wait > 0:
            raise RateLimited(principal.actor, wait)
    scope = required_scope(request)
    if not principal.allows(scope):
        held = ", ".join(sorted(principal.scopes)) or "none"
        raise HTTPException(403, f"API key {principal.key_id} lacks the {scope!r} scope (it has: {held})")
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


async def get_platform(services: ServicesDep, principal: PrincipalDep,
                       x_platform: Annotated[str | None, Header(max_length=128)] = None) -> str:
    """The platform this request acts on (also bound to the request's log lines and access log line)."""
    if principal.admin:
        if not x_platform:
            raise HTTPException(422, "the admin key must name a platform (header X-Platform)")
        try:
            await run_in_threadpool(services.platforms.platform_id, x_platform)
        except DataError:
            raise HTTPException(404, f"unknown platform {x_platform!r}") from None
        bind_context(platform=x_platform)
        return x_platform
    if x_platform and x_platform != principal.platform:
        raise HTTPException(403, "this API key belongs to another platform")
    if principal.platform is None:  # pragma: no cover - a platform key always names its platform
        raise HTTPException(401, "this API key names no platform")
    bind_context(platform=principal.platform)
    return principal.platform


async def require_admin(principal: PrincipalDep) -> Principal:
    if not principal.admin:
        raise HTTPException(403, "only the admin key may do this")
    return principal


PlatformDep = Annotated[str, Depends(get_platform)]
AdminDep = Annotated[Principal, Depends(require_admin)]


async def get_admin_platform(platform: PlatformDep) -> str:
    """The acting platform of a key with the `admin` scope (get_principal has checked the scope)."""
    return platform


PlatformAdminDep = Annotated[str, Depends(get_admin_platform)]


async def get_train_platform(platform: PlatformDep) -> str:
    """The acting platform of a key with the `train` scope (get_principal has checked the scope)."""
    return platform


TrainPlatformDep = Annotated[str, Depends(get_train_platform)]


def rate_limited_handler(request: Request, exc: Exception) -> Any:
    """429 JSON in the house shape, with Retry-After in whole seconds."""
    from shoprec.api.errors import error_response

    assert isinstance(exc, RateLimited)
    response = error_response(429, "rate_limited", str(exc))
    response.headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after_s)))
    return response
