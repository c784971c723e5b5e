"""Tenant-scoped repositories: isolation between platforms, upserts, keys, dedupe."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from shoprec.data.records import EventRecord, ItemRecord, UserRecord
from shoprec.errors import DataError
from shoprec.storage import KeyCache, PlatformRepo, get_or_create_platform, list_platforms
from shoprec.storage.repo import check_id, dedupe_key
from shoprec.types import EventType

T0 = 1_700_000_000.0


def _fill(engine: sa.Engine, platform: str, title: str, n_events: int) -> int:
    """Items i1, i2 and users u1, u2 (the same external ids on every platform) with n_events events."""
    with engine.begin() as conn:
        key = get_or_create_platform(conn, platform)
        repo = PlatformRepo(conn, key)
        repo.upsert_items([ItemRecord("i1", title=title, price=2.5), ItemRecord("i2", title=title)])
        repo.upsert_users([UserRecord("u1", {"country": platform})])
        events = [EventRecord(f"u{1 + k % 2}", f"i{1 + k % 2}", EventType.VIEW if k % 3 else EventType.PURCHASE,
                              T0 + k) for k in range(n_events)]
        assert repo.add_events(events) == []
    return key


def test_repo_of_platform_a_never_sees_platform_b(engine: sa.Engine, platform: str) -> None:
    a = _fill(engine, platform + "-a", "from A", 3)
    b = _fill(engine, platform + "-b", "from B", 7)
    with engine.connect() as conn:
        repo_a, repo_b = PlatformRepo(conn, a), PlatformRepo(conn, b)
        assert repo_a.stats() == {"users": 2, "items": 2, "events": 3, "events_by_type": {"purchase": 1, "view": 2}}
        assert repo_b.count_events() == 7
        assert (repo_a.get_item("i1") or {})["title"] == "from A"
        assert (repo_b.get_item("i1") or {})["title"] == "from B"
        assert (repo_a.get_user("u1") or {})["attributes"] == {"country": platform + "-a"}
        assert len(repo_a.user_history("u1")) == 2 and len(repo_b.user_history("u1")) == 4
        event = EventRecord("u2", "i2", EventType.VIEW, T0 + 5)
        assert repo_a.existing_event_keys([(event.timestamp, dedupe_key(event))]) == set()
        assert repo_b.existing_event_keys([(event.timestamp, dedupe_key(event))]) == {dedupe_key(event)}
        # the same external ids are different rows on each platform
        assert repo_a.user_id_column()[1] == repo_b.user_id_column()[1] == ["u1", "u2"]
        assert set(repo_a.user_id_column()[0]).isdisjoint(repo_b.user_id_column()[0])
        assert {r[0] for r in repo_a.item_rows()}.isdisjoint({r[0] for r in repo_b.item_rows()})
        assert sum(map(len, repo_a.event_rows())) == 3 and sum(map(len, repo_b.event_rows(chunk=2))) == 7
        assert {platform + "-a", platform + "-b"} <= set(list_platforms(conn))


def test_event_counts_of_an_id_range_add_up_to_the_full_count(engine: sa.Engine, platform: str) -> None:
    """Popularity's incremental count (shoprec.service.catalog.count_events) on every backend: the counts of
    (after, through] added to those up to `after` are the full count, and only the platform's events count."""
    from shoprec.storage.serving import ServingRepo

    positive = ("purchase", "view")
    a = _fill(engine, platform + "-a", "A", 6)
    with engine.connect() as conn:
        first = ServingRepo(conn, a).newest_event_id()
        before = ServingRepo(conn, a).item_event_counts(positive, through_id=first)
    b = _fill(engine, platform + "-b", "B", 4)  # another platform's events in between
    with engine.begin() as conn:
        PlatformRepo(conn, a).add_events([EventRecord("u1", "i2", EventType.PURCHASE, T0 + 100 + k) for k in range(5)])
    with engine.connect() as conn:
        repo = ServingRepo(conn, a)
        through = repo.newest_event_id()
        assert through > first
        delta = repo.item_event_counts(positive, after_id=first, through_id=through)
        full = repo.item_event_counts(positive)
        keys = {str(r[1]): int(r[0]) for r in PlatformRepo(conn, a).item_rows()}
        assert delta == {keys["i2"]: 5}
        assert {k: before.get(k, 0) + delta.get(k, 0) for k in full} == full
        assert sum(full.values()) == 11 and sum(ServingRepo(conn, b).item_event_counts(positive).values()) == 4
        assert repo.item_event_counts(positive, after_id=through) == {}


