"""Liveness and readiness (no API key needed). GET /metrics is in shoprec.api.metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from shoprec.api.auth import ServicesDep
from shoprec.errors import StorageError

router = APIRouter(tags=["health"])


@router.get("/v1/health/live")
def live() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/v1/health/ready", response_model=None)
def ready(services: ServicesDep) -> dict[str, Any] | JSONResponse:
    """Ready when the database answers at the newest schema revision and every platform's active model is
    served: while one cannot be loaded (artifact missing, corrupt, store unreachable) the answer is 503 with
    the reason, though the last good model (or popularity) keeps answering requests."""
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
