"""Privacy: erase a user (everything that names them, at once) and export everything held about a user."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path

from shoprec.api.auth import PlatformDep, PrincipalDep, ServicesDep
from shoprec.storage.tables import MAX_ID_LENGTH

router = APIRouter(prefix="/v1", tags=["privacy"])
UserId = Annotated[str, Path(min_length=1, max_length=MAX_ID_LENGTH)]


@router.delete("/users/{user_id}", status_code=204)
def erase_user(user_id: UserId, platform: PlatformDep, principal: PrincipalDep, services: ServicesDep) -> None:
    """Erase the user: row, events, identity hashes, cached history and lists, recommendation-log rows and
    their entry in the platform's models (rewritten); the platform is flagged for retraining and the erasure
    audited under a keyed hash. A user id this platform has no user for (another platform's, one erased before)
    is 404, and nothing changes then (not even this platform's log rows naming that id)."""
    services.privacy.erase(platform, user_id, actor=principal.actor)


@router.get("/users/{user_id}/export")
def export_user(user_id: UserId, platform: PlatformDep, services: ServicesDep) -> dict[str, Any]:
    """Everything held about the user as JSON: attributes, events, identity hashes and the linked platforms
    holding them, served lists and feedback."""
    return services.privacy.export(platform, user_id)
