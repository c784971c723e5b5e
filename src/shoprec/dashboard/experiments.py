"""The Experiments page: every A/B experiment of a platform with per-variant CTR and conversion, their 95%
intervals and p-values against the control (all from ExperimentService.results, the numbers the API gives)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from markupsafe import Markup

from shoprec.dashboard import charts
from shoprec.dashboard.routes import AccessDep, error_page, page_context, render, services_of
from shoprec.errors import ShoprecError
from shoprec.service import Services

router = APIRouter(prefix="/dashboard", include_in_schema=False)
MAX_SHOWN = 20  # newest experiments shown with their results


def experiment_results(services: Services, platform: str) -> list[dict[str, Any]]:
    """The newest experiments first, each with its results and two interval charts."""
    experiments = services.experiments
    shown = []
    for exp in experiments.list(platform)[::-1][:MAX_SHOWN]:
        result = experiments.results(platform, exp.experiment_id).to_json()
        result["charts"] = [_chart(result["variants"], key, label) for key, label in
                            (("ctr", "CTR"), ("conversion", "Conversion"))]
        shown.append(result)
    return shown


def _chart(variants: list[dict[str, Any]], key: str, label: str) -> Markup:
    return charts.interval_chart([v["name"] for v in variants], [v[key]["value"] for v in variants],
                                 [tuple(v[key]["ci95"]) for v in variants], title=f"{label} with 95% interval",
                                 value_format=lambda x: f"{100 * x:.3g}%", width=480)


@router.get("/experiments", response_class=HTMLResponse)
def experimentspage_context(request: Request, access: AccessDep, platform: str | None = None) -> HTMLResponse:
    try:
        ctx = page_context(request, access, "experiments", platform)
        rows = experiment_results(services_of(request), ctx["platform"]) if ctx["platform"] else []
    except ShoprecError as exc:
        return error_page(request, exc)
    return render(request, "experiments.html", **ctx, experiments=rows)
