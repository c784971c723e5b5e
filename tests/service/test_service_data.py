"""Platforms and keys, and writes through the ingest pipeline: all or nothing, errors naming index and field."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from shoprec.data.records import EventRecord, ItemRecord, UserRecord
from shoprec.service import Services
from shoprec.service.errors import NotFound, RecordErrors, TooLarge
from shoprec.service.platform import hash_key
from shoprec.service.testing import TEST_ADMIN_KEY, ReadyPlatform, local_services
from shoprec.storage import PlatformRepo, find_platform
from shoprec.storage import tables as T


def _count_events(services: Services, platform: str) -> int:
    with services.engine.connect() as conn:
        return PlatformRepo(conn, find_platform(conn, platform)).count_events()


def test_keys_are_stored_hashed_and_scoped_to_their_platform(services: Services) -> None:
    key_a = services.platforms.create("a")
    key_b = services.platforms.create("b")
    assert services.platforms.authenticate(key_a).platform == "a"
    assert services.platforms.authenticate(key_b).platform == "b"
    assert services.platforms.authenticate("sk_wrong") is None
    assert services.platforms.authenticate(None) is None
    admin = services.platforms.authenticate(TEST_ADMIN_KEY)
    assert admin.admin and admin.platform is None
    with services.engine.connect() as conn:
        stored = [r[0] for r in conn.execute(sa.select(T.api_keys.c.key_hash))]
    assert hash_key(key_a) in stored and key_a not in stored


def test_a_bad_record_refuses_the_whole_batch(services: Services, shop: ReadyPlatform) -> None:
    before = _count_events(services, "shop")
    now = time.time()
    good = EventRecord("u1", shop.item_ids[0], "view", now - 10)
    bad_time = EventRecord("u1", shop.item_ids[1], "view", float("nan"))
    future = EventRecord("u2", shop.item_ids[1], "view", now + 10 * 86400)
    with pytest.raises(RecordErrors) as info:
        services.data.add_events("shop", [good, bad_time, good, future])
    errors = info.value.errors
    assert [(e.index, e.field) for e in errors] == [(1, "timestamp"), (3, "timestamp")]
    assert _count_events(services, "shop") == before
    result = services.data.add_events("shop", [good])
    assert result.stored.events == 1 and _count_events(services, "shop") == before + 1
    again = services.data.add_events("shop", [good])
    assert again.duplicates == 1 and again.stored.events == 0


def test_oversized_batches_are_refused(services: Services, shop: ReadyPlatform) -> None:
    events = [EventRecord("u", "i", "view", 1.0)] * (services.config.max_events + 1)
    with pytest.raises(TooLarge):
        services.data.add_events("shop", events)


def test_unknown_items_can_be_refused(tmp_path: Path) -> None:
    svc = local_services(tmp_path, unknown_items="reject")
    try:
        svc.platforms.create("s")
        svc.data.upsert_items("s", [ItemRecord(item_id="known", title="A known item")])
        now = time.time()
        with pytest.raises(RecordErrors) as info:
            svc.data.add_events("s", [EventRecord("u", "known", "view", now), EventRecord("u", "ghost", "view", now)])
        assert [(e.index, e.field, e.reason) for e in info.value.errors] == [(1, "item_id", "unknown_item")]
        assert svc.data.add_events("s", [EventRecord("u", "known", "view", now)]).stored.events == 1
    finally:
        svc.close()


def test_items_users_get_delete(services: Services, shop: ReadyPlatform) -> None:
    services.data.upsert_items("shop", [ItemRecord(item_id="x1", title="<b>Robert'); DROP TABLE items;--</b>",
                                                   price=9.5, attributes={"color": "red"})])
    item = services.data.get_item("shop", "x1")
    assert item.title == "<b>Robert'); DROP TABLE items;--</b>" and item.attributes == {"color": "red"}
    services.data.delete_item("shop", "x1")
    with pytest.raises(NotFound):
        services.data.get_item("shop", "x1")
    with pytest.raises(NotFound):
        services.data.delete_item("shop", "never-was")
    services.data.upsert_items("shop", [ItemRecord(item_id="x1", title="back")])
    assert services.data.get_item("shop", "x1").title == "back"
    services.data.upsert_users("shop", [UserRecord(user_id="v1", attributes={"tier": "gold"})])
    assert services.data.get_user("shop", "v1").attributes == {"tier": "gold"}
    user = services.data.get_user("shop", shop.user_ids[0])
    assert user.recent_events
    with pytest.raises(NotFound):
        services.data.get_user("shop", "nobody-here")


def test_a_batch_is_validated_once(services: Services, shop: ReadyPlatform, monkeypatch: pytest.MonkeyPatch) -> None:
    """The REST write path checks each record once (the pipeline's `validate`), not again inside `ingest`."""
    from shoprec.ingest import checks

    calls: list[object] = []
    original = checks._check_event

    def counting(rec: EventRecord, src: object) -> object:
        calls.append(rec)
        return original(rec, src)  # type: ignore[arg-type]

    monkeypatch.setattr(checks, "_check_event", counting)
    events = [EventRecord(user_id=shop.user_ids[0], item_id=i, event_type="view", timestamp=time.time())
              for i in shop.item_ids[:3]]
    result = services.data.add_events("shop", events)
    assert result.stored.events == 3 and len(calls) == 3
