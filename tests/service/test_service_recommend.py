"""The recommendation service: fallback chain, filters, real-time history, pagination, similar items."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from shoprec.data.records import EventRecord, ItemRecord
from shoprec.errors import DataError
from shoprec.service import Filters, Services
from shoprec.service.answers import Recommendation
from shoprec.service.errors import NotFound
from shoprec.service.testing import ReadyPlatform, local_services, synthetic_platform


def _ids(answer: Recommendation) -> list[str]:
    return [i.item_id for i in answer.items]


def _sources(answer: Recommendation) -> set[str | None]:
    return {i.reason.level for i in answer.items}


def test_known_user_gets_a_personal_list_without_seen_purchased_or_disliked_items(
        services: Services, shop: ReadyPlatform) -> None:
    for user in shop.user_ids[:20]:
        state = services.users.get("shop", user)
        answer = services.recommend.recommend("shop", user, k=10)
        ids = _ids(answer)
        assert len(ids) == 10 and len(set(ids)) == 10
        assert answer.items[0].reason.level == "personal"
        assert answer.items[0].reason.source == "itemknn"
        assert not set(ids) & (set(state.history) | state.purchased | state.disliked)
        scores = [i.score for i in answer.items if i.reason.level == "personal"]
        assert scores == sorted(scores, reverse=True)


def test_new_user_gets_popular_items_and_an_event_personalises_at_once(services: Services, shop: ReadyPlatform) -> None:
    cold = services.recommend.recommend("shop", "brand-new-user", k=5)
    assert _sources(cold) == {"popular"} and len(_ids(cold)) == 5
    item = shop.item_ids[7]
    services.data.add_events("shop", [EventRecord("brand-new-user", item, "view", time.time() - 1)])
    warm = services.recommend.recommend("shop", "brand-new-user", k=5)
    assert warm.items[0].reason.level == "session"
    assert warm.items[0].reason.because_of == (item,)
    assert item not in _ids(warm)  # seen items are left out by default
    seen = services.recommend.recommend("shop", "brand-new-user", k=50, filters=Filters(include_seen=True))
    assert _ids(seen) != _ids(warm)[:50]


def test_filters_always_hold(services: Services, shop: ReadyPlatform) -> None:
    items = {i.item_id: i for i in shop.data.items}
    category = shop.data.items[0].category.split(" > ")[0]
    prices = sorted(i.price for i in shop.data.items if i.price is not None)
    lo, hi = prices[len(prices) // 4], prices[3 * len(prices) // 4]
    banned = shop.item_ids[:5]
    services.data.upsert_items("shop", [ItemRecord(item_id=shop.item_ids[5], title="gone", available=False)])
    for user in [*shop.user_ids[:15], "nobody"]:
        f = Filters(category=category, min_price=lo, max_price=hi, exclude=tuple(banned))
        ids = _ids(services.recommend.recommend("shop", user, k=10, filters=f))
        for i in ids:
            assert items[i].category == category or items[i].category.startswith(category + " > ")
            assert lo <= items[i].price <= hi
        assert not set(ids) & {*banned, shop.item_ids[5]}


def test_disliked_and_purchased_items_disappear(services: Services, shop: ReadyPlatform) -> None:
    user = shop.user_ids[3]
    first = _ids(services.recommend.recommend("shop", user, k=5))
    now = time.time()
    services.data.add_events("shop", [EventRecord(user, first[0], "dislike", now - 2),
                                      EventRecord(user, first[1], "purchase", now - 1)])
    after = _ids(services.recommend.recommend("shop", user, k=20, filters=Filters(include_seen=True)))
    assert first[0] not in after and first[1] not in after


def test_repurchasable_categories_keep_purchases(tmp_path: Path) -> None:
    shop_category = None
    svc = local_services(tmp_path / "a", repurchasable=("*none*",))
    try:
        shop = synthetic_platform(svc, "shop")
        shop_category = shop.data.items[0].category
        user = "buyer"
        svc.data.add_events("shop", [EventRecord(user, shop.item_ids[0], "purchase", time.time() - 1)])
        ids = _ids(svc.recommend.recommend("shop", user, k=50, filters=Filters(include_seen=True)))
        assert shop.item_ids[0] not in ids
    finally:
        svc.close()
    svc = local_services(tmp_path / "b", repurchasable=(shop_category,))
    try:
        shop = synthetic_platform(svc, "shop")
        svc.data.add_events("shop", [EventRecord("buyer", shop.item_ids[0], "purchase", time.time() - 1)])
        ids = _ids(svc.recommend.recommend("shop", "buyer", k=50, filters=Filters(include_seen=True)))
        assert shop.item_ids[0] in ids
    finally:
        svc.close()


def test_pages_of_one_recommendation_never_repeat(services: Services, shop: ReadyPlatform) -> None:
    user = shop.user_ids[0]
    first = services.recommend.recommend("shop", user, k=10)
    seen = _ids(first)
    for offset in (10, 20, 30):
        page = services.recommend.recommend("shop", user, k=10, offset=offset,
                                            recommendation_id=first.recommendation_id)
        assert page.recommendation_id == first.recommendation_id
        assert len(_ids(page)) == 10
        assert not set(_ids(page)) & set(seen)
        seen += _ids(page)
    assert len(seen) == len(set(seen)) == 40
    beyond = services.recommend.recommend("shop", user, k=10, offset=90, recommendation_id=first.recommendation_id)
    assert not set(_ids(beyond)) & set(seen)  # past the ranked depth: an empty page, never a repeat
    with pytest.raises(NotFound):
        services.recommend.recommend("shop", "someone-else", k=10, offset=10,
                                     recommendation_id=first.recommendation_id)


def test_category_context_comes_before_overall_popularity(services: Services) -> None:
    shop = synthetic_platform(services, "nomodel", model=None)
    category = shop.data.items[0].category
    answer = services.recommend.recommend("nomodel", "nobody", k=5, filters=Filters(category=category))
    assert _sources(answer) == {"popular_category"}
    assert answer.model is None
    everything = services.recommend.recommend("nomodel", "nobody", k=100)
    assert len(_ids(everything)) == len(shop.item_ids)  # never more than the catalog, never empty


def test_similar_items_and_a_new_item_through_its_text(services: Services, shop: ReadyPlatform) -> None:
    known = shop.item_ids[0]
    sim = services.recommend.similar("shop", known, k=5)
    assert sim.items[0].reason.level == "item_to_item" and known not in _ids(sim)
    twin = shop.data.items[1]
    services.data.upsert_items("shop", [ItemRecord(item_id="fresh", title=twin.title, category=twin.category,
                                                   brand=twin.brand, description=twin.description)])
    new = services.recommend.similar("shop", "fresh", k=5)
    assert new.items[0].reason.level == "content"
    assert new.items[0].item_id == twin.item_id
    with pytest.raises(NotFound):
        services.recommend.similar("shop", "no-such-item", k=5)


def test_session_recommendations_for_an_anonymous_visitor(services: Services, shop: ReadyPlatform) -> None:
    history = shop.item_ids[2:4]
    answer = services.recommend.session("shop", history, k=5)
    assert answer.items[0].reason.level == "session"
    assert not set(_ids(answer)) & set(history)
    assert len(_ids(services.recommend.session("shop", ["unknown-item"], k=5))) == 5


def test_feedback_needs_a_served_item(services: Services, shop: ReadyPlatform) -> None:
    answer = services.recommend.recommend("shop", shop.user_ids[0], k=3)
    rec_id = answer.recommendation_id
    out = services.recommend.feedback("shop", rec_id, _ids(answer)[0], "click")
    assert out.user_id == shop.user_ids[0]
    with pytest.raises(DataError, match="item_id"):
        services.recommend.feedback("shop", rec_id, "not-served", "click")
    with pytest.raises(NotFound):
        services.recommend.feedback("shop", "0" * 32, _ids(answer)[0], "click")


def test_bad_k_and_prices_are_refused(services: Services, shop: ReadyPlatform) -> None:
    with pytest.raises(DataError, match="k must"):
        services.recommend.recommend("shop", "u", k=0)
    with pytest.raises(DataError, match="min_price"):
        Filters(min_price=10, max_price=1)


def test_the_served_model_reads_event_types_and_times_as_offline_evaluation_does(tmp_path: Path) -> None:
    """A sequence model trained on event types and time gaps gets them online too (no train/serve skew):
    the query of a known user's list carries the types and timestamps of the stored history."""
    import numpy as np

    from shoprec.models.base import Query
    from shoprec.types import EventType

    svc = local_services(tmp_path)
    try:
        shop = synthetic_platform(svc, "shop", model="transformer", params={
            "epochs": 1, "embedding_size": 16, "ffn_size": 32, "progress": False, "popularity_correction": 0.0})
        served = svc.models.get("shop")
        assert served is not None
        seen: list[Query] = []
        vectors = served.model.user_vectors  # serving encodes the list's query (and its explanations) here

        def spy(queries: list[Query]) -> np.ndarray:
            seen.extend(queries)
            return vectors(queries)

        served.model.user_vectors = spy  # type: ignore[attr-defined]
        user = shop.user_ids[0]
        svc.recommend.recommend("shop", user, k=5)
        state = svc.users.get("shop", user)
        query = seen[0]
        assert query.event_types is not None and query.timestamps is not None
        assert len(query.event_types) == len(query.history) == len(state.history)
        assert query.event_types.tolist() == [EventType.parse(t).code for t in state.history_types]
        assert np.all(np.diff(query.timestamps) >= 0)
        assert len(set(state.history_types)) > 1  # the synthetic shop mixes views, carts and purchases
    finally:
        svc.close()
