"""Prometheus metrics of one app (its own registry, so several apps in one process do not clash).

- shoprec_request_seconds{method, route, status}: request latency histogram (route = the path template)
- shoprec_events_ingested_total{platform}: events stored through POST /v1/events and feedback
- shoprec_recommendations_total{platform, source}: served items by fallback level
- shoprec_model_info{platform, model_id}: 1 for each served model version
With several workers each process answers for itself.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

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


def install(app: FastAPI, metrics: Metrics) -> None:
    @app.middleware("http")
    async def measure(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        start = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        metrics.latency.labels(request.method, path, str(response.status_code)).observe(time.perf_counter() - start)
        response.headers["X-Process-Time-Ms"] = f"{(time.perf_counter() - start) * 1000:.3f}"
        return response
