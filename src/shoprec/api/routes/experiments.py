"""A/B experiments: create, list, read, stop, and per-variant results (the service does the work)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Path

from shoprec.api.auth import PlatformDep, ServicesDep
from shoprec.api.errors import responses
from shoprec.api.schemas import ExperimentIn, ExperimentOut, ExperimentResultsOut

router = APIRouter(prefix="/v1/experiments", tags=["experiments"], responses=responses(409))
ExperimentId = Annotated[str, Path(min_length=1, max_length=64)]


@router.post("", response_model=ExperimentOut, status_code=201)
def create(body: ExperimentIn, platform: PlatformDep, services: ServicesDep) -> ExperimentOut:
    """Start an experiment: users are split between the variants' models by a stable hash of their id."""
    variants = [v.model_dump() for v in body.variants]
    created = services.experiments.create(platform, body.name, variants, body.start, body.end)
    return ExperimentOut(**asdict(created))


@router.get("", response_model=list[ExperimentOut])
def list_experiments(platform: PlatformDep, services: ServicesDep) -> list[ExperimentOut]:
    """Every experiment of the platform, oldest first."""
    return [ExperimentOut(**asdict(e)) for e in services.experiments.list(platform)]


@router.get("/{experiment_id}", response_model=ExperimentOut)
def get(experiment_id: ExperimentId, platform: PlatformDep, services: ServicesDep) -> ExperimentOut:
    return ExperimentOut(**asdict(services.experiments.get(platform, experiment_id)))


@router.post("/{experiment_id}/stop", response_model=ExperimentOut)
def stop(experiment_id: ExperimentId, platform: PlatformDep, services: ServicesDep) -> ExperimentOut:
    """Stop now: every user gets the active model again (results stay readable)."""
    return ExperimentOut(**asdict(services.experiments.stop(platform, experiment_id)))


@router.get("/{experiment_id}/results", response_model=ExperimentResultsOut)
def results(experiment_id: ExperimentId, platform: PlatformDep, services: ServicesDep) -> ExperimentResultsOut:
    """Per variant: impressions, clicks, purchases, CTR and conversion (95% Wilson intervals) and
    two-proportion z-test p-values against the first variant (control)."""
    return ExperimentResultsOut(**services.experiments.results(platform, experiment_id).to_json())
