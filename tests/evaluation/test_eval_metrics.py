"""Metrics on hand-computed cases: ties, first place, exclusions, k beyond the catalog, several relevant items."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from shoprec.evaluation import metrics as M
from shoprec.evaluation.engine import ItemStats, _hits, rank_batch
from shoprec.ranking import hits_from_ranks


def rel(rows: list[list[int]], n_items: int) -> sp.csr_matrix:
    r = [i for i, items in enumerate(rows) for _ in items]
    c = [x for items in rows for x in items]
    return sp.csr_matrix((np.ones(len(c), dtype=np.float32), (r, c)), shape=(len(rows), n_items))


def test_single_target_ranked_first_scores_one_everywhere():
    hits = hits_from_ranks(np.array([0]), 10)
    n_rel = np.array([1])
    assert M.hit_rate(hits, 10)[0] == 1.0
    assert M.ndcg(hits, n_rel, 10)[0] == pytest.approx(1.0)
    assert M.average_precision(hits, n_rel, 10)[0] == pytest.approx(1.0)
    assert M.precision(hits, 10)[0] == pytest.approx(0.1)
    assert M.reciprocal_rank(np.array([0.0]))[0] == 1.0


def test_single_target_at_rank_3():
    hits = hits_from_ranks(np.array([3, 3]), 5)
    n_rel = np.array([1, 1])
    assert M.ndcg(hits, n_rel, 5)[0] == pytest.approx(1 / math.log2(5))
    assert M.ndcg(hits, n_rel, 3)[0] == 0.0  # rank 3 (0-based) is outside the top 3
    assert M.hit_rate(hits, 4)[0] == 1.0 and M.hit_rate(hits, 3)[0] == 0.0
    assert M.average_precision(hits, n_rel, 5)[0] == pytest.approx(1 / 4)
    assert M.reciprocal_rank(np.array([3.0, np.inf])).tolist() == [0.25, 0.0]


def test_several_relevant_items():
    # list [a, x, b, y, z], relevant {a, b, c}: hits at positions 0 and 2; c is not in the list
    hits = np.array([[True, False, True, False, False]])
    n_rel = np.array([3])
    assert M.recall(hits, n_rel, 5)[0] == pytest.approx(2 / 3)
    assert M.precision(hits, 5)[0] == pytest.approx(2 / 5)
    dcg = 1.0 + 1 / math.log2(4)
    idcg = 1.0 + 1 / math.log2(3) + 1 / math.log2(4)
    assert M.ndcg(hits, n_rel, 5)[0] == pytest.approx(dcg / idcg)
    assert M.average_precision(hits, n_rel, 5)[0] == pytest.approx((1 / 1 + 2 / 3) / 3)
    assert M.hit_rate(hits, 1)[0] == 1.0
    # at k=2 the ideal DCG has min(3, 2) = 2 relevant items and MAP divides by 2
    assert M.ndcg(hits, n_rel, 2)[0] == pytest.approx(1.0 / (1.0 + 1 / math.log2(3)))
    assert M.average_precision(hits, n_rel, 2)[0] == pytest.approx(1 / 2)
    assert M.recall(hits, n_rel, 2)[0] == pytest.approx(1 / 3)


def test_rank_batch_ties_break_by_lower_index_and_target_survives_exclusion():
    scores = np.array([[1.0, 3.0, 3.0, 3.0, 0.0]], dtype=np.float32)
    # target 3 ties with 1 and 2 (lower indices first): rank 2; excluding item 1 moves it to rank 1
    lists, ranks = rank_batch(scores, rel([[3]], 5), None, 3)
    assert ranks.tolist() == [2.0] and lists.tolist() == [[1, 2, 3]]
    excl = rel([[1, 3]], 5)  # the target itself is in the exclusion set: it must stay rankable
    lists, ranks = rank_batch(scores, rel([[3]], 5), excl, 3)
    assert ranks.tolist() == [1.0] and lists.tolist() == [[2, 3, 0]]


def test_rank_batch_k_larger_than_catalog_pads_and_metrics_divide_by_k():
    scores = np.array([[0.5, 0.2, 0.9]], dtype=np.float32)
    lists, ranks = rank_batch(scores, rel([[1]], 3), rel([[2]], 3), 5)
    assert lists.tolist() == [[0, 1, -1, -1, -1]]
    assert ranks.tolist() == [1.0]
    hits = _hits(lists, rel([[1]], 3))
    assert hits.tolist() == [[False, True, False, False, False]]
    assert M.precision(hits, 5)[0] == pytest.approx(1 / 5)
    assert M.ndcg(hits, np.array([1]), 5)[0] == pytest.approx(1 / math.log2(3))


def test_rank_batch_best_of_several_relevant_gives_first_rank():
    scores = np.array([[0.1, 0.8, 0.3, 0.8, 0.9]], dtype=np.float32)
    # relevant {3, 2}: item 3 ties with item 1 (lower index first) -> rank 2 (after 4 and 1)
    _, ranks = rank_batch(scores, rel([[2, 3]], 5), None, 2)
    assert ranks.tolist() == [2.0]


def test_rank_batch_neg_inf_target_is_never_found():
    scores = np.array([[0.1, -np.inf, 0.3]], dtype=np.float32)
    lists, ranks = rank_batch(scores, rel([[1]], 3), None, 3)
    assert lists.tolist() == [[2, 0, -1]]
    assert np.isinf(ranks[0])


def test_rank_batch_rejects_nan_scores():
    with pytest.raises(ValueError, match="NaN"):
        rank_batch(np.array([[0.1, np.nan]], dtype=np.float32), rel([[0]], 2), None, 1, "broken")


def test_hits_match_ranks_for_single_targets():
    rng = np.random.default_rng(3)
    scores = rng.integers(0, 5, size=(40, 25)).astype(np.float32)
    targets = rng.integers(0, 25, size=40)
    relevant = rel([[t] for t in targets], 25)
    lists, ranks = rank_batch(scores, relevant, None, 10)
    assert np.array_equal(_hits(lists, relevant), hits_from_ranks(ranks.astype(int), 10))


def test_coverage_novelty_popularity_and_diversity():
    topk = np.array([[0, 1, -1], [0, 2, 3]])
    assert M.catalog_coverage(topk, 8, 2) == pytest.approx(3 / 8)
    assert M.catalog_coverage(topk, 8, 3) == pytest.approx(4 / 8)
    values = np.array([1.0, 3.0, 5.0, 7.0])
    assert M.list_mean(topk, values, 3).tolist() == pytest.approx([2.0, 13 / 3])
    assert np.isnan(M.list_mean(np.array([[-1, -1]]), values, 2)[0])
    assert M.self_information(np.array([3, 0]), 3).tolist() == pytest.approx([0.0, 2.0])
    assert M.popularity_percentile(np.array([5, 1, 5, 0])).tolist() == pytest.approx([5 / 6, 1 / 3, 5 / 6, 0.0])
    # users: {0,1}, {0,1}, {2}: items 0 and 1 always together (cosine 1), item 2 never with them
    x = sp.csr_matrix(np.array([[1, 1, 0], [1, 1, 0], [0, 0, 1]], dtype=np.float32))
    sim = M.cooccurrence_cosine(x)
    assert sim[0, 1] == pytest.approx(1.0) and sim[0, 2] == 0.0
    div = M.intra_list_diversity(np.array([[0, 1], [0, 2], [0, 1], [2, -1]]), sim, 3)
    assert div[:2].tolist() == pytest.approx([0.0, 1.0], abs=1e-6)
    assert np.isnan(div[3])
    assert M.intra_list_diversity(np.array([[0, 1, 2]]), sim, 3)[0] == pytest.approx(1 - 1 / 3, abs=1e-6)


def test_item_stats_from_training_data():
    from shoprec.data import IdMap, Interactions

    train = Interactions(user=np.array([0, 0, 1, 1, 1]), item=np.array([0, 0, 0, 1, 2]),
                         users=IdMap(["a", "b"]), items=IdMap(["x", "y", "z", "w"]))
    stats = ItemStats.from_train(train)
    # item 0 seen by 2 of 2 users (repeats count once), items 1-2 by one, item 3 by none
    assert stats.self_information.tolist() == pytest.approx(
        [-math.log2(3 / 3), -math.log2(2 / 3), -math.log2(2 / 3), -math.log2(1 / 3)])
    assert stats.percentile[0] == 1.0 and stats.percentile[3] == 0.0
    assert stats.similarity is not None and stats.similarity[1, 2] == pytest.approx(1.0)


def test_rating_errors():
    se, ae = M.rating_errors(np.array([3.0, 5.0]), np.array([4.0, 2.0]))
    assert M.rmse(se) == pytest.approx(math.sqrt((1 + 9) / 2))
    assert M.mae(ae) == pytest.approx(2.0)
