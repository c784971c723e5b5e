"""The transition affinity: a first-order Markov term beside the network (as FPMC puts one beside factors).

    P[h, i] = count(h -> i) / count(h -> any item)   over consecutive events of the training histories
    t(q)    = sum_k AFFINITY_DECAY ** k * P[h_k]       over the query's AFFINITY_ITEMS newest items h_0, h_1, ...
    scores += transition_affinity * t(q)

The network embeds items in d dimensions, which smooths a rare but sure succession (this refill after that
device) into its neighbourhood; the counts keep it. On Beauty the term chosen on the validation targets adds
+1.1% validation NDCG@10 alone and +2.2% with the text affinity; a low-rank (SVD) version of P kept none of it,
so it stays sparse: one row of P per history item, non-zero only on the items that followed it.

t(q) is >= 0 and non-zero only on the items that followed the query's newest items (its `support`), so an exact
top-n search over the network's inner products stays exact with it: every item outside the support keeps its
inner-product score (shoprec.service: ANN and int8 candidates add the support and its scores).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from shoprec.models.transformer.data import Sequences

AFFINITY_DECAY = 0.5  # the weight of a query's k-th newest item (0 = the newest) is 0.5 ** k ...
AFFINITY_ITEMS = 8  # ... over its newest 8 items (0.5 ** 8 < 0.004); shared with the text affinity


def transition_matrix(seqs: Sequences, n_items: int) -> sp.csr_matrix:
    """(n_items, n_items) float32 P[h, i]: the share of the events following an event of item h (in the same
    user's history, time order) that are of item i; repeats of the same item (h -> h) are left out."""
    items = seqs.items.astype(np.int64) - 1  # build_sequences' items are 1-based
    starts = np.zeros(len(items), dtype=bool)
    starts[seqs.offsets[:-1][seqs.offsets[:-1] < len(items)]] = True
    follows = ~starts[1:]  # event j + 1 follows event j of the same user
    prev, nxt = items[:-1][follows], items[1:][follows]
    keep = prev != nxt
    counts = sp.csr_matrix((np.ones(int(keep.sum()), dtype=np.float32), (prev[keep], nxt[keep])),
                           shape=(n_items, n_items))
    counts.sum_duplicates()
    out_degree = np.asarray(counts.sum(axis=1), dtype=np.float64).ravel()
    scale = np.where(out_degree > 0, 1.0 / np.maximum(out_degree, 1.0), 0.0).astype(np.float32)
    return sp.csr_matrix(sp.diags(scale) @ counts, dtype=np.float32)


def _newest(items: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(query row, item index, AFFINITY_DECAY ** k) of each query's k-th newest item, k < AFFINITY_ITEMS, from the
    right-padded 1-based (B, L) `items` of query_arrays (0: padding)."""
    k = np.arange(min(AFFINITY_ITEMS, items.shape[1]))
    where = lengths[:, None] - 1 - k[None, :]  # (B, k) positions of the newest, newest first
    rows, ks = np.nonzero(where >= 0)
    picked = items[rows, where[rows, ks]].astype(np.int64)
    known = picked > 0
    return rows[known], picked[known] - 1, (AFFINITY_DECAY ** ks[known]).astype(np.float32)


def history_weights(items: np.ndarray, lengths: np.ndarray, n_items: int) -> sp.csr_matrix:
    """(B, n_items) float32: AFFINITY_DECAY ** k at each query's k-th newest item (k < AFFINITY_ITEMS), from the
    right-padded 1-based (B, L) `items` of query_arrays (0: padding); an item repeated sums its weights."""
    rows, cols, vals = _newest(items, lengths)
    weights = sp.csr_matrix((vals, (rows, cols)), shape=(len(items), n_items), dtype=np.float32)
    weights.sum_duplicates()
    return weights


def _terms(matrix: sp.csr_matrix, items: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, ...]:
    """(query row, item column, value) of every term of t(q), the rows of P gathered at once (a repeated column is
    not summed here)."""
    rows, newest, weights = _newest(items, lengths)
    starts = matrix.indptr[newest].astype(np.int64)
    counts = matrix.indptr[newest + 1].astype(np.int64) - starts
    at = np.repeat(starts - (np.cumsum(counts) - counts), counts) + np.arange(int(counts.sum()))
    return (np.repeat(rows, counts), matrix.indices[at].astype(np.int64),
            matrix.data[at] * np.repeat(weights, counts))


def transition_scores(matrix: sp.csr_matrix, items: np.ndarray, lengths: np.ndarray) -> sp.csr_matrix:
    """(B, n_items) float32 t(q) of each query (before its weight), sparse: non-zero on its support only."""
    rows, cols, vals = _terms(matrix, items, lengths)
    return sp.csr_matrix((vals, (rows, cols)), shape=(len(items), matrix.shape[0]), dtype=np.float32)


def transition_dense(matrix: sp.csr_matrix, items: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """transition_scores as a dense (B, n_items) float32 array (what scoring adds)."""
    rows, cols, vals = _terms(matrix, items, lengths)
    out = np.zeros((len(items), matrix.shape[0]), dtype=np.float32)
    np.add.at(out, (rows, cols), vals)
    return out
