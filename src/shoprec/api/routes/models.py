"""Model training jobs, the model registry and activation (hot swap)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Path

from shoprec.api.auth import PlatformDep, PrincipalDep, ServicesDep
from shoprec.api.schemas import JobOut, ModelOut, TrainIn

router = APIRouter(prefix="/v1", tags=["models"])
Hex = Annotated[str, Path(min_length=1, max_length=64)]


@router.post("/models/train", response_model=JobOut, status_code=202)
def train(body: TrainIn, platform: PlatformDep, services: ServicesDep) -> JobOut:
    """Start training in the background; poll GET /v1/jobs/{job_id}."""
    return JobOut(**asdict(services.jobs.submit_training(platform, body.model, body.params, body.activate)))


@router.get("/jobs/{job_id}", response_model=JobOut)
def job(job_id: Hex, platform: PlatformDep, services: ServicesDep) -> JobOut:
    return JobOut(**asdict(services.jobs.get(platform, job_id)))


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
