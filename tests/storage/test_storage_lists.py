"""The list types' reads (shoprec.storage.lists.ListsRepo) on every backend, scoped to one platform."""

from __future__ import annotations

import sqlalchemy as sa

from shoprec.data.records import EventRecord, ItemRecord
from shoprec.storage import PlatformRepo, get_or_create_platform
from shoprec.storage.lists import ListsRepo
from shoprec.types import EventType

T0 = 1_700_000_000.0
P, V = EventType.PURCHASE, EventType.VIEW


def _fill(engine: sa.Engine, platform: str, events: list[tuple[str, str, EventType, float]]) -> int:
    with engine.begin() as conn:
        key = get_or_create_platform(conn, platform)
        repo = PlatformRepo(conn, key)
        repo.upsert_items([ItemRecord(i) for i in ("a", "b", "c", "d")], now=T0)
        repo.upsert_items([ItemRecord("new")], now=T0 + 100)
        assert repo.add_events([EventRecord(u, i, t, ts) for u, i, t, ts in events]) == []
    return key


def test_window_counts_count_people_per_window(engine: sa.Engine, platform: str) -> None:
    key = _fill(engine, platform, [("u1", "a", V, T0 + 50), ("u1", "a", V, T0 + 51), ("u2", "a", P, T0 + 52),
                                   ("u3", "a", V, T0 + 10), ("u3", "b", V, T0 + 5), ("u4", "c", V, T0 - 100)])
    other = _fill(engine, platform + "-x", [("u1", "a", V, T0 + 50)])
    with engine.connect() as conn:
        counts = ListsRepo(conn, key).window_counts(("view", "purchase"), T0, T0 + 30, T0 + 60)
        assert counts == {"a": (2, 1), "b": (0, 1)}  # c is older than the two windows
        assert ListsRepo(conn, key).window_counts(("purchase",), T0, T0 + 30, T0 + 60) == {"a": (1, 0)}
        assert ListsRepo(conn, other).window_counts(("view",), T0, T0 + 30, T0 + 60) == {"a": (1, 0)}


def test_purchases_co_purchases_and_new_items(engine: sa.Engine, platform: str) -> None:
    key = _fill(engine, platform, [("u1", "a", P, T0 + 1), ("u1", "a", P, T0 + 9), ("u1", "b", P, T0 + 2),
                                   ("u2", "a", P, T0 + 3), ("u2", "b", P, T0 + 4), ("u2", "c", V, T0 + 5),
                                   ("u3", "c", P, T0 + 6), ("u3", "d", P, T0 + 7)])
    _fill(engine, platform + "-y", [("u1", "a", P, T0 + 1), ("u1", "d", P, T0 + 2)])
    with engine.connect() as conn:
        repo = ListsRepo(conn, key)
        assert sorted(repo.user_purchases("u1")) == [("a", 2, T0 + 9), ("b", 1, T0 + 2)]
        assert repo.user_purchases("nobody") == []
        assert sorted(repo.co_purchases(["a"])) == [("a", "b", 2)]  # a view is not a purchase; d: other platform
        assert sorted(repo.co_purchases(["a", "c"])) == [("a", "b", 2), ("c", "d", 1)]
        assert repo.items_created_since(T0 + 50) == [("new", T0 + 100)]
