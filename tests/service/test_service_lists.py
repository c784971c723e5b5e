"""List types (shoprec.service.lists) on planted data: a rising item trends, a repurchasable purchase comes back
and a non-repurchasable one does not, a planted co-purchase pair, new items first; each fallback; bad input."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from shoprec.data.records import EventRecord, ItemRecord
from shoprec.errors import DataError
from shoprec.service import Services
from shoprec.service.answers import Recommendation
from shoprec.service.lists import UnknownCartItems, parse_window
from shoprec.service.testing import ReadyPlatform, local_services, synthetic_platform
from shoprec.storage import tables as T

HOUR = 3600.0


def _ids(answer: Recommendation) -> list[str]:
    return [i.item_id for i in answer.items]


def _types(answer: Recommendation) -> list[str]:
    return [i.reason.type for i in answer.items]


@pytest.fixture
def lists(tmp_path: Path) -> Iterator[tuple[Services, ReadyPlatform]]:
    """A synthetic shop (events in 2024, an itemknn model) with "Grocery" repurchasable, plus planted items."""
    svc = local_services(tmp_path, repurchasable=("Grocery",))
    shop = synthetic_platform(svc, "shop", users=40, items=30)
    svc.data.upsert_items("shop", [
        ItemRecord("milk", title="Fresh Milk", category="Grocery > Dairy"),
        ItemRecord("tv", title="Big TV", category="Electronics > Screens"),
        ItemRecord("riser", title="Rising Star", category="Toys"),
        ItemRecord("steady", title="Steady Seller", category="Toys"),
        ItemRecord("pair-a", title="Tent", category="Outdoor"),
        ItemRecord("pair-b", title="Tent Pegs", category="Outdoor"),
        ItemRecord("lonely", title="Lonely Lamp", category="Home")])
    yield svc, shop
    svc.close()


def _events(svc: Services, rows: list[tuple[str, str, str, float]]) -> None:
    svc.data.add_events("shop", [EventRecord(u, i, t, ts) for u, i, t, ts in rows])


def test_a_rising_item_trends_and_a_steady_one_does_not(lists: tuple[Services, ReadyPlatform]) -> None:
    svc, _ = lists
    now = time.time()
    _events(svc, [(f"fan-{n}", "riser", "view", now - 2 * HOUR - n) for n in range(5)]
            + [("old-fan", "riser", "view", now - 30 * HOUR)]
            + [(f"reg-{n}", "steady", "view", now - 3 * HOUR - n) for n in range(5)]
            + [(f"reg-{n}", "steady", "view", now - 40 * HOUR - n) for n in range(6)]
            + [("one", "tv", "view", now - HOUR)])  # rising, but below min_count
    answer = svc.lists.trending("shop", k=5, window="24h", now=now)
    first = answer.items[0]
    assert first.item_id == "riser" and first.reason.type == "trending" and first.reason.level == "trending"
    assert first.reason.weights == (5.0, 1.0) and first.score == pytest.approx(4 / 2 ** 0.5, rel=1e-5)
    assert _types(answer)[1:] == ["fallback_popular"] * 4  # steady (5 < 6) and tv (1 < 3) do not trend
    assert svc.lists.trending("shop", k=3, window="24h", min_count=1, now=now).items[1].item_id == "tv"
    toys = svc.lists.trending("shop", k=3, category="Toys", now=now)
    assert _ids(toys)[0] == "riser" and {i.reason.level for i in toys.items[1:]} == {"popular_category"}
    assert "riser" not in _ids(svc.lists.trending("shop", k=10, category="Outdoor", now=now))
    # feedback works on the list like on any other
    assert svc.recommend.feedback("shop", answer.recommendation_id, "riser", "click").user_id is None


def test_trending_counts_are_reused_then_counted_anew_aside(lists: tuple[Services, ReadyPlatform]) -> None:
    svc, _ = lists
    now = time.time()
    assert "trending" not in _types(svc.lists.trending("shop", k=3, now=now))
    _events(svc, [(f"fan-{n}", "riser", "view", now - n) for n in range(3)])
    assert "trending" not in _types(svc.lists.trending("shop", k=3, now=now + 1))  # within the TTL: same counts
    assert "trending" not in _types(svc.lists.trending("shop", k=3, now=now + 40))  # stale: answered, counted aside
    deadline = time.monotonic() + 60
    while svc.lists._refreshing and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _ids(svc.lists.trending("shop", k=3, now=now + 41))[0] == "riser"


def test_trending_without_recent_events_is_the_popularity_fallback(lists: tuple[Services, ReadyPlatform]) -> None:
    svc, _ = lists
    answer = svc.lists.trending("shop", k=5, window="6h")
    assert len(answer.items) == 5 and set(_types(answer)) == {"fallback_popular"}
    assert {i.reason.level for i in answer.items} == {"popular"}


def test_buy_again_holds_repurchasable_purchases_only(lists: tuple[Services, ReadyPlatform]) -> None:
    svc, _ = lists
    now = time.time()
    _events(svc, [("buyer", "milk", "purchase", now - 10 * 86400), ("buyer", "milk", "purchase", now - 86400),
                  ("buyer", "tv", "purchase", now - 86400), ("buyer", "steady", "view", now - 100)])
    answer = svc.lists.buy_again("shop", "buyer", k=5, now=now)
    assert _ids(answer)[0] == "milk" and "tv" not in _ids(answer)
    reason = answer.items[0].reason
    assert (reason.type, reason.level, reason.item_id, reason.weights) == ("buy_again", "buy_again", "milk", (2.0,))
    assert answer.items[0].score == pytest.approx(2.5, rel=1e-4)  # 2 purchases + 1 / (1 + 1 day)
    assert set(_types(answer)[1:]) == {"fallback_popular"}


def test_buy_again_of_someone_who_bought_nothing_is_popular(lists: tuple[Services, ReadyPlatform]) -> None:
    svc, _ = lists
    answer = svc.lists.buy_again("shop", "nobody", k=4)
    assert len(answer.items) == 4 and {i.reason.level for i in answer.items} == {"popular"}


def test_a_planted_co_purchase_pair_comes_first(lists: tuple[Services, ReadyPlatform]) -> None:
    svc, _ = lists
    now = time.time()
    _events(svc, [(f"camper-{n}", item, "purchase", now - HOUR - n) for n in range(3) for item in ("pair-a", "pair-b")]
            + [("camper-0", "lonely", "purchase", now - HOUR)])
    answer = svc.lists.bought_together("shop", ["pair-a"], k=5)
    first, second = answer.items[0], answer.items[1]
    assert first.item_id == "pair-b" and first.score == 3.0
    assert (first.reason.type, first.reason.item_id, first.reason.weights) == ("bought_together", "pair-a", (3.0,))
    assert first.reason.text == "Frequently bought together with Tent"
    assert second.item_id == "lonely" and second.score == 1.0
    assert "pair-a" not in _ids(answer) and len(answer.items) == 5
    both = svc.lists.bought_together("shop", ["pair-a", "lonely", "pair-a"], k=3)  # repeats count once
    assert _ids(both)[0] == "pair-b" and both.items[0].score == 4.0 and "lonely" not in _ids(both)


def test_a_cart_nobody_bought_falls_back_to_the_model_and_popularity(
        lists: tuple[Services, ReadyPlatform]) -> None:
    svc, shop = lists
    known = svc.lists.bought_together("shop", [shop.item_ids[0]], k=10)  # synthetic purchases: some co-purchases
    assert shop.item_ids[0] not in _ids(known)
    answer = svc.lists.bought_together("shop", ["lonely"], k=5)  # unknown to the model, never bought
    assert "bought_together" not in _types(answer)
    assert answer.items[0].reason.level == "popular_category"
    assert answer.items[0].reason.category == "Home"


def test_unknown_cart_items_are_named(lists: tuple[Services, ReadyPlatform]) -> None:
    svc, _ = lists
    with pytest.raises(UnknownCartItems) as err:
        svc.lists.bought_together("shop", ["pair-a", "ghost", "spook"], k=3)
    assert err.value.unknown == [(1, "ghost"), (2, "spook")] and "'ghost'" in str(err.value)


def test_new_arrivals_come_first_ranked_for_the_person(lists: tuple[Services, ReadyPlatform]) -> None:
    svc, shop = lists
    user = shop.user_ids[0]
    state = svc.users.get("shop", user)
    known_new = next(i for i in shop.item_ids if i not in state.history and i not in state.purchased)
    with svc.engine.begin() as conn:  # every item but one the model knows was added 100 days ago
        conn.execute(sa.update(T.items).where(T.items.c.external_id != known_new)
                     .values(created_at=time.time() - 100 * 86400))
    last = svc.data.get_item("shop", state.history[-1])
    svc.data.upsert_items("shop", [ItemRecord("fresh", title=last.title, category=last.category,
                                              description=last.description)])
    answer = svc.lists.new_arrivals("shop", user, k=6, days=30)
    ids = _ids(answer)
    assert set(ids[:2]) == {known_new, "fresh"} and set(_types(answer)[:2]) == {"new_arrival"}
    levels = {i.item_id: i.reason.level for i in answer.items}
    assert levels[known_new] == "personal" and levels["fresh"] in ("content", "popular_category", "newest")
    assert {i.reason.level for i in answer.items[2:]} == {"popular"}
    cold = svc.lists.new_arrivals("shop", "stranger", k=3, days=30)  # no history: newest first
    assert cold.items[0].reason.level == "newest" and set(_ids(cold)[:2]) == {known_new, "fresh"}
    assert _ids(cold)[0] == "fresh"  # the newer of the two


def test_new_arrivals_without_new_items_are_popular(lists: tuple[Services, ReadyPlatform]) -> None:
    svc, shop = lists
    with svc.engine.begin() as conn:
        conn.execute(sa.update(T.items).values(created_at=time.time() - 100 * 86400))
    answer = svc.lists.new_arrivals("shop", shop.user_ids[1], k=4, days=7)
    assert len(answer.items) == 4 and {i.reason.level for i in answer.items} == {"popular"}


def test_bad_input_is_refused_naming_it(lists: tuple[Services, ReadyPlatform]) -> None:
    svc, _ = lists
    for window in ("", "0h", "24", "91d", "2161h", "1w", "-3d"):
        with pytest.raises(DataError, match="window"):
            parse_window(window)
    assert parse_window("2160h") == parse_window("90d") == 90 * 86400
    with pytest.raises(DataError, match="k must"):
        svc.lists.trending("shop", k=0)
    with pytest.raises(DataError, match="min_count"):
        svc.lists.trending("shop", k=3, min_count=0)
    with pytest.raises(DataError, match="days"):
        svc.lists.new_arrivals("shop", "u", k=3, days=0)
    with pytest.raises(DataError, match="item_ids"):
        svc.lists.bought_together("shop", [], k=3)
