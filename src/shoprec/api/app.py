"""create_app(settings): the FastAPI application (nothing is created at import time).

    app = create_app(load_settings())      # tests, embedding
    app = server_app(settings)             # a server process (what `shoprec serve`'s workers run)
OpenAPI docs at /docs (Swagger UI served from this process: `swagger-ui-bundle`'s files, no CDN); every route
under /v1 needs X-API-Key, checked before the body is read (AuthFirst; health does not; /metrics does when
[metrics] token is set).
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from starlette.middleware.cors import CORSMiddleware
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp

from shoprec import __version__, dashboard
from shoprec.api import errors
from shoprec.api import metrics as metrics_module
from shoprec.api.auth import AuthFirst, RateLimited, rate_limited_handler
from shoprec.api.limits import RequestGuard
from shoprec.api.routes import data, experiments, health, keys, lists, models, privacy, recommend, retraining
from shoprec.api.validation import check_request
from shoprec.service import Services, ServingConfig, build_services
from shoprec.service.retention import start_retention
from shoprec.settings import Settings, check_admin_key, load_settings

DEFAULT_MAX_BODY_BYTES = ServingConfig.max_body_bytes


class ShoprecAPI(FastAPI):
    """FastAPI with shoprec.api.metrics.ObserveRequests outside everything else, the error handlers included,
    so that every answer (a 500 too) carries its request id and is measured and logged."""

    def build_middleware_stack(self) -> ASGIApp:
        return metrics_module.ObserveRequests(super().build_middleware_stack(), self.state.metrics)


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

    app = ShoprecAPI(title="shoprec", version=__version__, lifespan=lifespan,
                     description="Personalised recommendations for e-commerce: send items and events, get lists.",
                     docs_url=None, redoc_url=None, dependencies=[Depends(check_request)])
    install_docs(app)
    app.mount(TRACKER_ASSETS, StaticFiles(directory=TRACKER_DIR), name="tracker")  # the browser tracker
    app.state.services = services
    app.state.freeze_gc = False
    app.state.metrics = metrics_module.Metrics()
    errors.install(app)
    app.add_exception_handler(RateLimited, rate_limited_handler)
    app.add_middleware(RequestGuard, default_limit=DEFAULT_MAX_BODY_BYTES)  # sizes, unstorable text
    app.add_middleware(AuthFirst)  # outside RequestGuard: the key is checked before the body is read
    install_cors(app, (config or (services.config if services is not None else settings.serving)).cors_origins)
    for module in (data, recommend, lists, models, experiments, keys, privacy, health, retraining, metrics_module):
        app.include_router(module.router)
    dashboard.install(app)  # /dashboard: the operator pages (admin key)
    errors.declare_responses(app)  # the error answers of each route, in the OpenAPI schema
    return app


DOCS_ASSETS = "/docs/assets"
TRACKER_ASSETS = "/static"  # /static/shoprec-tracker.js: the storefront tracker (docs/clients.md)
TRACKER_DIR = Path(__file__).parent / "static"
CORS_HEADERS = ["X-API-Key", "X-Platform", "Idempotency-Key", "Content-Type", "X-Request-ID"]
CORS_EXPOSED = ["Idempotent-Replayed", "Retry-After", "X-Request-ID"]


def install_cors(app: FastAPI, origins: tuple[str, ...]) -> None:
    """CORS for the pages of `origins` ([serving] cors_origins; none: no CORS headers, browsers refuse every
    cross-origin call). Starlette's CORSMiddleware, added outside AuthFirst: a preflight carries no key and is
    answered here, and the error answers (a 401 too) carry the CORS headers so a page can read them. No
    credentials (cookies): the API authenticates by the X-API-Key header only."""
    if not origins:
        return
    app.add_middleware(CORSMiddleware, allow_origins=list(origins), allow_methods=["GET", "POST", "PUT", "DELETE"],
                       allow_headers=CORS_HEADERS, expose_headers=CORS_EXPOSED, allow_credentials=False,
                       max_age=600)


def install_docs(app: FastAPI) -> None:
    """/docs: Swagger UI with its scripts and styles served from the `swagger-ui-bundle` package (so the page
    works offline and sends nothing to a CDN). There is no /redoc: no maintained Python package ships ReDoc's
    script, and one interactive page over the same /openapi.json is enough."""
    import swagger_ui_bundle

    app.mount(DOCS_ASSETS, StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="shoprec API",
                                   swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
                                   swagger_favicon_url=f"{DOCS_ASSETS}/favicon-32x32.png")


def server_app(settings: Settings) -> FastAPI:
    """The app of one server process (`shoprec serve`'s workers), with this process's torch and BLAS thread
    pools limited to [serving] threads (1 by default) and what startup built kept out of the GC's passes."""
    limit_threads(settings.serving.threads)
    app = create_app(settings, settings.serving)
    app.state.freeze_gc = True
    return app


def app_from_env() -> FastAPI:
    """`uvicorn --factory shoprec.api.app:app_from_env`: server_app(load_settings()), for running under
    another ASGI server (`shoprec serve` passes its settings to its workers instead)."""
    settings = load_settings()
    check_admin_key(settings.serving)
    return server_app(settings)


def limit_threads(n: int) -> None:
    """At most n CPU threads for torch and the BLAS / OpenMP libraries of this process."""
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(n)
    threadpool_limits(limits=n)
