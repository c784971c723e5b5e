"""The bulk write helpers (shoprec.storage.bulk): column-wise dedupe keys equal to the per-event ones, key
lookups at the driver level, and the key cache's many-id lookup."""

from __future__ import annotations

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
