"""ease: the closed form against a float64 reference, memory guard, history-based scoring."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from shoprec.errors import ConfigError, DataError
from shoprec.models import Query, create_model
from shoprec.models.ease import _symmetrize_upper, ease_weights


def reference_weights(x: np.ndarray, reg: float) -> np.ndarray:
    """Steck's closed form in float64: B = I - P diag(1/diag(P)), P = (X^T X + reg I)^-1."""
    p = np.linalg.inv(x.T @ x + reg * np.eye(x.shape[1]))
    b = -p / np.diag(p)[None, :]
    np.fill_diagonal(b, 0.0)
    return b


@pytest.mark.parametrize("reg", [0.5, 20.0])
def test_ease_weights_match_the_float64_closed_form(reg: float) -> None:
    x = sp.random(60, 25, density=0.2, random_state=1, dtype=np.float32).toarray()
    x[x > 0] = 1.0
    got = ease_weights(np.ascontiguousarray(x.T @ x, dtype=np.float32), reg)
    np.testing.assert_allclose(got, reference_weights(x.astype(np.float64), reg), rtol=1e-3, atol=1e-5)
    assert got.dtype == np.float32 and np.all(np.diag(got) == 0.0)


def test_symmetrize_copies_the_upper_triangle_across_blocks() -> None:
    rng = np.random.default_rng(0)
    full = rng.random((7, 7))
    full = full + full.T
    a = np.triu(full)
    _symmetrize_upper(a, block=3)  # 7 is not a multiple of the block size
    np.testing.assert_array_equal(a, full)


def test_fit_stores_the_closed_form_of_the_training_matrix(planted) -> None:
    model = create_model("ease", {"regularization": 5.0}).fit(planted.train)
    x = planted.train.to_csr().toarray().astype(np.float64)
    np.testing.assert_allclose(model.weights, reference_weights(x, 5.0), rtol=1e-3, atol=1e-5)


def test_stronger_regularisation_shrinks_the_weights(planted) -> None:
    weak = create_model("ease", {"regularization": 1.0}).fit(planted.train)
    strong = create_model("ease", {"regularization": 100.0}).fit(planted.train)
    assert np.abs(strong.weights).sum() < np.abs(weak.weights).sum()


def test_a_new_event_changes_the_scores_at_once(planted) -> None:
    model = create_model("ease", {"history_decay": 1.0}).fit(planted.train)
    before, after = model.score([Query(history=np.array([10, 11])), Query(history=np.array([10, 11, 30]))])
    assert not np.array_equal(before, after)
    np.testing.assert_allclose(after - before, model.weights[30], rtol=1e-5, atol=1e-6)  # score = h @ B


def test_history_decay_weights_older_items_less(planted) -> None:
    model = create_model("ease", {"history_decay": 0.5}).fit(planted.train)
    scores = model.score([Query(history=np.array([30, 20, 10]))])[0]  # newest: 10
    expected = 0.25 * model.weights[30] + 0.5 * model.weights[20] + model.weights[10]
    np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-6)


def test_can_score_needs_a_known_history_item(planted) -> None:
    model = create_model("ease").fit(planted.train)
    assert model.can_score(Query(history=np.array([3])))
    assert not model.can_score(Query(user=0))
    assert not model.can_score(Query(history=np.array([40])))


def test_too_many_items_is_a_data_error_naming_max_items(planted) -> None:
    with pytest.raises(DataError, match="max_items"):
        create_model("ease", {"max_items": 10}).fit(planted.train)


@pytest.mark.parametrize(("param", "value"), [("regularization", 0.0), ("history_decay", -0.1),
                                              ("max_items", 0), ("num_threads", -1)])
def test_bad_values_name_the_parameter(param: str, value: object) -> None:
    with pytest.raises(ConfigError, match=param):
        create_model("ease", {param: value})


@pytest.mark.slow
@pytest.mark.realdata
def test_beauty_validation_beats_itemknn_level(beauty) -> None:
    bench, train, valid, _ = beauty
    model = create_model("ease").fit(train)
    ndcg = bench.evaluate(model, bench.Split(valid.queries[::5], valid.targets[::5]))["NDCG@10"]
    assert ndcg > 0.045, ndcg
