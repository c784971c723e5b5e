"""The dashboard's routes (server-rendered HTML under /dashboard); `install(app)` adds them to an app.

Every page takes `?platform=` (default: the first platform). Bad input never gives a 500 or a JSON
error here: an unknown platform/user/item is a 404 page, an unusable id a 422 page, a database that
is down a 503 page, and every value is escaped by the templates.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool

from shoprec.dashboard import charts
from shoprec.dashboard import data as pages
from shoprec.dashboard.auth import Access, CsrfError, DashboardAuth, LoginRequired, login_url, safe_next
from shoprec.errors import DataError, ShoprecError, StorageError
from shoprec.service import Services
from shoprec.service.errors import NotFound

HERE = Path(__file__).parent
MAX_FORM_BYTES = 16 * 1024
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
NAV = [("overview", "Overview", "/dashboard"), ("models", "Models", "/dashboard/models"),
       ("experiments", "Experiments", "/dashboard/experiments"), ("jobs", "Jobs", "/dashboard/jobs"),
       ("retraining", "Retraining", "/dashboard/retraining"),
       ("users", "Users", "/dashboard/users"),
       ("items", "Items", "/dashboard/items")]

router = APIRouter(prefix="/dashboard", include_in_schema=False)


def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["num"] = lambda v: f"{v:,}" if isinstance(v, int) else (f"{v:.4g}" if isinstance(v, float) else v)
    env.filters["when"] = _when
    env.filters["q"] = lambda v: quote(str(v), safe="")
    return env


def _when(ts: float | None) -> str:
    import datetime as dt

    if ts is None:
        return ""
    return dt.datetime.fromtimestamp(float(ts), dt.UTC).strftime("%Y-%m-%d %H:%M")


# ---------------------------------------------------------------- plumbing
def get_auth(request: Request) -> DashboardAuth:
    """The app's DashboardAuth (made on first use: the services may be built only at startup)."""
    services = services_of(request)
    auth: DashboardAuth | None = getattr(request.app.state, "dashboard_auth", None)
    if auth is None or auth.services is not services:
        auth = request.app.state.dashboard_auth = DashboardAuth(services)
    return auth


AuthDep = Annotated[DashboardAuth, Depends(get_auth)]


def get_access(request: Request, auth: AuthDep) -> Access:
    return auth.access(request)


AccessDep = Annotated[Access, Depends(get_access)]


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    env: Environment = request.app.state.dashboard_templates
    html = env.get_template(template).render(request=request, nav=NAV, **context)
    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def page_context(request: Request, access: Access, active: str, platform: str | None) -> dict[str, Any]:
    """The context every page shares: platforms for the selector and the chosen one (404 when unknown)."""
    names = pages.platforms(services_of(request))
    chosen = platform.strip() if platform and platform.strip() else (names[0] if names else None)
    if chosen is not None and chosen not in names:
        raise NotFound(f"no platform {chosen!r}")
    return {"active": active, "platforms": names, "platform": chosen, "csrf": access.csrf}


def error_page(request: Request, exc: Exception, context: dict[str, Any] | None = None) -> HTMLResponse:
    status = 404 if isinstance(exc, NotFound) else 503 if isinstance(exc, StorageError) else 422
    title = {404: "Not found", 503: "Database unavailable", 422: "Cannot show this"}[status]
    ctx = {"active": "", "platforms": [], "platform": None, "csrf": "", **(context or {})}
    return render(request, "error.html", status, title=title, message=str(exc), **ctx)


