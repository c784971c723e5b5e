"""API keys of the calling platform (create, list, revoke, rotate) and its audit log: `admin` scope."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from shoprec.api.auth import PlatformAdminDep, PrincipalDep, ServicesDep
from shoprec.api.schemas import Strict
from shoprec.service.audit import list_audit
from shoprec.service.platform import DEFAULT_KEY_SCOPES, SCOPES, NewKey
from shoprec.storage.tables import KEY_ID_LENGTH, MAX_KEY_NAME_LENGTH

router = APIRouter(prefix="/v1", tags=["keys"])
KeyId = Annotated[str, Path(min_length=1, max_length=KEY_ID_LENGTH)]
Scope = Literal["read", "write", "admin", "train", "events"]


class KeyIn(Strict):
    scopes: Annotated[list[Scope], Field(min_length=1, max_length=len(SCOPES),
                                         default_factory=lambda: list(DEFAULT_KEY_SCOPES))]
    name: Annotated[str | None, Field(min_length=1, max_length=MAX_KEY_NAME_LENGTH)] = None


class KeyOut(BaseModel):
    key_id: str
    name: str | None
    scopes: list[str]
    created_at: float
    revoked: bool = False
    revoked_at: float | None = None


class NewKeyOut(KeyOut):
    platform: str
    api_key: str  # the secret, shown this once


class AuditOut(BaseModel):
    action: str
    actor: str
    subject: str | None
    details: dict[str, Any] | None
    created_at: float


def _new_key_out(new: NewKey) -> NewKeyOut:
    return NewKeyOut(key_id=new.key_id, name=new.name, scopes=list(new.scopes), created_at=new.created_at,
                     platform=new.platform, api_key=new.key)


@router.post("/keys", response_model=NewKeyOut, status_code=201)
def create_key(body: KeyIn, platform: PlatformAdminDep, principal: PrincipalDep, services: ServicesDep
               ) -> NewKeyOut:
    """A new key for this platform with the given scopes; the secret is in the answer only."""
    return _new_key_out(services.platforms.create_key(platform, body.scopes, body.name, actor=principal.actor))


@router.get("/keys", response_model=list[KeyOut])
def list_keys(platform: PlatformAdminDep, services: ServicesDep) -> list[KeyOut]:
    """Every key of this platform, revoked ones included (never the secrets)."""
    return [KeyOut(**asdict(k)) for k in services.platforms.list_keys(platform)]


@router.delete("/keys/{key_id}", status_code=204)
def revoke_key(key_id: KeyId, platform: PlatformAdminDep, principal: PrincipalDep, services: ServicesDep) -> None:
    """Revoke a key: refused at once by this worker, by every worker within 30 s (at once with Redis)."""
    services.platforms.revoke_key(platform, key_id, actor=principal.actor)


@router.post("/keys/{key_id}/rotate", response_model=NewKeyOut, status_code=201)
def rotate_key(key_id: KeyId, platform: PlatformAdminDep, principal: PrincipalDep, services: ServicesDep
               ) -> NewKeyOut:
    """A new key with the same scopes and name; the old key is revoked."""
    return _new_key_out(services.platforms.rotate_key(platform, key_id, actor=principal.actor))


@router.get("/audit", response_model=list[AuditOut])
def audit(platform: PlatformAdminDep, services: ServicesDep,
          limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[AuditOut]:
    """This platform's newest audit records (admin actions and erasures), newest first."""
    return [AuditOut(**asdict(r)) for r in list_audit(services.engine, platform, limit)]
