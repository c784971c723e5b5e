"""Reads for the operator dashboard: events per type over time (one platform, one grouped query).

The bucket of an event is computed in a subquery and grouped on outside it, which PostgreSQL,
MariaDB and SQLite all accept; SQLite has no FLOOR everywhere, so it truncates a non-negative value.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa

from shoprec.storage import tables as T
from shoprec.storage.repo import Executor, _dialect

MAX_BUCKETS = 200


@dataclass(frozen=True)
class EventHistogram:
    """Event counts per type in `len(starts)` equal time buckets (`starts`: bucket start, unix seconds)."""

    starts: list[float] = field(default_factory=list)
    width: float = 0.0
    counts: dict[str, list[int]] = field(default_factory=dict)


def event_histogram(conn: Executor, platform_id: int, buckets: int = 30) -> EventHistogram:
    """Events of one platform per type in `buckets` equal slices of [first event, last event]."""
    if not 1 <= buckets <= MAX_BUCKETS:
        raise ValueError(f"buckets must be between 1 and {MAX_BUCKETS}, got {buckets}")
    ev = T.events
    scope = ev.c.platform_id == platform_id
    lo, hi = conn.execute(sa.select(sa.func.min(ev.c.timestamp), sa.func.max(ev.c.timestamp)).where(scope)).one()
    if lo is None:
        return EventHistogram()
    lo, hi = float(lo), float(hi)
    width = (hi - lo) / buckets if hi > lo else 1.0
    offset = (ev.c.timestamp - lo) / width
    bucket = sa.cast(offset, sa.Integer) if _dialect(conn) == "sqlite" else sa.func.floor(offset)
    inner = sa.select(bucket.label("bucket"), ev.c.event_type.label("event_type")).where(scope).subquery()
    query = sa.select(inner.c.bucket, inner.c.event_type, sa.func.count()).group_by(inner.c.bucket,
                                                                                      inner.c.event_type)
    counts: dict[str, list[int]] = {}
    for b, event_type, n in conn.execute(query):
        row = counts.setdefault(str(event_type), [0] * buckets)
        row[min(max(int(b), 0), buckets - 1)] += int(n)  # the last event falls on the upper edge
    return EventHistogram([lo + i * width for i in range(buckets)], width, dict(sorted(counts.items())))


def recent_users(conn: Executor, platform_id: int, limit: int = 20) -> list[str]:
    """The external ids of the users with the newest events (newest first)."""
    ev, us = T.events, T.users
    newest = sa.func.max(ev.c.id).label("newest")
    query = (sa.select(us.c.external_id, newest).select_from(ev.join(us, us.c.id == ev.c.user_id))
             .where(ev.c.platform_id == platform_id).group_by(us.c.external_id)
             .order_by(newest.desc()).limit(limit))
    return [str(row[0]) for row in conn.execute(query)]
