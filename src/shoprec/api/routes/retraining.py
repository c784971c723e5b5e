"""Continuous retraining: a platform's policy, its promotion-gate decisions, and a retrain queued now (the
service does the work: shoprec.service.retraining)."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

from fastapi import APIRouter, Query

from shoprec.api.auth import PlatformDep, ServicesDep, TrainPlatformDep
from shoprec.api.schemas import DecisionOut, RetrainPolicyIn, RetrainPolicyOut, RetrainRunOut
from shoprec.api.validation import model_params
from shoprec.service.retraining import MAX_HISTORY

router = APIRouter(prefix="/v1/retraining", tags=["retraining"])


@router.get("/policy", response_model=RetrainPolicyOut)
def get_policy(platform: PlatformDep, services: ServicesDep) -> RetrainPolicyOut:
    """The platform's effective policy: its own, or the deployment default (`source` says which)."""
    return RetrainPolicyOut(**services.retraining.policy(platform).to_json())


@router.put("/policy", response_model=RetrainPolicyOut)
def put_policy(body: RetrainPolicyIn, platform: TrainPlatformDep, services: ServicesDep) -> RetrainPolicyOut:
    """Set the platform's own policy: retrain every `every_hours` and/or after `after_events` new events (both
    null: off); promote a new model unless it is more than `margin` below the active one on the holdout."""
    with model_params():
        policy = services.retraining.set_policy(platform, **body.model_dump())
    return RetrainPolicyOut(**policy.to_json())


@router.delete("/policy", response_model=RetrainPolicyOut)
def reset_policy(platform: TrainPlatformDep, services: ServicesDep) -> RetrainPolicyOut:
    """Forget the platform's own policy: the deployment default applies again."""
    return RetrainPolicyOut(**services.retraining.reset_policy(platform).to_json())


@router.get("/decisions", response_model=list[DecisionOut])
def decisions(platform: PlatformDep, services: ServicesDep,
              limit: Annotated[int, Query(ge=1, le=MAX_HISTORY)] = 50) -> list[DecisionOut]:
    """The newest promotion-gate decisions, newest first: candidate and active model, both models' metrics on
    the same time-based holdout, the decision and why."""
    return [DecisionOut(**d.to_json()) for d in services.retraining.history(platform, limit)]


@router.post("/run", response_model=RetrainRunOut, status_code=202)
def run(platform: TrainPlatformDep, services: ServicesDep) -> RetrainRunOut:
    """Queue a retrain of the platform now (a worker trains, compares and decides)."""
    job = services.retraining.request_run(platform)
    return RetrainRunOut(platform=platform, queued=True, job=_plain(job))


def _plain(job: Any) -> dict[str, Any] | None:
    if dataclasses.is_dataclass(job) and not isinstance(job, type):
        return dataclasses.asdict(job)
    if isinstance(job, dict):
        return job
    return None
