"""Migration 0014: the events' dedupe index leads with the time. Stored events survive it both ways, and the
same events stay refused as duplicates before, across and after it, on every backend."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from shoprec.data.records import EventRecord
from shoprec.storage import PlatformRepo, get_or_create_platform, make_engine, migrate
from shoprec.storage.engine import downgrade
from shoprec.types import EventType

EVENTS = [EventRecord(f"u{k % 5}", f"i{k % 3}", EventType.VIEW, 1600000000.0 + k / 4) for k in range(40)]


def _unique_indexes(engine: sa.Engine) -> set[tuple[str, ...]]:
    with engine.connect() as conn:
        inspector = sa.inspect(conn)
        found = {tuple(c["column_names"]) for c in inspector.get_unique_constraints("events")}
        found |= {tuple(i["column_names"]) for i in inspector.get_indexes("events") if i.get("unique")}
    return found


def _add(engine: sa.Engine, events: list[EventRecord]) -> tuple[int, int]:
    """Add the events to platform "shop": (how many were duplicates, how many events are stored)."""
    with engine.begin() as conn:
        repo = PlatformRepo(conn, get_or_create_platform(conn, "shop"))
        duplicates = repo.add_events(events)
        return len(duplicates), repo.count_events()


def test_events_survive_0014_both_ways_and_stay_deduplicated(scratch_url: str) -> None:
    engine = make_engine(scratch_url)
    try:
        migrate(engine, "0013")
        assert ("platform_id", "dedupe_key") in _unique_indexes(engine)
        assert _add(engine, EVENTS[:30]) == (0, 30)
        migrate(engine, "0014")
        indexes = _unique_indexes(engine)
        assert ("platform_id", "timestamp", "dedupe_key") in indexes and ("platform_id", "dedupe_key") not in indexes
        assert _add(engine, EVENTS) == (30, 40)  # the 30 stored before the migration are found as duplicates
        with engine.connect() as conn, pytest.raises(sa.exc.IntegrityError):  # the index itself refuses a copy
            conn.exec_driver_sql("INSERT INTO events (platform_id, user_id, item_id, event_type, timestamp, "
                                 "dedupe_key) SELECT platform_id, user_id, item_id, event_type, timestamp, "
                                 "dedupe_key FROM events WHERE id = (SELECT MIN(id) FROM events)")
        downgrade(engine, "0013")
        assert ("platform_id", "dedupe_key") in _unique_indexes(engine)
        assert _add(engine, EVENTS) == (40, 40)
        with engine.connect() as conn:  # the stored rows themselves, not only their count, came through
            stored = conn.exec_driver_sql("SELECT COUNT(DISTINCT dedupe_key) FROM events").scalar()
        assert stored == 40
        migrate(engine, "0014")
    finally:
        engine.dispose()
