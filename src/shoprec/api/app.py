"""create_app(settings): the FastAPI application (nothing is created at import time).

    app = create_app(Settings.from_env())          # uvicorn "shoprec.api.app:app_from_env" --factory
OpenAPI docs at /docs; every route under /v1 needs X-API-Key (health and /metrics do not).
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from shoprec import __version__, dashboard
from shoprec.api import errors
from shoprec.api import metrics as metrics_module
from shoprec.api.auth import RateLimited, rate_limited_handler
from shoprec.api.limits import RequestGuard
from shoprec.api.routes import data, experiments, health, keys, models, privacy, recommend, retraining
from shoprec.service import Services, ServingConfig, build_services
from shoprec.service.retention import start_retention
from shoprec.settings import Settings

DEFAULT_MAX_BODY_BYTES = ServingConfig.max_body_bytes


def create_app(settings: Settings, config: ServingConfig | None = None, *, services: Services | None = None
               ) -> FastAPI:
    """The API over `services` (built from settings and config when not given; closed on shutdown then)."""
    owned = services is None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if app.state.services is None:
            app.state.services = build_services(settings, config)
        loaded = app.state.services.models.load_all()
        for platform in loaded:  # and their catalog views, rather than in each worker's first request
            app.state.services.catalogs.get(platform)
        if app.state.freeze_gc:  # a server process: what startup built stays out of the collector's full passes
            gc.collect()
            gc.freeze()
        retention = start_retention(app.state.services)  # SHOPREC_RETENTION_DAYS: purge hourly
        yield
        if retention is not None:
            retention.stop()
        if owned and app.state.services is not None:
            app.state.services.close()

    app = FastAPI(title="shoprec", version=__version__, lifespan=lifespan,
                  description="Personalised recommendations for e-commerce: send items and events, get lists.")
    app.state.services = services
    app.state.freeze_gc = False
    app.state.metrics = metrics_module.Metrics()
    errors.install(app)
    app.add_exception_handler(RateLimited, rate_limited_handler)
    metrics_module.install(app, app.state.metrics)
    app.add_middleware(RequestGuard, default_limit=DEFAULT_MAX_BODY_BYTES)  # sizes, unstorable text
    for module in (data, recommend, models, experiments, keys, privacy, health, retraining):
        app.include_router(module.router)
    dashboard.install(app)  # /dashboard: the operator pages (admin key)
    return app


def app_from_env() -> FastAPI:
    """The app for `uvicorn --factory shoprec.api.app:app_from_env` (one per worker process), with this
    process's torch and BLAS thread pools limited to ServingConfig.threads (1 by default)."""
    config = ServingConfig.from_env()
    limit_threads(config.threads)
    app = create_app(Settings.from_env(), config)
    app.state.freeze_gc = True
    return app


def limit_threads(n: int) -> None:
    """At most n CPU threads for torch and the BLAS / OpenMP libraries of this process."""
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(n)
    threadpool_limits(limits=n)
