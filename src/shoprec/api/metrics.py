"""Prometheus metrics of one app (its own registry, so several apps in one process do not clash).

- shoprec_request_seconds{method, route, status}: request latency histogram (route = the path template)
- shoprec_events_ingested_total{platform}: events stored through POST /v1/events and feedback
- shoprec_recommendations_total{platform, source}: served items by fallback level
- shoprec_model_info{platform, model_id}: 1 for each served model version
With several workers each process answers for itself.
"""

from __future__ import annotations

import time

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.latency = Histogram("shoprec_request_seconds", "Request latency (server side)",
                                 ["method", "route", "status"], buckets=BUCKETS, registry=self.registry)
        self.events = Counter("shoprec_events_ingested", "Events stored", ["platform"], registry=self.registry)
        self.recommended = Counter("shoprec_recommendations", "Items served by fallback level",
                                   ["platform", "source"], registry=self.registry)
        self.models = Gauge("shoprec_model_info", "Served model versions", ["platform", "model_id"],
                            registry=self.registry)

    def render(self, served: dict[str, str]) -> Response:
        self.models.clear()
        for platform, model_id in served.items():
            self.models.labels(platform, model_id).set(1)
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


class MeasureRequests:
    """Pure ASGI middleware (no per-request task or body re-streaming, unlike @app.middleware("http")):
    observes each request's latency under its route template and adds X-Process-Time-Ms, the time until
    the response starts, to every answer."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def timed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                took = f"{(time.perf_counter() - start) * 1000:.3f}".encode()
                message = {**message, "headers": [*message.get("headers", ()), (b"x-process-time-ms", took)]}
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        finally:
            path = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.latency.labels(scope["method"], path, str(status)).observe(time.perf_counter() - start)


def install(app: FastAPI, metrics: Metrics) -> None:
    app.add_middleware(MeasureRequests, metrics=metrics)
