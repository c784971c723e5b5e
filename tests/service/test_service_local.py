"""The in-process serving path (shoprec.service.local): the database path's state rules, and no list store."""

from __future__ import annotations

import numpy as np
import pytest

from shoprec.data import IdMap, Interactions, ItemCatalog
from shoprec.service.config import ServingConfig
from shoprec.service.errors import NotFound
from shoprec.service.lists import ListService
from shoprec.service.local import LocalRecommend, states_from_events, view_from_catalog
from shoprec.service.state import UserState, state_from_events
from shoprec.types import EventType


def test_state_rules() -> None:
    events = [("a", "view", 1.0), ("b", "impression", 2.0), ("c", "purchase", 3.0), ("d", "like", 4.0),
              ("d", "dislike", 5.0), ("e", "dislike", 6.0), ("e", "like", 7.0), ("f", "cart", 8.0)]
    state = state_from_events(events, history_length=3)
    assert state.history == ("d", "e", "f")  # the newest 3 positive events (not the impression, nor dislikes)
    assert state.history_types == ("like", "like", "cart") and state.history_times == (4.0, 7.0, 8.0)
    assert state.purchased == {"c"}
    assert state.disliked == {"d"}  # the last opinion counts: e was liked after its dislike


def _snapshot() -> tuple[Interactions, ItemCatalog]:
    names = [("u1", "a", "view"), ("u1", "b", "purchase"), ("u2", "b", "view"), ("u2", "a", "dislike"),
             ("u2", "c", "impression")]
    users, items = IdMap.from_list(["u1", "u2"]), IdMap.from_list(["a", "b", "c", "d"])
    events = Interactions(
        user=np.array([users.index(u) for u, _, _ in names], dtype=np.int32),
        item=np.array([items.index(i) for _, i, _ in names], dtype=np.int32), users=users, items=items,
        timestamp=np.arange(len(names), dtype=np.int64) + 100,
        event_type=np.array([EventType.parse(t).code for _, _, t in names], dtype=np.int8))
    catalog = ItemCatalog(items=items.copy(), title=["A", "B", "C", "D"], description=[""] * 4,
                          category=["x", "x > y", "", "x"], brand=[""] * 4, price=np.array([1.0, 2.0, np.nan, 3.0]),
                          available=np.array([True, True, True, False]))
    return events, catalog


def test_snapshot_states_and_view() -> None:
    events, catalog = _snapshot()
    states = states_from_events(events, history_length=10)
    assert states["u1"] == state_from_events([("a", "view", 100.0), ("b", "purchase", 101.0)], 10)
    assert states["u2"] == UserState(history=("b",), history_types=("view",), history_times=(102.0,),
                                     disliked=frozenset({"a"}))
    assert states_from_events(events, 10, users=["u2"]).keys() == {"u2"}
    view = view_from_catalog(catalog, events)
    assert view.popularity.tolist() == [0.5, 1.0, 0.0, 0.0]  # positive events per item (a: 1, b: 2), scaled
    assert view.servable.tolist() == [True, True, True, False]
    assert view.category_mask("x").tolist() == [True, True, False, True]


def test_local_service_keeps_no_lists() -> None:
    events, catalog = _snapshot()
    service = LocalRecommend(ServingConfig(), view_from_catalog(catalog, events), None,
                             states_from_events(events, 10))
    answer = service.recommend("local", "u2", 2)
    assert answer.item_ids == ["c"]  # u2 disliked a and saw b; d is unavailable
    with pytest.raises(NotFound, match="keeps no lists"):
        service.recommend("local", "u2", 2, recommendation_id=answer.recommendation_id)
    with pytest.raises(NotFound, match="keeps no lists"):
        service.feedback("local", answer.recommendation_id, "c", "click")
    with pytest.raises(NotFound, match="keeps no lists"):
        ListService(service)


@pytest.mark.parametrize("model", ["popular", "ease"])
def test_batch_lists_take_the_serving_levels_for_an_empty_history(model: str) -> None:
    """A user the model never saw, with no history yet: serving gives popular lists, and so must the batch path
    (it used to ask the model for a session level of an empty history)."""
    import pandas as pd

    from shoprec import Recommender

    rows = [(f"u{u}", f"i{(u + j) % 20}", "view", 1000 + u * 10 + j) for u in range(30) for j in range(5)]
    service = Recommender(model).fit(pd.DataFrame(rows, columns=["user_id", "item_id", "event_type", "timestamp"])
                                     )._fitted.service
    service.users.states = {**service.users.states, "newbie": UserState()}  # arrived after the fit
    online = service.recommend("local", "newbie", 3)
    batch = service.rank_users(["newbie"], 3)[0]
    assert batch.items == online.item_ids
    assert [r.level for r in batch.reasons] == [i.reason.level for i in online.items] == ["popular"] * 3
