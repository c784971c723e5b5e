"""Authentication and authorisation, in one place for every route.

Every /v1 request carries X-API-Key. A platform key acts on its own platform only; the admin key
(SHOPREC_ADMIN_KEY) names the platform it acts on with X-Platform and holds every scope.

Scopes are enforced here, centrally, by `get_principal` (which every authenticated route depends on,
through PlatformDep, PrincipalDep, AdminDep or PlatformAdminDep), so a new route is covered without doing
anything: GET and HEAD need `read`, other methods need `write`, a route that depends on
PlatformAdminDep or AdminDep needs `admin` instead, and one that depends on TrainPlatformDep (training, job
cancellation) needs `train` (a `write` key cannot start training unless it also holds `train`); POST /v1/events
(EVENTS_ROUTES) needs `events`, which a `write` key holds too: a key with only `events` may send events and
do nothing else (the key a storefront page shows for the browser tracker, docs/clients.md). The per-key
rate limit (SHOPREC_RATE_LIMIT) is taken here too: 429 with Retry-After when a key's bucket is empty.

Before any of that, AuthFirst (an ASGI middleware, outermost but for the request observer) checks the key's
validity before the request body is read, and limits failed authentications per client address across every
path (a wrong X-API-Key anywhere, a failed dashboard login), shared by the workers.

    AdminDep          the deployment admin key only (creating platforms)
    PlatformAdminDep  the acting platform, for a key with the `admin` scope (key management, audit log)
    TrainPlatformDep  the acting platform, for a key with the `train` scope (POST /v1/models/train, job cancel)
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Header, HTTPException, Request
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shoprec.api import errors
from shoprec.errors import DataError, StorageError
from shoprec.logs import bind_context
from shoprec.service import Services
from shoprec.service.config import parse_rate_limit
from shoprec.service.platform import EVENTS_SCOPE, Principal
from shoprec.service.ratelimit import (
    FailedAuthLimiter,
    LocalRateLimiter,
    RateLimiter,
    make_failed_auth_limiter,
    make_rate_limiter,
)

LOGIN_PATH = "/dashboard/login"  # shoprec.dashboard.auth.LOGIN_PATH (the dashboard sits above the API's auth)

log = logging.getLogger(__name__)
READ_METHODS = frozenset({"GET", "HEAD"})
PRINCIPAL_STATE = "shoprec_principal"  # request.state: the principal AuthFirst found
UNAUTHORIZED = "missing, unknown or revoked API key (header X-API-Key)"
EVENTS_ROUTES = frozenset({("POST", "/v1/events")})  # what a key with only the `events` scope may do


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
    events for sending events (EVENTS_ROUTES), else read (GET/HEAD) or write."""
    if route is not None:
        if (method, route.path) in EVENTS_ROUTES:
            return EVENTS_SCOPE
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
    (a key not cached in this process, a Redis cache or rate limit) goes to a worker thread. AuthFirst has
    usually authenticated the key already (before the body was read): its principal is used then."""
    principal: Principal | None = request.scope.get("state", {}).get(PRINCIPAL_STATE)
    if principal is None:
        principal = services.platforms.authenticate(x_api_key, cached_only=True)
    if principal is None and x_api_key:
        principal = await run_in_threadpool(services.platforms.authenticate, x_api_key)
    if principal is None:
        raise HTTPException(401, UNAUTHORIZED)
    limiter = _rate_limiter(request, services)
    if limiter is not None:
        wait = (limiter.acquire(principal.actor) if isinstance(limiter, LocalRateLimiter)
                else await run_in_threadpool(limiter.acquire, principal.actor))
        if wait > 0:
            raise RateLimited(principal.actor, wait)
    scope = required_scope(request)
    if not principal.allows(scope):
        held = ", ".join(sorted(principal.scopes)) or "none"
        hint = " (or 'write')" if scope == EVENTS_SCOPE else ""
        raise HTTPException(403, f"API key {principal.key_id} lacks the {scope!r} scope{hint} (it has: {held})")
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


# ---------------------------------------------------------------------------- authentication before any work
def needs_key(path: str) -> bool:
    """Whether a request to `path` must carry a valid X-API-Key before anything else is done: every /v1 route
    but health (the dashboard and /metrics check their own credentials)."""
    return path.startswith("/v1/") and not path.startswith("/v1/health/")


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0])[:64] if client else "unknown"


class AuthFirst:
    """Pure ASGI middleware, outside RequestGuard and the app: the caller's key is checked before the request
    body is read, for every route, so an anonymous or wrongly keyed request costs no parsing and no memory.

    - A /v1 route (but health) without a valid X-API-Key is answered 401 at once (the body is never received;
      the connection is closed when a body was announced, so the server does not read it to reuse it).
    - A wrong X-API-Key on any path, or a failed dashboard login (its answer is 401), counts as a failed
      authentication of the client address (FailedAuthLimiter: Redis when configured, else the database);
      over [serving] auth_failures within auth_failure_window_s, every request from that address that tries
      to authenticate (a key, a login) is answered 429 with Retry-After for auth_block_s, the right key too
      (else guessing could go on while blocked).
    The principal found is kept in request.state for get_principal (scopes and rate limits are checked there).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self._check(scope, receive, send)
        except StorageError as exc:
            if scope.get("state", {}).get(PRINCIPAL_STATE) is not None:
                raise  # the app's own error, after the check: its handlers have seen it
            await _refuse(errors._storage(Request(scope), exc), scope, receive, send)

    async def _check(self, scope: Scope, receive: Receive, send: Send) -> None:
        services: Services | None = scope["app"].state.services if scope["type"] == "http" and "app" in scope \
            else None
        if services is None:
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        key = Headers(scope=scope).get("x-api-key") or None  # an empty header is no key
        login = path == LOGIN_PATH and scope.get("method") == "POST"
        if key is None and not login and not needs_key(path):
            await self.app(scope, receive, send)
            return
        limiter = _failure_limiter(scope["app"], services)
        client = _client(scope)
        if limiter.stale():
            await run_in_threadpool(limiter.refresh)
        wait = limiter.blocked_for(client)
        if wait > 0:
            await _refuse(_blocked(wait), scope, receive, send)
            return
        if login:
            await self._login(limiter, client, scope, receive, send)
            return
        principal = None
        if key:
            principal = services.platforms.authenticate(key, cached_only=True)
            if principal is None and len(key) <= 512:
                principal = await run_in_threadpool(services.platforms.authenticate, key)
        if principal is None:
            if key:
                wait = await run_in_threadpool(limiter.fail, client)
                if wait > 0:
                    await _refuse(_blocked(wait), scope, receive, send)
                    return
            await _refuse(errors.error_response(401, "unauthorized", UNAUTHORIZED), scope, receive, send)
            return
        scope.setdefault("state", {})[PRINCIPAL_STATE] = principal
        await self.app(scope, receive, send)

    async def _login(self, limiter: FailedAuthLimiter, client: str, scope: Scope, receive: Receive,
                     send: Send) -> None:
        """A dashboard login: a 401 answer (wrong admin key) counts as a failed authentication."""
        status = 0

        async def watched(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        await self.app(scope, receive, watched)
        if status == 401:
            try:
                await run_in_threadpool(limiter.fail, client)
            except StorageError as exc:  # the answer is sent already: the failure goes uncounted, logged
                log.warning("cannot count a failed dashboard login: %s", exc)


def _failure_limiter(app: Any, services: Services) -> FailedAuthLimiter:
    """The app's failed-authentication limiter, built on first use (the services exist by then)."""
    limiter: FailedAuthLimiter | None = getattr(app.state, "auth_failures", None)
    if limiter is None:
        config = services.config
        limiter = make_failed_auth_limiter(services.cache, services.engine, config.auth_failures,
                                           config.auth_failure_window_s, config.auth_block_s)
        app.state.auth_failures = limiter
    return limiter


def _blocked(wait: float) -> Any:
    from shoprec.api.errors import error_response

    response = error_response(429, "rate_limited", "too many failed authentications from this address; "
                                                   f"retry after {math.ceil(wait)} s")
    response.headers["Retry-After"] = str(max(1, math.ceil(wait)))
    return response


async def _refuse(response: Any, scope: Scope, receive: Receive, send: Send) -> None:
    """Answer without reading the body; when one was announced, close the connection after the answer (the
    server would otherwise read and discard the body to keep the connection). The matched route is noted in
    the scope, so the answer is measured and logged under its route template as usual."""
    if "route" not in scope and "app" in scope:
        route = _route_of(scope["app"], scope)
        if route is not None:
            scope["route"] = route
    headers = Headers(scope=scope)
    if headers.get("content-length", "0") not in ("", "0") or "transfer-encoding" in headers:
        response.headers["Connection"] = "close"
    await response(scope, receive, send)


def _route_of(app: Any, scope: Scope) -> APIRoute | None:
    """The API route a request would reach (its template labels the refused request's metrics and log line)."""
    routes: list[APIRoute] | None = getattr(app.state, "flat_routes", None)
    if routes is None:
        routes, stack = [], list(app.router.routes)
        while stack:  # included routers nest their routes
            route = stack.pop(0)
            if isinstance(route, APIRoute):
                routes.append(route)
            elif hasattr(route, "effective_route_contexts"):
                stack.extend(ctx.original_route for ctx in route.effective_route_contexts())
            elif hasattr(route, "routes") and not hasattr(route, "app"):
                stack.extend(route.routes)
        app.state.flat_routes = routes
    path, method = scope.get("path", ""), scope.get("method", "")
    for route in routes:
        if method in (route.methods or ()) and route.path_regex.match(path):
            return route
    return None
