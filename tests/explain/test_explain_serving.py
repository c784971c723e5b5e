"""Every served item carries a reason; history reasons are the served model's own leave-one-out drops."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from shoprec.errors import ConfigError
from shoprec.explain.attribution import ATTRIBUTION_HISTORY, without
from shoprec.models.base import Query
from shoprec.service import Services, ServingConfig
from shoprec.service.answers import Recommendation
from shoprec.service.testing import ReadyPlatform, local_services, synthetic_platform

TYPES = {"history", "popular_in_category", "similar_text", "fallback_popular"}


def _check_shapes(answer: Recommendation) -> None:
    for item in answer.items:
        reason = item.reason
        assert reason.type in TYPES and reason.source, reason
        if reason.type == "history":
            assert reason.because_of is not None and reason.weights is not None
            assert len(reason.because_of) == len(reason.weights) >= 1
            assert list(reason.weights) == sorted(reason.weights, reverse=True)
        if reason.type == "popular_in_category":
            assert reason.category


def test_user_list_reasons_are_faithful_to_the_served_model(services: Services, shop: ReadyPlatform) -> None:
    user = shop.user_ids[0]
    answer = services.recommend.recommend("shop", user, k=10)
    _check_shapes(answer)
    history = [i for i in answer.items if i.reason.type == "history"]
    assert history and history[0].reason.source == "itemknn" and history[0].reason.level == "personal"
    assert history[0].reason.text.startswith("Because you ")
    # recompute with the served model: removing the top cause lowers the score most
    served = services.models.get("shop")
    assert served is not None
    model, items = served.model, served.model.items
    assert items is not None
    state = services.users.get("shop", user)
    query = Query(history=items.lookup(state.history).astype(np.int32))
    for rec in history[:5]:
        target = items.get(rec.item_id)
        full = float(model.score([query])[0, target])
        drops = {}
        for h in set(query.history.tolist()):
            q = without(query, h)
            drops[items.external(h)] = full - (float(model.score([q])[0, target]) if model.can_score(q) else 0.0)
        assert rec.reason.because_of[0] == max(drops, key=lambda k: drops[k])


def test_session_similar_and_fallback_reasons(services: Services, shop: ReadyPlatform) -> None:
    session = services.recommend.session("shop", [shop.item_ids[3]], k=5)
    _check_shapes(session)
    assert session.items[0].reason.because_of == (shop.item_ids[3],)
    similar = services.recommend.similar("shop", shop.item_ids[3], k=60)
    _check_shapes(similar)
    cold = services.recommend.recommend("shop", "never-seen", k=5)
    assert {i.reason.type for i in cold.items} == {"fallback_popular"}


def test_explain_any_item_and_cold_users(services: Services, shop: ReadyPlatform) -> None:
    user = shop.user_ids[0]
    top = services.recommend.recommend("shop", user, k=1).items[0]
    explained = services.recommend.explain("shop", user, top.item_id)
    assert explained.reason.because_of == top.reason.because_of
    assert explained.score == top.score
    seen = services.users.get("shop", user).history[-1]  # not recommendable (seen), still explainable
    assert services.recommend.explain("shop", user, seen).reason.type in TYPES
    cold = services.recommend.explain("shop", "never-seen", shop.item_ids[0])
    assert cold.reason.type == "fallback_popular"


def _newest_distinct(history: tuple[str, ...], n: int) -> set[str]:
    return set(list(dict.fromkeys(reversed(history)))[:n])


def test_explain_history_bounds_the_items_a_reason_may_name(tmp_path: Path, services: Services,
                                                           shop: ReadyPlatform) -> None:
    narrow = local_services(tmp_path / "narrow", explain_history=2)
    try:
        synthetic_platform(narrow, "shop")
        users = [u for u in shop.user_ids if len(set(services.users.get("shop", u).history)) >= 4][:10]
        assert users
        older_named = 0  # the default names items older than the newest two: the setting is what bounds them
        for user in users:
            newest = _newest_distinct(services.users.get("shop", user).history, 2)
            for item in narrow.recommend.recommend("shop", user, k=20).items:
                if item.reason.type == "history":
                    assert set(item.reason.because_of) <= newest, (user, item)
            top = narrow.recommend.recommend("shop", user, k=1).items[0]
            explained = narrow.recommend.explain("shop", user, top.item_id)
            assert set(explained.reason.because_of or ()) <= newest
            wide = services.recommend.recommend("shop", user, k=20).items
            older_named += sum(bool(set(i.reason.because_of or ()) - newest) for i in wide)
        assert older_named > 0
    finally:
        narrow.close()


def test_explain_history_setting_is_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ServingConfig().explain_history == ATTRIBUTION_HISTORY
    monkeypatch.setenv("SHOPREC_EXPLAIN_HISTORY", "5")
    assert ServingConfig.from_env().explain_history == 5
    monkeypatch.setenv("SHOPREC_EXPLAIN_HISTORY", "five")
    with pytest.raises(ConfigError, match="SHOPREC_EXPLAIN_HISTORY"):
        ServingConfig.from_env()
    with pytest.raises(ConfigError, match="explain_history"):
        ServingConfig(explain_history=0)