async def _form(request: Request) -> dict[str, str]:
    """An urlencoded form body (first value of each field); a body over MAX_FORM_BYTES is treated as empty."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return {}
    fields = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
    return {k: v[0] for k, v in fields.items()}


# ---------------------------------------------------------------- login
@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, auth: AuthDep, next: str | None = None) -> HTMLResponse:
    return render(request, "login.html", next=safe_next(next), error="", enabled=auth.enabled)


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request, auth: AuthDep) -> Response:
    form = await _form(request)
    target = safe_next(form.get("next"))
    if not auth.enabled:
        return render(request, "login.html", 403, next=target, enabled=False,
                      error="The dashboard is off: set SHOPREC_ADMIN_KEY on the server.")
    wait = await run_in_threadpool(auth.login_wait, request)  # Redis, when configured
    if wait > 0:
        return render(request, "login.html", 429, next=target, enabled=True,
                      error=f"Too many login attempts: try again in {wait:.0f} s.")
    if not auth.is_admin_key(form.get("key")):
        return render(request, "login.html", 401, next=target, enabled=True, error="Wrong admin key.")
    response = RedirectResponse(target, status_code=303)
    auth.set_cookie(request, response, auth.new_session())
    return response


@router.post("/logout")
async def logout(request: Request, auth: AuthDep, access: AccessDep) -> Response:
    form = await _form(request)
    try:
        auth.check_csrf(access, form.get("csrf"))
    except CsrfError as exc:
        return error_page(request, exc)
    response = RedirectResponse("/dashboard/login", status_code=303)
    auth.clear_cookie(response)
    return response


# ---------------------------------------------------------------- pages
@router.get("", response_class=HTMLResponse)
def overview(request: Request, access: AccessDep, platform: str | None = None) -> HTMLResponse:
    try:
        ctx = page_context(request, access, "overview", platform)
        if ctx["platform"] is None:
            return render(request, "overview.html", **ctx, view=None)
        view = pages.overview(services_of(request), ctx["platform"], request.app.state.metrics)
    except ShoprecError as exc:
        return error_page(request, exc)
    h = view.histogram
    events_chart = charts.line_chart(h.starts, h.counts, title="Events per type over time",
                                     x_format=lambda t: _when(t)[:10], y_label="events per bucket", width=900,
                                     height=280)
    routes = view.routes[:12]
    requests_chart = charts.bar_chart([r.route for r in routes], [r.requests for r in routes],
                                      title="Requests per route (this worker, since start)")
    return render(request, "overview.html", **ctx, view=view, events_chart=events_chart,
                  requests_chart=requests_chart)


@router.get("/models", response_class=HTMLResponse)
def models(request: Request, access: AccessDep, platform: str | None = None, message: str = "") -> HTMLResponse:
    try:
        ctx = page_context(request, access, "models", platform)
        rows = pages.models(services_of(request), ctx["platform"]) if ctx["platform"] else []
    except ShoprecError as exc:
        return error_page(request, exc)
    metric_names = pages.metric_columns(rows)
    for row in rows:
        x_name, xs, series = pages.curves(row["training_log"])
        row["charts"] = [charts.line_chart(xs, {k: v}, title=k, x_label=x_name, width=360, height=220, zero=False)
                         for k, v in list(series.items())[:4]]
    return render(request, "models.html", **ctx, models=rows, metric_names=metric_names, message=message[:200])


@router.post("/models/{model_id}/activate")
async def activate(request: Request, model_id: str, auth: AuthDep, access: AccessDep,
                   platform: str | None = None) -> Response:
    form = await _form(request)
    try:
        auth.check_csrf(access, form.get("csrf"))
        ctx = await run_in_threadpool(page_context, request, access, "models", platform)
        if ctx["platform"] is None:
            raise NotFound("no platform to activate a model on")
        await run_in_threadpool(pages.activate, services_of(request), ctx["platform"], model_id)  # loads the model
    except (ShoprecError, CsrfError) as exc:
        return error_page(request, exc)
    note = quote(f"Model {model_id} is now active.", safe="")
    return RedirectResponse(f"/dashboard/models?platform={quote(ctx['platform'], safe='')}&message={note}",
                            status_code=303)


@router.get("/users", response_class=HTMLResponse)
def users(request: Request, access: AccessDep, platform: str | None = None, user_id: str | None = None
          ) -> HTMLResponse:
    return _lookup_page(request, access, platform, "users", "user_id", user_id, pages.recent_user_ids,
                        pages.user_view)


@router.get("/items", response_class=HTMLResponse)
def items(request: Request, access: AccessDep, platform: str | None = None, item_id: str | None = None
          ) -> HTMLResponse:
    return _lookup_page(request, access, platform, "items", "item_id", item_id, pages.popular_items,
                        pages.item_view)


def _lookup_page(request: Request, access: Access, platform: str | None, page: str, field: str, value: str | None,
                 suggestions: Callable[[Any, str], Any], view_of: Callable[[Any, str, str], Any]) -> HTMLResponse:
    """A lookup page (users, items): suggestions for the platform and, when `value` is given, its view."""
    ctx: dict[str, Any] = {}
    try:
        ctx = page_context(request, access, page, platform)
        ctx[field] = value or ""
        services = services_of(request)
        ctx["suggestions"] = suggestions(services, ctx["platform"]) if ctx["platform"] else []
        view = view_of(services, ctx["platform"], value) if value is not None and ctx["platform"] else None
    except ShoprecError as exc:
        return _lookup_error(request, f"{page}.html", exc, ctx)
    return render(request, f"{page}.html", **ctx, view=view, error="")


def _lookup_error(request: Request, template: str, exc: ShoprecError, ctx: dict[str, Any]) -> HTMLResponse:
    """An unknown user/item or a bad id: the lookup page again, with the message, as a 4xx."""
    if "platform" not in ctx or isinstance(exc, StorageError):
        return error_page(request, exc, ctx)
    status = 404 if isinstance(exc, NotFound) else 422 if isinstance(exc, DataError) else 400
    return render(request, template, status, **ctx, view=None, error=str(exc))


# ---------------------------------------------------------------- wiring
def _login_redirect(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LoginRequired)
    return RedirectResponse(login_url(exc.next_path), status_code=303)


def install(app: FastAPI) -> None:
    """Add the dashboard to `app` (its routes, static files and the login redirect)."""
    from shoprec.dashboard import experiments, jobs, retraining

    app.state.dashboard_templates = _environment()
    app.add_exception_handler(LoginRequired, _login_redirect)
    app.include_router(router)
    app.include_router(experiments.router)
    app.include_router(retraining.router)
    app.include_router(jobs.router)
    app.mount("/dashboard/static", StaticFiles(directory=HERE / "static"), name="dashboard-static")
