"""What the API records of each request: Prometheus metrics, a request id, an access log line; and GET /metrics.

- shoprec_request_seconds{method, route, status}: request latency histogram (route = the path template)
- shoprec_events_ingested_total{platform}: events stored through POST /v1/events and feedback
- shoprec_recommendations_total{platform, source}: served items by fallback level
- shoprec_model_info{platform, model_id}: 1 for each model the answering worker serves
- the back office's (shoprec.service.telemetry): jobs, training, retraining decisions, model loads

An app has its own registry, so several apps in one process (tests) do not clash. Under `shoprec serve` the
workers run in prometheus_client's multiprocess mode (shoprec.api.workers sets it up): every process writes its
values to files in one directory and /metrics adds them up, so counters read the same whichever worker
answers. /metrics needs `Authorization: Bearer <token>` (or the admin key as X-API-Key) when [metrics] token
is set.

Every answer carries X-Request-ID (the client's, when it sent a valid one: printable ASCII, at most 128
characters; else a new one) and X-Process-Time-Ms; the id is bound to every log line of the request
(shoprec.logs), and [logging] access_log logs one line a request: method, route, status, duration, request
id and the platform when known.
"""

from __future__ import annotations

import hmac
import logging
import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shoprec.api.errors import error_response
from shoprec.logs import ACCESS_LOGGER, request_context
from shoprec.service import telemetry

BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
REQUEST_ID_HEADER = b"x-request-id"
REQUEST_ID_MAX = 128
access_log = logging.getLogger(ACCESS_LOGGER)


class _ServedModels(Collector):
    """shoprec_model_info from the answering worker's served models, read at scrape time (a gauge would keep
    a replaced model's series in the multiprocess files)."""

    def __init__(self) -> None:
        self.served: Mapping[str, str] = {}

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily("shoprec_model_info", "Served model versions", labels=["platform", "model_id"])
        for platform, model_id in sorted(self.served.items()):
            family.add_metric([platform, model_id], 1)
        yield family


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.latency = Histogram("shoprec_request_seconds", "Request latency (server side)",
                                 ["method", "route", "status"], buckets=BUCKETS, registry=self.registry)
        self.events = Counter("shoprec_events_ingested", "Events stored", ["platform"], registry=self.registry)
        self.recommended = Counter("shoprec_recommendations", "Items served by fallback level",
                                   ["platform", "source"], registry=self.registry)
        self.models = _ServedModels()

    def exposition(self, served: Mapping[str, str]) -> bytes:
        """The text format of every metric: this app's and the back office's, added up over the processes of a
        server in multiprocess mode."""
        self.models.served = dict(served)
        directory = telemetry.multiprocess_dir()
        if directory is None:
            return generate_latest(self.registry) + generate_latest(telemetry.REGISTRY) + generate_latest(
                _one(self.models))
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=directory)
        registry.register(self.models)
        return generate_latest(registry)

    def render(self, served: Mapping[str, str]) -> Response:
        return Response(self.exposition(served), media_type=CONTENT_TYPE_LATEST)


def _one(collector: Collector) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(collector)
    return registry


def valid_request_id(value: str | None) -> bool:
    return value is not None and 0 < len(value) <= REQUEST_ID_MAX and all(" " <= c <= "~" for c in value)


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == REQUEST_ID_HEADER:
            text = value.decode("latin-1").strip()
            return text if valid_request_id(text) else uuid.uuid4().hex
    return uuid.uuid4().hex


class ObserveRequests:
    """Pure ASGI middleware, outermost (around the error handlers, so a 500 gets it too; no per-request task or
    body re-streaming, unlike @app.middleware("http")): gives the request its id and log context, observes
    its latency under its route template, adds X-Request-ID and X-Process-Time-Ms (the time until the
    response starts) to the answer, and writes the access log line."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500
        request_id = _request_id(scope)
        header = request_id.encode("latin-1")

        async def observed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                took = f"{(time.perf_counter() - start) * 1000:.3f}".encode()
                headers = [h for h in message.get("headers", ()) if h[0].lower() != REQUEST_ID_HEADER]
                message = {**message, "headers": [*headers, (b"x-process-time-ms", took),
                                                  (REQUEST_ID_HEADER, header)]}
            await send(message)

        with request_context(request_id) as annotations:
            try:
                await self.app(scope, receive, observed_send)
            finally:
                seconds = time.perf_counter() - start
                route = getattr(scope.get("route"), "path", "unmatched")
                self.metrics.latency.labels(scope["method"], route, str(status)).observe(seconds)
                if access_log.isEnabledFor(logging.INFO):
                    _log_access(scope, route, status, seconds, annotations)


def _log_access(scope: Scope, route: str, status: int, seconds: float, annotations: Mapping[str, Any]) -> None:
    fields = {"method": scope["method"], "route": route, "status": status, "duration_ms": round(seconds * 1000, 3)}
    if route == "unmatched":
        fields["path"] = scope.get("path", "")
    if annotations.get("platform") is not None:
        fields["platform"] = annotations["platform"]
    access_log.info("%s %s %s %.1f ms", scope["method"], route, status, seconds * 1000, extra=fields)


router = APIRouter(tags=["health"])


def _allowed(request: Request) -> bool:
    """No [metrics] token: open. Else `Authorization: Bearer <token>` or the admin key as X-API-Key."""
    services = request.app.state.services
    token = services.settings.metrics.token
    if not token:
        return True
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode()):
        return True
    admin = services.config.admin_key
    key = request.headers.get("x-api-key", "")
    return bool(admin) and bool(key) and hmac.compare_digest(key.encode(), admin.encode())


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    if not _allowed(request):
        answer = error_response(401, "unauthorized", "/metrics needs Authorization: Bearer <metrics token> "
                                                     "or the admin key as X-API-Key")
        answer.headers["WWW-Authenticate"] = "Bearer"
        return answer
    services = request.app.state.services
    rendered: Response = request.app.state.metrics.render(services.models.loaded())
    return rendered
