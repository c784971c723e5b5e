"""create_app(settings): the FastAPI application (nothing is created at import time).

    app = create_app(Settings.from_env())          # uvicorn "shoprec.api.app:app_from_env" --factory
OpenAPI docs at /docs; every route under /v1 needs X-API-Key (health and /metrics do not).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response

from shoprec import __version__
from shoprec.api import errors
from shoprec.api import metrics as metrics_module
from shoprec.api.routes import data, health, models, recommend
from shoprec.service import Services, ServingConfig, build_services
from shoprec.settings import Settings

MAX_BODY_BYTES = 64 * 1024 * 1024


def create_app(settings: Settings, config: ServingConfig | None = None, *, services: Services | None = None
               ) -> FastAPI:
    """The API over `services` (built from settings and config when not given; closed on shutdown then)."""
    owned = services is None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if app.state.services is None:
            app.state.services = build_services(settings, config)
        app.state.services.models.load_all()
        yield
        if owned and app.state.services is not None:
            app.state.services.close()

    app = FastAPI(title="shoprec", version=__version__, lifespan=lifespan,
                  description="Personalised recommendations for e-commerce: send items and events, get lists.")
    app.state.services = services
    app.state.metrics = metrics_module.Metrics()
    errors.install(app)
    metrics_module.install(app, app.state.metrics)
    _limit_body(app)
    for module in (data, recommend, models, health):
        app.include_router(module.router)
    return app


def _limit_body(app: FastAPI) -> None:
    @app.middleware("http")
    async def limit(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > MAX_BODY_BYTES:
            return errors.error_response(413, "too_large", f"request body over {MAX_BODY_BYTES:,} bytes")
        return await call_next(request)


def app_from_env() -> FastAPI:
    """The app for `uvicorn --factory shoprec.api.app:app_from_env` (one per worker process)."""
    return create_app(Settings.from_env(), ServingConfig.from_env())
