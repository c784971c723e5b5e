"""A platform's saved default business rules: read, set, clear (the service checks them on the catalog:
shoprec.service.rules). Each request's rules combine with them (docs/serving.md, Business rules)."""

from __future__ import annotations

from fastapi import APIRouter

from shoprec.api.auth import PlatformDep, ServicesDep, TrainPlatformDep
from shoprec.api.schemas import RulesIn, RulesOut
from shoprec.rules import Rules

router = APIRouter(prefix="/v1", tags=["rules"])


@router.get("/rules", response_model=RulesOut)
def get_rules(platform: PlatformDep, services: ServicesDep) -> RulesOut:
    """The platform's saved default rules (all empty when none are saved)."""
    return RulesOut(**services.rules.get(platform).to_json())


@router.put("/rules", response_model=RulesOut)
def put_rules(body: RulesIn, platform: TrainPlatformDep, services: ServicesDep) -> RulesOut:
    """Replace the platform's default rules; 422 bad_expression naming the rule, position and field (an unknown
    pinned item, an attribute no item has): nothing is saved then."""
    rules = Rules.parse(body.filter, body.boost, body.pin, body.max_per_category, body.max_per_brand,
                        body.diversity)
    return RulesOut(**services.rules.set(platform, rules).to_json())


@router.delete("/rules", response_model=RulesOut)
def clear_rules(platform: TrainPlatformDep, services: ServicesDep) -> RulesOut:
    """Forget the platform's default rules: lists follow each request's rules alone."""
    return RulesOut(**services.rules.clear(platform).to_json())