def test_every_repo_query_is_filtered_by_its_platform(engine: sa.Engine, platform: str) -> None:
    """Statement-level proof: every SELECT a repo sends names platform_id with its platform's key."""
    key = _fill(engine, platform, "x", 2)
    statements: list[tuple[str, Any]] = []

    def spy(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        statements.append((statement, parameters))

    with engine.connect() as conn:
        sa.event.listen(conn, "before_cursor_execute", spy)
        repo = PlatformRepo(conn, key)
        repo.stats(), repo.get_item("i1"), repo.get_user("u1"), repo.user_history("u1")
        repo.item_rows(), repo.user_id_column(), list(repo.event_rows(["view"])), repo.existing_event_keys([(T0, "k")])
        sa.event.remove(conn, "before_cursor_execute", spy)
    selects = [(s, p) for s, p in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) >= 11
    for statement, params in selects:
        assert "platform_id" in statement, statement
        values = list(params.values()) if isinstance(params, dict) else list(params)
        assert key in values, (statement, params)


def test_upsert_updates_content_and_keeps_the_key(engine: sa.Engine, platform: str) -> None:
    with engine.begin() as conn:
        repo = PlatformRepo(conn, get_or_create_platform(conn, platform))
        repo.ensure_items(["a"])
        key = repo.ensure_items(["a"])["a"]
        repo.upsert_items([ItemRecord("a", title="old", price=1.0)])
        repo.upsert_items([ItemRecord("a", title="new", description="d", category="X > Y", brand="b", price=3.0,
                                      currency="EUR", available=False, attributes={"size": "L"})])
        repo.ensure_items(["a"])  # a bare ensure never overwrites content
    with engine.connect() as conn:
        repo = PlatformRepo(conn, get_or_create_platform(conn, platform))
        item = repo.get_item("a")
        assert item is not None
        assert (item["title"], item["category"], item["price"], item["currency"], item["available"]) == \
            ("new", "X > Y", 3.0, "EUR", False)
        assert item["attributes"] == {"size": "L"}
        assert repo.item_rows()[0][0] == key and repo.count_items() == 1


def test_ids_are_exact_case_and_unicode_sensitive(engine: sa.Engine, platform: str) -> None:
    ids = ["A1", "a1", "Ä1", "ä1", "日本"]
    with engine.begin() as conn:
        repo = PlatformRepo(conn, get_or_create_platform(conn, platform))
        keys = repo.ensure_users(ids)
    assert len(set(keys.values())) == len(ids)
    with engine.connect() as conn:
        assert PlatformRepo(conn, get_or_create_platform(conn, platform)).user_id_column()[1] == ids


def test_add_events_reports_duplicates_and_is_idempotent(engine: sa.Engine, platform: str) -> None:
    e1 = EventRecord("u", "i", EventType.CART, T0, value=1.0, session_id="s")
    e2 = EventRecord("u", "i", EventType.CART, T0, value=2.0, session_id="s")  # other value: another event
    with engine.begin() as conn:
        repo = PlatformRepo(conn, get_or_create_platform(conn, platform))
        assert repo.add_events([e1, e2, e1]) == [2]
    with engine.begin() as conn:
        repo = PlatformRepo(conn, get_or_create_platform(conn, platform))
        assert repo.add_events([e2, e1]) == [0, 1]
        assert repo.count_events() == 2


def test_rolled_back_keys_are_not_reused(engine: sa.Engine, platform: str) -> None:
    with engine.begin() as conn:
        cache = KeyCache(get_or_create_platform(conn, platform))
    with pytest.raises(RuntimeError), engine.begin() as conn:
        PlatformRepo(conn, cache.platform_id, cache).ensure_users(["ghost"])
        raise RuntimeError("batch failed")
    cache.rollback()
    assert cache.lookup("users", "ghost") is None
    with engine.begin() as conn:
        repo = PlatformRepo(conn, cache.platform_id, cache)
        repo.add_events([EventRecord("ghost", "i", EventType.VIEW, T0)])  # would violate the foreign key otherwise
    cache.commit()
    with engine.connect() as conn:
        assert PlatformRepo(conn, cache.platform_id).count_users() == 1


def test_cache_of_another_platform_is_refused(engine: sa.Engine, platform: str) -> None:
    with engine.begin() as conn:
        key = get_or_create_platform(conn, platform)
        with pytest.raises(DataError, match="KeyCache"):
            PlatformRepo(conn, key, KeyCache(key + 1))


@pytest.mark.parametrize("name", ["", " padded ", "x" * 129])
def test_bad_platform_names(sqlite_engine: sa.Engine, name: str) -> None:
    with sqlite_engine.begin() as conn, pytest.raises(DataError, match="platform name"):
        get_or_create_platform(conn, name)


def test_check_id_limits() -> None:
    assert check_id("x" * 256, "user_id") == "x" * 256
    with pytest.raises(DataError, match=r"user_id is 257 characters long \(at most 256\)"):
        check_id("x" * 257, "user_id")
    with pytest.raises(DataError, match="item_id must be a non-empty string"):
        check_id("", "item_id")


def test_repo_refuses_ids_the_schema_cannot_hold(engine: sa.Engine, platform: str) -> None:
    with engine.begin() as conn:
        repo = PlatformRepo(conn, get_or_create_platform(conn, platform))
        with pytest.raises(DataError, match="user_id is 300 characters long"):
            repo.add_events([EventRecord("u" * 300, "i", EventType.VIEW, T0)])
        with pytest.raises(DataError, match="item_id is 257 characters long"):
            repo.upsert_items([ItemRecord("i" * 257)])
        with pytest.raises(DataError, match="user_id must be a non-empty string"):
            repo.upsert_users([UserRecord("")])


def test_dedupe_key_depends_on_every_identity_field() -> None:
    base = EventRecord("u", "i", EventType.VIEW, T0, value=1.0, session_id="s")
    ev, view = EventRecord, EventType.VIEW
    variants = [ev("v", "i", view, T0, 1.0, "s"), ev("u", "j", view, T0, 1.0, "s"),
                ev("u", "i", EventType.CART, T0, 1.0, "s"), ev("u", "i", view, T0 + 1, 1.0, "s"),
                ev("u", "i", view, T0, None, "s"), ev("u", "i", view, T0, 1.0, None)]
    keys = {dedupe_key(v) for v in variants}
    assert len(keys) == len(variants) and dedupe_key(base) not in keys
    same = EventRecord("u", "i", EventType.VIEW, T0, value=1, session_id="s", context={"other": 1}, text="t")
    assert dedupe_key(same) == dedupe_key(base)


def test_repo_works_on_an_orm_session(sqlite_engine: sa.Engine, platform: str) -> None:
    from sqlalchemy.orm import Session

    with Session(sqlite_engine) as session, session.begin():
        repo = PlatformRepo(session, get_or_create_platform(session, platform))
        repo.upsert_items([ItemRecord("i", title="via session")])
        assert repo.add_events([EventRecord("u", "i", EventType.LIKE, T0)]) == []
    with Session(sqlite_engine) as session:
        repo = PlatformRepo(session, get_or_create_platform(session, platform))
        assert repo.stats()["events_by_type"] == {"like": 1}
        assert repo.get_item("i")["title"] == "via session"  # type: ignore[index]
