"""bpr: implicit's BPR, SGD fold-in of a history, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from shoprec.errors import ConfigError
from shoprec.models import Query, create_model

FAST = {"embedding_size": 16, "epochs": 200, "learning_rate": 0.1, "fold_in_steps": 300}


@pytest.fixture(scope="module")
def model(planted):
    return create_model("bpr", FAST).fit(planted.train)


def test_factors_have_an_item_bias_column_and_a_unit_user_column(model, planted) -> None:
    assert model.item_factors.shape == (planted.train.n_items, FAST["embedding_size"] + 1)
    np.testing.assert_array_equal(model.user_factors[:, -1], 1.0)


def test_fold_in_of_a_query_does_not_depend_on_the_rest_of_the_batch(model) -> None:
    q = Query(history=np.array([10, 11]))
    alone = model.score([q])
    together = model.score([Query(history=np.array([30, 31, 32, 33])), q, Query(user=4)])
    np.testing.assert_allclose(alone[0], together[1], rtol=1e-5, atol=1e-6)  # BLAS kernels may differ by size


def test_fold_in_ranks_the_history_cluster_first(model) -> None:
    scores = model.score([Query(history=np.array([30, 31, 32]))])[0]
    scores[[30, 31, 32]] = -np.inf
    assert set(np.argsort(-scores)[:5]) <= set(range(33, 40))
    vector = model.user_vectors([Query(history=np.array([30, 31, 32]))])[0]
    assert vector[-1] == 1.0  # the bias coordinate is not learned in the fold-in


def test_a_new_event_changes_the_scores_at_once(model) -> None:
    before, after = model.score([Query(user=3, history=np.array([0, 1])), Query(user=3, history=np.array([0, 1, 30]))])
    assert not np.array_equal(before, after)
    cluster3 = np.arange(31, 40)
    assert after[cluster3].mean() > before[cluster3].mean()


def test_a_known_user_without_history_uses_the_learned_factor(model) -> None:
    np.testing.assert_allclose(model.score([Query(user=5)])[0], model.item_factors @ model.user_factors[5],
                               rtol=1e-6)
    assert not model.can_score(Query())
    assert not model.can_score(Query(user=999, history=np.array([77])))


def test_the_seed_changes_the_result(planted) -> None:
    a = create_model("bpr", {**FAST, "epochs": 5, "seed": 1}).fit(planted.train)
    b = create_model("bpr", {**FAST, "epochs": 5, "seed": 2}).fit(planted.train)
    assert not np.array_equal(a.item_factors, b.item_factors)


def test_several_threads_are_accepted(planted) -> None:
    model = create_model("bpr", {**FAST, "epochs": 10, "num_threads": 2}).fit(planted.train)
    assert np.isfinite(model.item_factors).all()


@pytest.mark.parametrize(("param", "value"), [("embedding_size", 0), ("learning_rate", -0.1), ("regularization", -1.0),
                                              ("epochs", 0), ("fold_in_steps", 0), ("fold_in_negatives", 0),
                                              ("history_decay", 1.1), ("num_threads", -2)])
def test_bad_values_name_the_parameter(param: str, value: object) -> None:
    with pytest.raises(ConfigError, match=param):
        create_model("bpr", {param: value})
