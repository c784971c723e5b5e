import numpy as np
import pytest
import scipy.sparse as sp

from shoprec.ranking import target_ranks, top_k, top_row


def test_top_k_orders_by_score_then_lower_index():
    s = np.array([[0.1, 0.5, 0.5, 0.9, 0.5]], dtype=np.float32)
    idx, vals = top_k(s, 3)
    assert idx.tolist() == [[3, 1, 2]]
    assert vals[0].tolist() == pytest.approx([0.9, 0.5, 0.5])


def test_top_k_excludes_and_pads_when_catalog_smaller_than_k():
    s = np.array([[1.0, 2.0, 3.0]], dtype=np.float32)
    idx, vals = top_k(s, 5, exclude=[np.array([2])])
    assert idx.tolist() == [[1, 0, -1, -1, -1]]
    assert np.isneginf(vals[0, 2:]).all()


def test_top_k_accepts_sparse_exclusions_and_does_not_modify_input():
    s = np.array([[3.0, 2.0, 1.0], [1.0, 2.0, 3.0]], dtype=np.float32)
    before = s.copy()
    excl = sp.csr_matrix(np.array([[1, 0, 0], [0, 0, 1]]))
    idx, _ = top_k(s, 1, exclude=excl)
    assert idx[:, 0].tolist() == [1, 1]
    assert np.array_equal(s, before)


def test_top_k_candidates_restrict_rows():
    s = np.array([[5.0, 4.0, 3.0, 2.0]], dtype=np.float32)
    idx, _ = top_k(s, 2, candidates=[np.array([3, 2])])
    assert idx.tolist() == [[2, 3]]


def test_target_rank_matches_top_k_position_with_ties_and_exclusions():
    rng = np.random.default_rng(0)
    s = rng.integers(0, 4, size=(20, 30)).astype(np.float32)  # many ties
    targets = rng.integers(0, 30, size=20)
    excl = [rng.choice(30, size=5, replace=False) for _ in range(20)]
    excl = [e[e != t] for e, t in zip(excl, targets, strict=True)]
    ranks = target_ranks(s, targets, exclude=excl)
    idx, _ = top_k(s, 30, exclude=excl)
    for r in range(20):
        assert list(idx[r]).index(targets[r]) == ranks[r]


def test_target_is_never_excluded():
    s = np.array([[1.0, 5.0, 2.0]], dtype=np.float32)
    assert target_ranks(s, np.array([1]), exclude=[np.array([1])]).tolist() == [0]


@pytest.mark.parametrize("seed", range(8))
def test_top_row_is_top_k_of_one_row(seed: int) -> None:
    """The rules' one-row ranking keeps the one ordering rule: ties by lower index, -inf and excluded items out."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 300))
    scores = rng.integers(0, 6, n).astype(np.float32)  # many ties
    scores[rng.random(n) < 0.2] = -np.inf
    excluded = rng.random(n) < 0.3
    for k in (1, 3, 10, n, n + 5):
        idx, vals = top_row(scores, k, excluded)
        want_idx, want_vals = top_k(scores, k, exclude=[np.flatnonzero(excluded)])
        ok = want_idx[0] >= 0
        assert idx.tolist() == want_idx[0][ok].tolist()
        assert vals.tolist() == want_vals[0][ok].tolist()
    assert top_row(scores, 0)[0].size == 0
    with pytest.raises(ValueError, match="NaN"):
        top_row(np.array([1.0, np.nan, 2.0], dtype=np.float32), 1)
