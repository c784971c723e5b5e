"""The contract every model in shoprec.models.base.MODEL_NAMES must keep.

Models whose module does not exist yet are skipped, saying so. Per-model fast configs, bad values
and learning expectations live in tests/models/conftest.py.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shoprec.data import IdMap, Interactions
from shoprec.errors import CannotScoreError, ConfigError, DataError
from shoprec.models import MODEL_NAMES, Query, Recommender, create_model, get_model_class, load_model
from shoprec.ranking import target_ranks, top_k


def _available(name: str) -> Any:
    if importlib.util.find_spec(f"shoprec.models.{name}") is None:
        return pytest.param(name, marks=pytest.mark.skip(reason=f"module shoprec.models.{name} does not exist yet"))
    return name


MODELS = [_available(name) for name in MODEL_NAMES]
_FITTED: dict[str, Recommender] = {}


@pytest.fixture
def small(contract: Any) -> Callable[[str], Recommender]:
    """Unfitted model `name` with its fast contract config."""
    return lambda name: create_model(name, contract.small_configs.get(name, {}))


@pytest.fixture
def fitted(small: Callable[[str], Recommender], planted: Any) -> Callable[[str], Recommender]:
    """Fitted model `name`, one per name for the whole session (tests must not change it)."""

    def get(name: str) -> Recommender:
        if name not in _FITTED:
            _FITTED[name] = small(name).fit(planted.train)
        return _FITTED[name]

    return get


def probe_queries(model: Recommender, planted: Any) -> list[Query]:
    """A mix of queries the model can score: known users with and without a history, anonymous histories."""
    candidates = [*planted.queries, Query(user=0), Query(user=45),
                  Query(user=None, history=np.array([30, 31, 32], dtype=np.int32))]
    queries = [q for q in candidates if model.can_score(q)]
    assert queries, "the model can score none of the probe queries"
    return queries


# --------------------------------------------------------------------------- learning
@pytest.mark.parametrize("name", MODELS)
def test_learns_the_planted_answer(name: str, planted: Any, contract: Any, fitted: Any) -> None:
    expectation = contract.learns.get(name, "planted")
    if expectation.startswith("skip"):
        pytest.skip(expectation)
    model = fitted(name)
    if expectation == "popular":
        idx, _ = top_k(model.score([Query(user=0)]), 1)
        assert idx[0, 0] == planted.most_popular
        return
    scores = model.score(planted.queries)
    assert scores.shape == (len(planted.queries), planted.train.n_items)
    ranks = target_ranks(scores, planted.targets, exclude=[q.history for q in planted.queries])
    if expectation == "floor":
        assert np.mean(1.0 / (ranks + 1.0)) >= contract.floor_mrr, ranks.tolist()
    else:
        assert ranks.tolist() == [0] * len(ranks)


# --------------------------------------------------------------------------- artifacts, seeds
@pytest.mark.parametrize("name", MODELS)
def test_save_then_load_gives_identical_scores(name: str, planted: Any, fitted: Any, tmp_path: Path) -> None:
    model = fitted(name)
    queries = probe_queries(model, planted)
    model.save(tmp_path / name)
    loaded = load_model(tmp_path / name)
    assert type(loaded) is type(model)
    assert loaded.config == model.config
    np.testing.assert_array_equal(loaded.score(queries), model.score(queries))


@pytest.mark.parametrize("name", MODELS)
def test_same_config_and_seed_give_the_same_scores(name: str, planted: Any, fitted: Any, small: Any) -> None:
    first = fitted(name)
    second = small(name).fit(planted.train)
    queries = probe_queries(first, planted)
    np.testing.assert_array_equal(second.score(queries), first.score(queries))


@pytest.mark.parametrize("name", MODELS)
def test_scores_are_finite_float32_rows_of_n_items(name: str, planted: Any, fitted: Any) -> None:
    model = fitted(name)
    queries = probe_queries(model, planted)
    scores = model.score(queries)
    assert scores.dtype == np.float32 and scores.shape == (len(queries), planted.train.n_items)
    assert np.isfinite(scores).all()
    assert model.score([]).shape == (0, planted.train.n_items)


# --------------------------------------------------------------------------- bad data
@pytest.mark.parametrize("name", MODELS)
def test_empty_training_data_is_a_data_error(name: str, small: Any) -> None:
    empty = Interactions(user=np.zeros(0), item=np.zeros(0), users=IdMap(["u"]), items=IdMap(["a", "b"]))
    with pytest.raises(DataError, match="empty"):
        small(name).fit(empty)


@pytest.mark.parametrize("name", MODELS)
def test_single_user_training_data_is_a_data_error(name: str, small: Any) -> None:
    one_user = Interactions.from_ids(["u", "u", "u"], ["a", "b", "c"], timestamp=[1, 2, 3])
    with pytest.raises(DataError, match="single user"):
        small(name).fit(one_user)


# --------------------------------------------------------------------------- bad configs
def _wrong_value(hint: Any) -> tuple[bool, Any]:
    """(checked, a value of the wrong type) for a config field's type hint."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return _wrong_value(inner[0]) if len(inner) == 1 else (False, None)
    if origin is typing.Literal:
        return True, "no-such-choice"
    if origin is tuple:
        return True, 5
    if hint is bool:
        return True, "yes"
    if hint in (int, float):
        return True, "many"
    if hint is str:
        return True, 12345
    return False, None


@pytest.mark.parametrize("name", MODELS)
def test_wrongly_typed_or_unknown_parameters_are_config_errors_naming_them(name: str) -> None:
    config_cls = get_model_class(name).Config
    hints = typing.get_type_hints(config_cls)
    for field in dataclasses.fields(config_cls):
        checked, value = _wrong_value(hints[field.name])
        if checked:
            with pytest.raises(ConfigError, match=f"'{field.name}'"):
                create_model(name, {field.name: value})
    with pytest.raises(ConfigError, match="no_such_parameter"):
        create_model(name, {"no_such_parameter": 1})


@pytest.mark.parametrize("name", MODELS)
def test_out_of_range_value_is_a_config_error_naming_the_parameter(name: str, contract: Any) -> None:
    fields = {f.name for f in dataclasses.fields(get_model_class(name).Config)}
    if name in contract.bad_values:
        param, value = contract.bad_values[name]
    else:
        generic = [p for p in contract.generic_positive if p in fields]
        if not generic:
            pytest.skip(f"no BAD_VALUES entry for {name!r} in tests/models/conftest.py")
        param, value = generic[0], 0
    with pytest.raises(ConfigError, match=param):
        create_model(name, {param: value})


# --------------------------------------------------------------------------- can_score
@pytest.mark.parametrize("name", MODELS)
def test_score_raises_cannot_score_exactly_when_can_score_is_false(
        name: str, planted: Any, fitted: Any, small: Any) -> None:
    with pytest.raises(CannotScoreError):
        small(name).score([Query(user=0)])  # not fitted
    model = fitted(name)
    n_users, n_items = planted.train.n_users, planted.train.n_items
    unknown_item = np.array([n_items + 3], dtype=np.int32)
    for query in (Query(), Query(user=n_users + 7), Query(user=None, history=unknown_item)):
        if model.can_score(query):
            assert np.isfinite(model.score([query])).all()
        else:
            with pytest.raises(CannotScoreError):
                model.score([query])
            with pytest.raises(CannotScoreError):
                model.score([*probe_queries(model, planted), query])
