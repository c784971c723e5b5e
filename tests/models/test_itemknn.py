"""itemknn: shrunk cosine similarity, top-N neighbours, history-based scoring."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from shoprec.errors import ConfigError
from shoprec.models import Query, create_model
from shoprec.models._implicit import history_matrix
from shoprec.models.itemknn import cosine_similarity, reweight, top_n_per_row


def random_matrix(seed: int = 0, shape: tuple[int, int] = (30, 12), density: float = 0.3) -> sp.csr_matrix:
    m = sp.random(*shape, density=density, format="csr", dtype=np.float32, random_state=seed)
    m.data[:] = np.random.default_rng(seed).integers(1, 4, size=m.nnz)
    return m


def test_cosine_similarity_matches_a_dense_reference_with_shrinkage() -> None:
    x = random_matrix()
    dense = x.toarray().astype(np.float64)
    norms = np.linalg.norm(dense, axis=0)
    expected = dense.T @ dense / (np.outer(norms, norms) + 3.0)
    np.fill_diagonal(expected, 0.0)
    np.testing.assert_allclose(cosine_similarity(x, 3.0).toarray(), expected, rtol=1e-5, atol=1e-7)


def test_top_n_per_row_keeps_the_largest_entries_lower_index_first_on_ties() -> None:
    dense = np.array([[0.0, 0.5, 0.9, 0.5, 0.1], [0.3, 0.0, 0.0, 0.0, 0.0], [0.2, 0.2, 0.2, 0.2, 0.0]])
    m = sp.csr_matrix(dense.astype(np.float32))
    m.sort_indices()
    kept = top_n_per_row(m, 2).toarray()
    expected = np.array([[0, 0.5, 0.9, 0, 0], [0.3, 0, 0, 0, 0], [0.2, 0.2, 0, 0, 0]], dtype=np.float32)
    np.testing.assert_array_equal(kept, expected)


@pytest.mark.parametrize("weighting", ["tfidf", "bm25"])
def test_reweighting_damps_heavy_users(weighting: str) -> None:
    # user 0 took every item, user 1 only items 0 and 1: user 1's co-occurrence says more
    x = sp.csr_matrix(np.array([[1, 1, 1, 1, 1, 1], [1, 1, 0, 0, 0, 0]], dtype=np.float32))
    w = reweight(x, weighting).toarray()
    assert w.shape == x.shape and (w >= 0).all()
    assert w[1, 0] > w[0, 0]


def test_scores_follow_the_history_and_a_new_event_changes_them_at_once(planted) -> None:
    model = create_model("itemknn", {"history_decay": 1.0}).fit(planted.train)
    before, after = model.score([Query(history=np.array([0, 1])), Query(history=np.array([0, 1, 30]))])
    assert not np.array_equal(before, after)
    assert after[31] > before[31]  # cluster 3 (items 30-39) gains from the new event
    assert np.argmax(np.where(np.isin(np.arange(40), [0, 1]), -np.inf, before)) == 2


def test_history_decay_favours_the_newest_item(planted) -> None:
    history = np.array([30, 10])  # newest: item 10 (cluster 1)
    flat = create_model("itemknn", {"history_decay": 1.0}).fit(planted.train).score([Query(history=history)])[0]
    decayed = create_model("itemknn", {"history_decay": 0.2}).fit(planted.train).score([Query(history=history)])[0]
    cluster1, cluster3 = np.arange(11, 20), np.arange(31, 40)
    assert decayed[cluster1].sum() / decayed[cluster3].sum() > flat[cluster1].sum() / flat[cluster3].sum()


def test_neighbours_are_limited_per_item(planted) -> None:
    model = create_model("itemknn", {"neighbors": 3}).fit(planted.train)
    assert np.diff(model.similarity.indptr).max() == 3


def test_can_score_needs_a_known_history_item(planted) -> None:
    model = create_model("itemknn").fit(planted.train)
    assert model.can_score(Query(history=np.array([5])))
    assert not model.can_score(Query(user=0))  # a user alone is not enough: the history is what counts
    assert not model.can_score(Query(history=np.array([99])))  # item unknown at training time
    scores = model.score([Query(history=np.array([5, 99]))])  # unknown items are ignored
    np.testing.assert_array_equal(scores, model.score([Query(history=np.array([5]))]))


@pytest.mark.parametrize(("param", "value"), [("neighbors", 0), ("shrink", -1.0), ("history_decay", 1.5),
                                              ("weighting", "idf")])
def test_bad_values_name_the_parameter(param: str, value: object) -> None:
    with pytest.raises(ConfigError, match=param):
        create_model("itemknn", {param: value})


@pytest.mark.realdata
def test_beauty_validation_is_far_above_popularity(beauty) -> None:
    bench, train, valid, _ = beauty
    model = create_model("itemknn").fit(train)
    ndcg = bench.evaluate(model, bench.Split(valid.queries[::5], valid.targets[::5]))["NDCG@10"]
    assert ndcg > 0.04, ndcg  # popularity: ~0.006 on this protocol


def test_history_rows_weight_each_item_by_its_latest_occurrence() -> None:
    queries = [Query(history=np.array([4, 2, 4, 7])), Query(history=np.array([9, 1]))]  # 9 is unknown
    h = history_matrix(queries, n_items=8, decay=0.5).toarray()
    np.testing.assert_allclose(h[0], [0, 0, 0.25, 0, 0.5, 0, 0, 1.0])
    np.testing.assert_allclose(h[1], [0, 1.0, 0, 0, 0, 0, 0, 0])

