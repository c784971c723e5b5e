"""k-core (iterative, property-based) and event weights."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shoprec.data.interactions import Interactions
from shoprec.errors import ConfigError
from shoprec.preprocess.kcore import compact_ids, kcore, kcore_mask
from shoprec.preprocess.weights import DEFAULT_EVENT_WEIGHTS, apply_event_weights, weight_table
from shoprec.types import EventType

pairs = st.lists(st.tuples(st.integers(0, 8), st.integers(0, 8)), max_size=60)


@settings(max_examples=150, deadline=None)
@given(pairs, st.integers(0, 4), st.integers(0, 4))
def test_kcore_is_the_largest_subset_meeting_both_thresholds(rows: list[tuple[int, int]], ku: int, ki: int) -> None:
    user = np.array([u for u, _ in rows], dtype=np.int32)
    item = np.array([i for _, i in rows], dtype=np.int32)
    keep = kcore_mask(user, item, ku, ki)
    u, i = user[keep], item[keep]
    # every kept user / item meets its threshold
    if len(u):
        assert all((u == x).sum() >= ku for x in np.unique(u))
        assert all((i == x).sum() >= ki for x in np.unique(i))
    # idempotent: the core of the core is itself
    assert kcore_mask(u, i, ku, ki).all()
    # maximal: a brute-force peel (one row-group at a time) reaches the same set
    alive = np.ones(len(rows), dtype=bool)
    changed = True
    while changed:
        changed = False
        for k in range(len(rows)):
            if alive[k] and ((alive & (user == user[k])).sum() < ku or (alive & (item == item[k])).sum() < ki):
                alive[k] = False
                changed = True
    assert np.array_equal(alive, keep)


def test_kcore_iterates_and_compacts() -> None:
    # removing item c (1 event) drops u3 below 2 events, which drops item d: a second round is needed
    inter = Interactions.from_ids(["u1", "u1", "u2", "u2", "u3", "u3", "u4"], ["a", "b", "a", "b", "c", "d", "d"])
    core = kcore(inter, 2, 2)
    assert sorted(core.users.externals(np.unique(core.user))) == ["u1", "u2"]
    compacted, old_users, old_items = compact_ids(core)
    assert compacted.users.to_list() == ["u1", "u2"] and compacted.items.to_list() == ["a", "b"]
    assert old_users.tolist() == [0, 1] and old_items.tolist() == [0, 1]
    assert np.array_equal(compacted.items.externals(compacted.item), core.items.externals(core.item))
    with pytest.raises(ConfigError):
        kcore_mask(inter.user, inter.item, -1, 0)


def test_event_weights_follow_types_and_values() -> None:
    types = [EventType.VIEW, EventType.CART, EventType.PURCHASE, EventType.RATING, EventType.RATING,
             EventType.IMPRESSION]
    inter = Interactions.from_ids(["u"] * 6, list("abcdef"), value=[np.nan, 2, 1, 4, np.nan, np.nan],
                                  event_type=[t.code for t in types])
    out = apply_event_weights(inter)
    assert out.weight.tolist() == [1.0, 3.0, 5.0, 4.0, 1.0, 0.0]
    assert out.weight[0] < out.weight[1] < out.weight[2]  # view < cart < purchase
    assert inter.weight.tolist() == [1.0] * 6  # the input is not changed
    custom = apply_event_weights(inter, {"purchase": 10, "Cart": 2.5}, from_value=(), drop_zero=True)
    assert custom.weight.tolist() == [1.0, 2.5, 10.0, 1.0, 1.0]
    with pytest.raises(ConfigError, match="teleport"):
        weight_table({"teleport": 1.0})
    with pytest.raises(ConfigError, match="finite"):
        weight_table({"view": float("inf")})
    assert set(DEFAULT_EVENT_WEIGHTS) == {t.value for t in EventType}
