"""Feature hooks: event weights, recency decay, text on/off."""

from __future__ import annotations

import numpy as np
import pytest

from shoprec.data import IdMap, Interactions, ItemCatalog
from shoprec.errors import ConfigError
from shoprec.preprocess.features import DAY_SECONDS, apply_features, split_params
from shoprec.types import EventType


def _data() -> Interactions:
    types = [EventType.VIEW.code, EventType.PURCHASE.code, EventType.VIEW.code]
    times = [0, int(10 * DAY_SECONDS), int(20 * DAY_SECONDS)]
    return Interactions.from_ids(["a", "a", "b"], ["x", "y", "x"], timestamp=times, event_type=types)


def test_event_weights_follow_the_tuned_values():
    train, _ = apply_features(_data(), None, {"weight.purchase": 7.0, "weight.view": 0.5})
    assert train.weight.tolist() == [0.5, 7.0, 0.5]


def test_recency_decay_halves_the_weight_per_half_life():
    train, _ = apply_features(_data(), None, {"recency_half_life_days": 10.0})
    np.testing.assert_allclose(train.weight, [0.25, 0.5, 1.0], rtol=1e-6)
    same, _ = apply_features(_data(), None, {"recency_half_life_days": 0.0})
    assert same.weight.tolist() == [1.0, 1.0, 1.0]


def test_text_off_blanks_titles_and_descriptions_but_keeps_the_rest():
    items = IdMap(["x", "y"])
    catalog = ItemCatalog(items=items, title=["Red lipstick", "Soap"], description=["matte", ""],
                          category=["Beauty", "Bath"])
    _, off = apply_features(_data(), catalog, {"text": False})
    assert off is not None and off.title == ["", ""] and off.description == ["", ""]
    assert off.category == ["Beauty", "Bath"] and catalog.title == ["Red lipstick", "Soap"]
    _, on = apply_features(_data(), catalog, {"text": True})
    assert on is catalog


def test_bad_feature_values_and_split_of_params():
    with pytest.raises(ConfigError, match=r"features\.text"):
        apply_features(_data(), None, {"text": 1})
    assert split_params({"embedding_size": 3, "features.text": False}) == ({"embedding_size": 3}, {"text": False})


def test_the_final_fit_sees_the_tuned_features():
    from shoprec.models.base import Query
    from shoprec.models.factory import ModelFactory, training_data

    data = _data()
    plain = ModelFactory("popular", {"weighted": True}).fit(data)
    make = ModelFactory("popular", {"weighted": True}, features={"weight.view": 0.0, "weight.purchase": 1.0})
    tuned = make.fit(data)
    prepared, _ = training_data(make, data, None)  # what the evaluation protocols fit on
    assert np.array_equal(prepared.weight, make.prepare(data, None)[0].weight)
    assert not np.array_equal(prepared.weight, data.weight)
    assert training_data(lambda: make(), data, None)[0] is data  # a plain function: the data as it is
    x, y = data.items.index("x"), data.items.index("y")
    s_plain, s_tuned = plain.score([Query(user=0)])[0], tuned.score([Query(user=0)])[0]
    assert s_plain[x] > s_plain[y] and s_tuned[y] > s_tuned[x]
