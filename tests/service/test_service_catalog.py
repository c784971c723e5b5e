"""The catalog view of the online path: catalog changes are seen at once, popularity is refreshed aside."""

from __future__ import annotations

import time

import numpy as np
import pytest

from shoprec.data.records import EventRecord
from shoprec.service import Services, catalog
from shoprec.service.testing import ReadyPlatform
from shoprec.storage import PlatformRepo
from shoprec.types import EventType


def test_popularity_is_refreshed_in_the_background_while_requests_keep_the_current_view(
        services: Services, shop: ReadyPlatform, monkeypatch: pytest.MonkeyPatch) -> None:
    views = services.catalogs
    first = views.get("shop")
    item = shop.item_ids[-1]
    before = float(first.popularity[first.items.get(item)])
    services.data.add_events("shop", [EventRecord(user_id=f"fan{i}", item_id=item, event_type=EventType.PURCHASE,
                                                  timestamp=time.time())
                                      for i in range(200)])
    monkeypatch.setattr(catalog, "POPULARITY_REFRESH_S", 0.0)
    views.invalidate("shop")  # the next get checks now (the catalog itself did not change)
    assert views.get("shop") is first  # answered from the current view; the reload runs aside
    deadline = time.monotonic() + 10
    while views._views["shop"] is first and time.monotonic() < deadline:
        time.sleep(0.01)
    fresh = views._views["shop"]
    assert fresh is not first
    assert float(fresh.popularity[fresh.items.get(item)]) > before
    assert np.array_equal(fresh.servable, first.servable)


def test_a_catalog_change_is_seen_by_the_next_request(services: Services, shop: ReadyPlatform) -> None:
    views = services.catalogs
    first = views.get("shop")
    item = shop.item_ids[0]
    assert first.servable[first.items.get(item)]
    services.data.delete_item("shop", item)
    view = views.get("shop")
    assert view is not first and not view.servable[view.items.get(item)]


def test_a_catalog_change_reloads_the_items_but_not_the_event_counts(
        services: Services, shop: ReadyPlatform, monkeypatch: pytest.MonkeyPatch) -> None:
    """The GROUP BY over every event runs in the background refresh, not in the request after a catalog write."""
    from shoprec.data.records import ItemRecord
    from shoprec.storage.serving import ServingRepo

    views = services.catalogs
    first = views.get("shop")
    counted: list[int] = []
    real = ServingRepo.item_event_counts
    monkeypatch.setattr(ServingRepo, "item_event_counts",
                        lambda self, *args, **kw: counted.append(1) or real(self, *args, **kw))
    services.data.upsert_items("shop", [ItemRecord(item_id="brand-new", title="Brand new", category="New")])
    view = views.get("shop")
    assert view is not first and view.items.get("brand-new") is not None and counted == []
    assert float(view.popularity[view.items.get("brand-new")]) == 0.0
    old = [i for i in shop.item_ids if first.popularity[first.items.get(i)] > 0][:5]
    assert old and all(view.popularity[view.items.get(i)] == first.popularity[first.items.get(i)] for i in old)
    monkeypatch.setattr(catalog, "POPULARITY_REFRESH_S", 0.0)  # the counts are due: read aside, once
    views.invalidate("shop")
    assert views.get("shop") is view
    deadline = time.monotonic() + 10
    while views._views["shop"] is view and time.monotonic() < deadline:
        time.sleep(0.01)
    assert counted == [1] and views._views["shop"].items.get("brand-new") is not None


def _refreshed(views: catalog.CatalogViews, platform: str) -> catalog.CatalogView:
    """The view after a background popularity refresh (made due now)."""
    old = views.get(platform)
    old.counts = catalog.EventCounts(old.counts.by_item, old.counts.through_id, -1e9, old.counts.full_at)
    views.invalidate(platform)
    assert views.get(platform) is old
    deadline = time.monotonic() + 10
    while views._views[platform] is old and time.monotonic() < deadline:
        time.sleep(0.01)
    assert views._views[platform] is not old
    return views._views[platform]


def _full_popularity(services: Services, platform: str, view: catalog.CatalogView) -> np.ndarray:
    from shoprec.storage.serving import ServingRepo

    with services.engine.connect() as conn:
        counts = ServingRepo(conn, services.platforms.platform_id(platform)).item_event_counts(
            catalog.POSITIVE_TYPES)
        keys = [int(r[0]) for r in PlatformRepo(conn, services.platforms.platform_id(platform)).item_rows()]
    pop = np.array([counts.get(k, 0) for k in keys], dtype=np.float32)
    return pop / max(float(pop.max()), 1.0)


