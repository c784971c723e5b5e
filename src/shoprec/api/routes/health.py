"""Liveness and readiness (no API key needed). GET /metrics is in shoprec.api.metrics.

Anonymous readiness says ready or not, with a generic reason: it names no platform, model or failure (those
are tenants' data). The admin key as X-API-Key gets the details: the revision, every platform's served model,
why an active model cannot be loaded."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from shoprec.api.auth import PRINCIPAL_STATE, ServicesDep
from shoprec.errors import StorageError
from shoprec.service.platform import Principal

router = APIRouter(tags=["health"])


@router.get("/v1/health/live")
def live() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/v1/health/ready", response_model=None)
def ready(request: Request, services: ServicesDep) -> dict[str, Any] | JSONResponse:
    """Ready when the database answers at the newest schema revision and every platform's active model is
    served: while one cannot be loaded (artifact missing, corrupt, store unreachable) the answer is 503, though
    the last good model (or popularity) keeps answering requests. Anonymous: {"status"} and a generic
    "message" when not ready; with the admin key as X-API-Key: the revision, the served models and, when not
    ready, the reason and each failing platform's model and reason."""
    principal: Principal | None = request.scope.get("state", {}).get(PRINCIPAL_STATE)
    detailed = principal is not None and principal.admin
    answer = _readiness(services)
    if detailed:
        return answer
    if isinstance(answer, JSONResponse):
        return JSONResponse(status_code=answer.status_code, content={
            "status": "unavailable", "message": "not ready (details: send the admin key as X-API-Key)"})
    return {"status": "ok"}


def _readiness(services: Any) -> dict[str, Any] | JSONResponse:
    from shoprec.storage import current_revision, head_revision

    try:
        revision = current_revision(services.engine)
    except StorageError as exc:
        return JSONResponse(status_code=503, content={"status": "unavailable", "message": str(exc)})
    head = head_revision()
    if revision != head:
        return JSONResponse(status_code=503, content={"status": "unavailable",
                                                      "message": f"database at revision {revision}, need {head}"})
    try:
        failures = services.models.check_all()
    except StorageError as exc:
        return JSONResponse(status_code=503, content={"status": "unavailable", "message": str(exc)})
    if failures:
        reasons = {p: {"model_id": f.model_id, "reason": f.reason, "serving": f.serving} for p, f in failures.items()}
        first = next(iter(failures.values()))
        more = f" (and {len(failures) - 1} more platforms)" if len(failures) > 1 else ""
        return JSONResponse(status_code=503, content={
            "status": "unavailable", "message": f"active model cannot be loaded: {first.reason}{more}",
            "models": services.models.loaded(), "failures": reasons})
    return {"status": "ok", "revision": revision, "models": services.models.loaded()}
