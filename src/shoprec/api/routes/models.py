"""Model training jobs (queued for a worker), job listing and cancellation, the model registry and activation
(hot swap)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Path, Query

from shoprec.api.auth import PlatformDep, PrincipalDep, ServicesDep, TrainPlatformDep
from shoprec.api.errors import responses
from shoprec.api.schemas import JobOut, ModelOut, TrainIn
from shoprec.api.validation import model_params
from shoprec.service.jobs import MAX_LIST

router = APIRouter(prefix="/v1", tags=["models"], responses=responses(409))
_STATUS = "(queued|running|succeeded|failed|cancelled)"
Hex = Annotated[str, Path(min_length=1, max_length=64)]


@router.post("/models/train", response_model=JobOut, status_code=202)
def train(body: TrainIn, platform: TrainPlatformDep, principal: PrincipalDep, services: ServicesDep) -> JobOut:
    """Queue a training job (needs the `train` scope); a worker runs it. Poll GET /v1/jobs/{job_id}.
    429 when the platform has jobs.max_queued jobs queued or running; 422 naming a parameter over its cap."""
    with model_params():
        job = services.jobs.submit_training(platform, body.model, body.params, body.activate, actor=principal.actor)
    return JobOut(**asdict(job))


@router.get("/jobs", response_model=list[JobOut])
def jobs(platform: PlatformDep, services: ServicesDep,
         status: Annotated[str | None, Query(max_length=100, pattern=f"^{_STATUS}(,{_STATUS})*$",
                                             description="e.g. queued or queued,running")] = None,
         limit: Annotated[int, Query(ge=1, le=MAX_LIST)] = 100) -> list[JobOut]:
    """The platform's newest jobs, newest first."""
    return [JobOut(**asdict(j)) for j in services.jobs.list_jobs(platform, status, limit)]


@router.get("/jobs/{job_id}", response_model=JobOut)
def job(job_id: Hex, platform: PlatformDep, services: ServicesDep) -> JobOut:
    return JobOut(**asdict(services.jobs.get(platform, job_id)))


@router.post("/jobs/{job_id}/cancel", response_model=JobOut)
def cancel(job_id: Hex, platform: TrainPlatformDep, principal: PrincipalDep, services: ServicesDep) -> JobOut:
    """Cancel a job (needs the `train` scope): a queued one at once; a running one is stopped by its worker
    within a few seconds (poll the job). 409 for a job that has finished."""
    return JobOut(**asdict(services.jobs.cancel(platform, job_id, actor=principal.actor)))


@router.get("/models", response_model=list[ModelOut])
def models(platform: PlatformDep, services: ServicesDep) -> list[ModelOut]:
    """Every trained model of the platform with its offline metrics and active flag."""
    return [ModelOut(**asdict(m)) for m in services.store.list_models(platform)]


@router.post("/models/{model_id}/activate", response_model=ModelOut)
def activate(model_id: Hex, platform: PlatformDep, principal: PrincipalDep, services: ServicesDep) -> ModelOut:
    """Serve this model from now on (every worker switches within a second, without dropping requests)."""
    services.models.activate(platform, model_id, actor=principal.actor)
    model = next(m for m in services.store.list_models(platform) if m.model_id == model_id)
    return ModelOut(**asdict(model))
