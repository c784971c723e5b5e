"""The shared ranking path the harness relies on, checked against a brute-force reference on tie-heavy scores."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from shoprec.ranking import target_ranks, top_k


def reference_top_k(s: np.ndarray, k: int) -> np.ndarray:
    out = np.full((s.shape[0], k), -1)
    for r, row in enumerate(s):
        order = sorted((i for i in range(len(row)) if row[i] != -np.inf), key=lambda i: (-row[i], i))[:k]
        out[r, : len(order)] = order
    return out


values = st.sampled_from([-np.inf, 0.0, 0.5, 1.0, 2.0, np.inf])


@given(arrays(np.float32, st.tuples(st.integers(0, 6), st.integers(1, 12)), elements=values), st.integers(1, 15))
@settings(max_examples=300, deadline=None)
def test_top_k_matches_reference_with_ties_and_infinities(s, k):
    idx, vals = top_k(s, k)
    assert np.array_equal(idx, reference_top_k(s, k))
    ok = idx >= 0
    assert np.array_equal(vals[ok], s[np.nonzero(ok)[0], idx[ok]])
    finite_targets = [(r, int(idx[r, 0])) for r in range(len(s)) if idx[r, 0] >= 0]
    if finite_targets:
        rows = np.array([r for r, _ in finite_targets])
        ranks = target_ranks(s[rows], np.array([t for _, t in finite_targets]))
        assert np.all(ranks == 0)


def test_top_k_on_a_large_batch_matches_a_full_sort():
    rng = np.random.default_rng(0)
    s = np.round(rng.standard_normal((64, 3000)), 1).astype(np.float32)  # many ties
    idx, _ = top_k(s, 50)
    full = np.lexsort((np.broadcast_to(np.arange(3000), s.shape), -s), axis=1)[:, :50]
    assert np.array_equal(idx, full)


def test_top_k_rejects_nan_scores():
    with pytest.raises(ValueError, match="NaN"):
        top_k(np.array([[0.1, np.nan, 0.3, 0.2]], dtype=np.float32), 2)
