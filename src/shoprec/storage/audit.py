"""The audit log table: append a record, read the newest records (of one platform or of all).

Written inside the caller's transaction, so an admin action and its audit record commit together.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from shoprec.storage import tables as T
from shoprec.storage.repo import Executor


def insert_audit(conn: Executor, row: dict[str, Any]) -> None:
    """Append one audit record (keys: platform_id, action, actor, subject, details, created_at)."""
    conn.execute(sa.insert(T.audit_log), [row])


def select_audit(conn: Executor, platform_id: int | None, limit: int) -> list[dict[str, Any]]:
    """The newest `limit` records, newest first; of one platform when platform_id is given, else of all."""
    a, p = T.audit_log, T.platforms
    query = (sa.select(a.c.id, p.c.name.label("platform"), a.c.action, a.c.actor, a.c.subject, a.c.details,
                       a.c.created_at)
             .select_from(a.outerjoin(p, p.c.id == a.c.platform_id))
             .order_by(a.c.created_at.desc(), a.c.id.desc()).limit(limit))
    if platform_id is not None:
        query = query.where(a.c.platform_id == platform_id)
    return [dict(r._mapping) for r in conn.execute(query)]