def _count_ranges(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The `after_id` of every event count from now on (0: a full count), in order."""
    from shoprec.storage.serving import ServingRepo

    ranges: list[int] = []
    real = ServingRepo.item_event_counts

    def spy(self: ServingRepo, types: object, after_id: int = 0, through_id: int | None = None) -> dict[int, int]:
        ranges.append(after_id)
        return real(self, types, after_id, through_id)  # type: ignore[arg-type]

    monkeypatch.setattr(ServingRepo, "item_event_counts", spy)
    return ranges


def test_background_counts_add_the_new_events_and_recount_in_full_when_due_or_after_an_erasure(
        services: Services, shop: ReadyPlatform, monkeypatch: pytest.MonkeyPatch) -> None:
    views = services.catalogs
    first = views.get("shop")
    ranges = _count_ranges(monkeypatch)
    item = shop.item_ids[-1]
    fans = [f"fan{i}" for i in range(30)]
    services.data.add_events("shop", [EventRecord(user_id=u, item_id=item, event_type=EventType.PURCHASE,
                                                  timestamp=time.time()) for u in fans])
    view = _refreshed(views, "shop")
    assert ranges == [first.counts.through_id] and first.counts.through_id > 0  # only the new events were read
    assert view.counts.through_id > first.counts.through_id
    key = _key(services, item)
    assert view.counts.by_item[key] == first.counts.by_item.get(key, 0) + 30
    assert np.allclose(view.popularity, _full_popularity(services, "shop", view))

    monkeypatch.setattr(catalog, "POPULARITY_RECOUNT_S", 0.0)  # the full recount is due
    view = _refreshed(views, "shop")
    assert ranges[-1] == 0 and np.allclose(view.popularity, _full_popularity(services, "shop", view))
    monkeypatch.setattr(catalog, "POPULARITY_RECOUNT_S", 3600.0)

    for user in fans[:10]:  # an erasure in this worker recounts at once
        services.privacy.erase("shop", user)
    deadline = time.monotonic() + 10
    while views.get("shop") is view and time.monotonic() < deadline:
        time.sleep(0.01)
    fresh = views._views["shop"]
    assert ranges[-1] == 0 and fresh.counts.by_item[key] == view.counts.by_item[key] - 10
    assert np.allclose(fresh.popularity, _full_popularity(services, "shop", fresh))


def test_an_erasure_while_a_refresh_runs_makes_the_next_refresh_count_anew(
        services: Services, shop: ReadyPlatform, monkeypatch: pytest.MonkeyPatch) -> None:
    views = services.catalogs
    view = views.get("shop")
    ranges = _count_ranges(monkeypatch)
    views._refreshing.add("shop")  # a refresh under way (it counts incrementally)
    views.recount("shop")
    assert views.get("shop") is view and ranges == []  # no second refresh meanwhile
    views._refreshing.discard("shop")
    _refreshed(views, "shop")
    assert ranges == [0]  # counted anew, though its hourly recount is not due


def _key(services: Services, item: str) -> int:
    with services.engine.connect() as conn:
        rows = PlatformRepo(conn, services.platforms.platform_id("shop")).item_rows()
    return next(int(r[0]) for r in rows if str(r[1]) == item)


def _view(n: int) -> catalog.CatalogView:
    from shoprec.data import IdMap

    cats = np.array([f"c{i % 3}" for i in range(n)], dtype=object)
    return catalog.CatalogView(version=(0.0, 0, 0.0), items=IdMap(f"i{i}" for i in range(n)), category=cats,
                               price=np.full(n, np.nan), servable=np.ones(n, bool),
                               popularity=np.zeros(n, np.float32), titles=[""] * n, texts=[""] * n,
                               category_names=np.array(["c0", "c1", "c2"]),
                               category_codes=np.arange(n, dtype=np.int32) % 3)


def test_a_level_over_candidates_ranks_as_the_same_scores_over_the_whole_catalog() -> None:
    from shoprec.explain import Reason
    from shoprec.service.chain import Level, rank_chain

    rng = np.random.default_rng(0)
    n = 60
    view = _view(n)
    full = np.full(n, -np.inf, dtype=np.float32)
    candidates = np.sort(rng.choice(n, 25, replace=False))
    full[candidates] = rng.integers(0, 4, 25).astype(np.float32)  # many ties: the lower index first
    blocked = np.zeros(n, bool)
    blocked[candidates[::4]] = True
    reason = Reason("x", "test")
    fallback = Level(Reason("popular", "test"), np.arange(n, dtype=np.float32))
    for k in (5, 30):  # 30: more than the candidates left, the fallback fills the rest
        a = rank_chain([Level(reason, full), fallback], blocked, k, view)
        b = rank_chain([Level(reason, full[candidates], candidates=candidates), fallback], blocked, k, view)
        assert a.items == b.items and a.scores == b.scores and a.reasons == b.reasons


def test_category_masks_follow_the_path_prefix() -> None:
    view = _view(9)
    view.category[:] = ["A", "A > B", "AB", "A > B > C", "", "B", "A", "A > Bx", "B > A"]
    codes: dict[str, int] = {}
    view.category_codes = np.array([codes.setdefault(c, len(codes)) for c in view.category], dtype=np.int32)
    view.category_names = np.array(list(codes))
    assert np.flatnonzero(view.category_mask("A")).tolist() == [0, 1, 3, 6, 7]
    assert np.flatnonzero(view.category_mask("A > B")).tolist() == [1, 3]
    assert not view.category_mask("Z").any()
