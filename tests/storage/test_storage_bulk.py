"""The bulk write helpers (shoprec.storage.bulk): column-wise dedupe keys equal to the per-event ones, look-ups
of keys and of stored events at the driver level, and the key cache's many-id lookup."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from shoprec.data.records import EventRecord
from shoprec.storage import KeyCache, PlatformRepo, bulk, get_or_create_platform
from shoprec.storage.repo import dedupe_key
from shoprec.types import EventType

EVENTS = [
    EventRecord("u1", "i1", EventType.VIEW, 1600000000.0),
    EventRecord("u1", "i1", EventType.VIEW, 1600000000.5),
    EventRecord("u\u00ef", "i 2", EventType.PURCHASE, 1600000001.0, value=2.0, session_id="s"),
    EventRecord("u2", "i2", EventType.PURCHASE, 1600000001.0, value=2.5),
    EventRecord("u2", "i2", EventType.CART, 1e9, value=None, session_id=""),
    EventRecord("u2", "i2", EventType.CART, 1e9, value=None, session_id=None),
]


def test_column_keys_are_the_per_event_keys() -> None:
    keys = bulk.dedupe_keys(bulk.EventBatch.from_records(EVENTS))
    assert keys == [dedupe_key(e) for e in EVENTS]
    assert len(set(keys)) == len(EVENTS) - 1  # an empty session is no session: the last two are one event
    batch = bulk.EventBatch.from_records(EVENTS)
    batch.timestamp = [int(t) if t == int(t) else t for t in batch.timestamp]  # 1600000000 and 1600000000.0
    assert bulk.dedupe_keys(batch) == keys


def test_keys_of_finds_only_the_platforms_rows(engine: sa.Engine, platform: str) -> None:
    with engine.begin() as conn:
        a, b = get_or_create_platform(conn, platform + "-a"), get_or_create_platform(conn, platform + "-b")
        keys_a = PlatformRepo(conn, a).ensure_users([f"u{k}" for k in range(2500)])  # more than one IN chunk
        PlatformRepo(conn, b).ensure_users(["u1", "x"])
        found = bulk.keys_of(conn, "users", a, [*(f"u{k}" for k in range(0, 2500, 2)), "x", "u1", "missing"])
        assert bulk.keys_of(conn, "users", a, []) == {}
    assert found == {f"u{k}": keys_a[f"u{k}"] for k in range(0, 2500, 2)} | {"u1": keys_a["u1"]}


def test_lookup_many_prefers_pending_entries() -> None:
    cache = KeyCache(1)
    cache.remember("users", "a", 1)
    cache.remember("users", "b", 2)
    cache.commit()
    cache.remember("users", "c", 3)
    assert cache.lookup_many("users", ["c", "a", "z", "a", "b"]) == ({"c": 3, "a": 1, "b": 2}, ["z"])
    assert cache.lookup_many("users", iter(["b", "a"])) == ({"b": 2, "a": 1}, [])
    cache.rollback()
    assert cache.lookup_many("users", ["c"]) == ({}, ["c"])


def test_stored_keys_finds_the_platforms_events_by_time_and_key(engine: sa.Engine, platform: str) -> None:
    """The look-up of stored events by (timestamp, dedupe key), over more than one chunk of pairs: only the
    platform's events, and only where both the time and the key match."""
    # times that are not exact in binary (0.1 steps): the look-up must match the stored doubles themselves
    events = [EventRecord(f"u{k % 50}", f"i{k % 7}", EventType.VIEW, 1600000000.0 + k * 0.1) for k in range(2500)]
    with engine.begin() as conn:
        a, b = get_or_create_platform(conn, platform + "-a"), get_or_create_platform(conn, platform + "-b")
        assert PlatformRepo(conn, a).add_events(events[::2]) == []
        assert PlatformRepo(conn, b).add_events(events[1::2]) == []
        pairs = [(e.timestamp, dedupe_key(e)) for e in events]
        found_a, found_b = bulk.stored_keys(conn, a, pairs), bulk.stored_keys(conn, b, pairs)
        wrong_time = bulk.stored_keys(conn, a, [(t + 1.0, k) for t, k in pairs[:10]])
        assert bulk.stored_keys(conn, a, []) == set()
    assert found_a == {k for _, k in pairs[::2]} and found_b == {k for _, k in pairs[1::2]}
    assert wrong_time == set()


def test_event_rows_leave_out_only_optional_columns_no_event_has() -> None:
    values: dict[str, list[Any]] = {c: [None, None] for c in bulk.EVENT_COLUMNS}
    values.update(platform_id=[1, 1], user_id=[3, 4], item_id=[5, 6], event_type=["view", "cart"],
                  timestamp=[1.0, 2.0], dedupe_key=["a", "b"], session_id=[None, "s"], event_id=[None, None])
    rows = bulk.EventRows.of(values)
    assert rows.columns == ("platform_id", "user_id", "item_id", "event_type", "timestamp", "session_id",
                            "dedupe_key")
    assert rows.rows == [(1, 3, 5, "view", 1.0, None, "a"), (1, 4, 6, "cart", 2.0, "s", "b")]
    assert rows.keys() == {"a", "b"} and len(rows) == 2
    values["timestamp"] = [None, None]  # a required column is never left out
    assert "timestamp" in bulk.EventRows.of(values).columns


def test_a_bulk_loading_sqlite_connection_checkpoints_less_often_and_caches_more(sqlite_engine: sa.Engine) -> None:
    with sqlite_engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 1000  # SQLite's default
        bulk.prepare(conn)
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == bulk.SQLITE_CHECKPOINT_PAGES
        assert conn.exec_driver_sql("PRAGMA cache_size").scalar() == -bulk.SQLITE_CACHE_KIB
        bulk.release(conn)
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 1000
        assert conn.exec_driver_sql("PRAGMA cache_size").scalar() == -2000
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL: durability as before
