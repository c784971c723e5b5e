"""Dashboard reads on every database backend: events per type over time, recently active users."""

from __future__ import annotations

import sqlalchemy as sa

from shoprec.data.records import EventRecord, ItemRecord
from shoprec.storage import PlatformRepo, get_or_create_platform
from shoprec.storage.dashboard import event_histogram, recent_users
from shoprec.types import EventType


def _fill(engine: sa.Engine, platform: str) -> int:
    with engine.begin() as conn:
        key = get_or_create_platform(conn, platform)
        repo = PlatformRepo(conn, key)
        repo.upsert_items([ItemRecord("i1", title="one"), ItemRecord("i2", title="two")])
        events = [EventRecord("u1", "i1", EventType.VIEW, 1000.0), EventRecord("u1", "i2", EventType.VIEW, 1500.0),
                  EventRecord("u2", "i1", EventType.PURCHASE, 1999.0), EventRecord("u3", "i2", EventType.VIEW, 2000.0)]
        repo.add_events(events)
    return key


def test_event_histogram_counts_every_event_in_its_bucket(engine: sa.Engine, platform: str) -> None:
    key = _fill(engine, platform)
    with engine.connect() as conn:
        h = event_histogram(conn, key, buckets=4)
        other = event_histogram(conn, key + 10_000, buckets=4)
    assert h.starts == [1000.0, 1250.0, 1500.0, 1750.0] and h.width == 250.0
    assert h.counts == {"purchase": [0, 0, 0, 1], "view": [1, 0, 1, 1]}  # the last event sits on the top edge
    assert other.counts == {} and other.starts == []


def test_recent_users_newest_first(engine: sa.Engine, platform: str) -> None:
    key = _fill(engine, platform)
    with engine.connect() as conn:
        assert recent_users(conn, key, limit=2) == ["u3", "u2"]
