"""The audit log of admin actions and erasures: who did what to which platform, and when.

    with engine.begin() as conn:                              # the caller's transaction
        ...                                                   # the action itself
        record_audit(conn, platform_id=pid, action="user.erase", actor="key_1a2b", subject=user_hash)

Callers pass hashes or pseudonyms only (a key id, a keyed hash of a user id), never a raw identifier:
the log is kept after erasure, so it must not hold what was erased.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from shoprec.errors import DataError
from shoprec.storage import Engine, find_platform, storage_errors
from shoprec.storage import tables as T
from shoprec.storage.audit import insert_audit, select_audit
from shoprec.storage.repo import Executor

MAX_AUDIT_LIMIT = 10_000


def _check_length(name: str, value: str | None, limit: int) -> None:
    if value is not None and len(value) > limit:
        raise ValueError(f"audit {name} is {len(value)} characters, over the limit of {limit}")


def record_audit(conn: Executor, *, platform_id: int | None, action: str, actor: str, subject: str | None = None,
                 details: dict[str, Any] | None = None) -> None:
    """Append an audit record inside the caller's transaction (it commits or rolls back with the action).

    action: dotted verb such as "key.create", "key.revoke", "platform.create", "model.activate", "user.erase";
    actor: who did it ("admin", "cli", or the public key id of the caller); subject: what it was done to.
    """
    _check_length("action", action, T.MAX_AUDIT_ACTION_LENGTH)
    _check_length("actor", actor, T.MAX_AUDIT_ACTOR_LENGTH)
    _check_length("subject", subject, T.MAX_ID_LENGTH)
    insert_audit(conn, {"platform_id": platform_id, "action": action, "actor": actor, "subject": subject,
                        "details": details, "created_at": time.time()})


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One audited action: `platform` a name (None: the deployment), `actor` a key id or "admin"/"cli",
    `subject` what it acted on (a keyed hash for a user), `details` small JSON facts."""

    id: int
    platform: str | None
    action: str
    actor: str
    subject: str | None
    details: dict[str, Any] | None
    created_at: float


def list_audit(engine: Engine, platform: str | None = None, limit: int = 100) -> list[AuditRecord]:
    """The newest `limit` audit records (newest first), of platform `platform` (a name) or of all platforms."""
    if not 1 <= limit <= MAX_AUDIT_LIMIT:
        raise DataError(f"limit must be between 1 and {MAX_AUDIT_LIMIT}, got {limit}")
    with storage_errors(engine, "read the audit log"), engine.connect() as conn:
        platform_id = None
        if platform is not None:
            platform_id = find_platform(conn, platform)
            if platform_id is None:
                raise DataError(f"unknown platform {platform!r}")
        return [AuditRecord(r["id"], r["platform"], r["action"], r["actor"], r["subject"], r["details"],
                            r["created_at"]) for r in select_audit(conn, platform_id, limit)]
