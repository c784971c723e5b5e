"""als: implicit's ALS, history fold-in by exact least squares, threads and seeds."""

from __future__ import annotations

import numpy as np
import pytest

from shoprec.errors import ConfigError
from shoprec.models import Query, create_model

FAST = {"embedding_size": 8, "epochs": 8, "alpha": 10.0, "regularization": 0.1, "history_decay": 1.0}


@pytest.fixture(scope="module")
def model(planted):
    return create_model("als", FAST).fit(planted.train)


def normal_equations(model, items: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """u = (Y^T Y + Y_h^T (C_h - I) Y_h + reg I)^-1 Y_h^T C_h, C_h = alpha * weights, in float64."""
    y = model.item_factors.astype(np.float64)
    yh, c = y[items], model.config.alpha * weights
    a = y.T @ y + yh.T @ ((c - 1.0)[:, None] * yh) + model.config.regularization * np.eye(y.shape[1])
    return np.linalg.solve(a, yh.T @ c)


def test_fold_in_solves_the_als_normal_equations_for_the_history(model) -> None:
    history = np.array([30, 31, 35])
    u = model.user_vectors([Query(history=history)])[0]
    np.testing.assert_allclose(u, normal_equations(model, history, np.ones(3)), rtol=1e-3, atol=1e-4)


def test_history_decay_weights_the_fold_in(planted) -> None:
    model = create_model("als", {**FAST, "history_decay": 0.5}).fit(planted.train)
    u = model.user_vectors([Query(history=np.array([30, 31, 35]))])[0]  # newest: 35
    expected = normal_equations(model, np.array([30, 31, 35]), np.array([0.25, 0.5, 1.0]))
    np.testing.assert_allclose(u, expected, rtol=1e-3, atol=1e-4)


def test_folding_in_the_training_history_scores_like_the_learned_factor(model, planted) -> None:
    sequences = planted.train.to_sequences()
    for user in (0, 40, 70, 100):
        learned = model.score([Query(user=user)])[0]
        folded = model.score([Query(user=user, history=sequences[user])])[0]
        assert np.corrcoef(learned, folded)[0, 1] > 0.95


def test_a_new_event_changes_the_scores_at_once(model) -> None:
    before, after = model.score([Query(user=3, history=np.array([0, 1])), Query(user=3, history=np.array([0, 1, 30]))])
    assert not np.array_equal(before, after)
    cluster3 = np.arange(31, 40)
    assert after[cluster3].mean() > before[cluster3].mean()


def test_a_known_user_without_history_uses_the_learned_factor(model) -> None:
    np.testing.assert_allclose(model.score([Query(user=7)])[0], model.item_factors @ model.user_factors[7],
                               rtol=1e-6)
    # unknown items in the history are ignored: the learned factor again
    np.testing.assert_array_equal(model.score([Query(user=7, history=np.array([99]))]),
                                  model.score([Query(user=7)]))
    assert not model.can_score(Query(user=None))
    assert not model.can_score(Query(user=10_000))
    assert model.can_score(Query(user=10_000, history=np.array([2])))


def test_thread_count_does_not_change_the_factors(planted) -> None:
    one = create_model("als", {**FAST, "num_threads": 1}).fit(planted.train)
    two = create_model("als", {**FAST, "num_threads": 2}).fit(planted.train)
    np.testing.assert_array_equal(one.item_factors, two.item_factors)


def test_the_seed_changes_the_initial_factors(planted) -> None:
    a = create_model("als", {**FAST, "seed": 1}).fit(planted.train)
    b = create_model("als", {**FAST, "seed": 2}).fit(planted.train)
    assert not np.array_equal(a.item_factors, b.item_factors)


def test_training_log_has_one_entry_per_iteration(model) -> None:
    assert [e["iteration"] for e in model.training_log] == list(range(1, FAST["epochs"] + 1))


@pytest.mark.parametrize(("param", "value"), [("embedding_size", 0), ("regularization", -1.0), ("alpha", 0.0),
                                              ("epochs", 0), ("history_decay", 2.0), ("num_threads", -1)])
def test_bad_values_name_the_parameter(param: str, value: object) -> None:
    with pytest.raises(ConfigError, match=param):
        create_model("als", {param: value})


@pytest.mark.slow
@pytest.mark.realdata
def test_beauty_validation_is_far_above_popularity(beauty) -> None:
    bench, train, valid, _ = beauty
    model = create_model("als").fit(train)
    ndcg = bench.evaluate(model, bench.Split(valid.queries[::5], valid.targets[::5]))["NDCG@10"]
    assert ndcg > 0.035, ndcg

