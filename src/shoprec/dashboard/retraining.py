"""The Retraining page: a platform's continuous-retraining policy and its promotion-gate decisions (model, time,
both models' holdout metrics, decision, why), as RetrainService gives them to the API."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from shoprec.dashboard.routes import AccessDep, error_page, page_context, render, services_of
from shoprec.errors import ShoprecError
from shoprec.service import Services

router = APIRouter(prefix="/dashboard", include_in_schema=False)
MAX_SHOWN = 50  # newest decisions shown


def retraining_view(services: Services, platform: str) -> dict[str, Any]:
    """The platform's policy and its newest decisions, each with the compared metric of both models."""
    policy = services.retraining.policy(platform)
    rows = []
    for d in services.retraining.history(platform, MAX_SHOWN):
        rows.append({**d.to_json(), "candidate_value": d.value("candidate"), "active_value": d.value("active")})
    return {"policy": policy.to_json(), "decisions": rows}


@router.get("/retraining", response_class=HTMLResponse)
def retraining_page(request: Request, access: AccessDep, platform: str | None = None) -> HTMLResponse:
    try:
        ctx = page_context(request, access, "retraining", platform)
        view = retraining_view(services_of(request), ctx["platform"]) if ctx["platform"] else None
    except ShoprecError as exc:
        return error_page(request, exc)
    return render(request, "retraining.html", **ctx, view=view)
