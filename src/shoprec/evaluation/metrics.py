"""Offline metrics as pure, vectorised functions over top-k lists, hit matrices and target ranks.

Conventions (every function returns one value per user unless it says otherwise):
- `topk`: (n, K) int item indices from `shoprec.ranking.top_k`, -1 padding where fewer items remain.
- `hits`: (n, K) bool, hits[u, j] is True when the j-th recommended item of u is relevant.
- `n_relevant`: (n,) number of distinct relevant items of each user (1 for leave-one-out).
- `first_rank`: (n,) 0-based rank of the best-ranked relevant item over the full ranking (inf: none).
- Recall@k = hits in the top k / n_relevant; Precision@k = hits / k (also when the catalog has fewer
  than k items); NDCG@k = DCG / ideal DCG with min(n_relevant, k) relevant items at the top;
  MAP@k = sum of precision@j at each hit j <= k / min(n_relevant, k); HR@k = any hit in the top k;
  MRR = 1 / (first_rank + 1) over the full ranking (no cut-off).
Beyond accuracy: catalog coverage (a single number), novelty, popularity percentile and intra-list
diversity per user (NaN for an empty list; aggregate with nanmean).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from shoprec.ranking import rank_discount


def _discounts(k: int) -> np.ndarray:
    return np.asarray(rank_discount(np.arange(k)))


def hit_rate(hits: np.ndarray, k: int) -> np.ndarray:
    return np.asarray(hits[:, :k].any(axis=1), dtype=np.float64)


def recall(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    n_rel = np.asarray(n_relevant, dtype=np.float64)
    return np.divide(hits[:, :k].sum(axis=1), n_rel, out=np.zeros(len(n_rel)), where=n_rel > 0)


def precision(hits: np.ndarray, k: int) -> np.ndarray:
    return np.asarray(hits[:, :k].sum(axis=1) / float(k), dtype=np.float64)


def ndcg(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    h = hits[:, :k]
    disc = _discounts(k)
    dcg = (h * disc[: h.shape[1]]).sum(axis=1)
    ideal_counts = np.minimum(np.asarray(n_relevant, dtype=np.int64), k)
    ideal = np.concatenate([[0.0], np.cumsum(disc)])[ideal_counts]
    return np.divide(dcg, ideal, out=np.zeros(len(dcg)), where=ideal > 0)


def average_precision(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    h = hits[:, :k].astype(np.float64)
    precision_at = np.cumsum(h, axis=1) / np.arange(1, h.shape[1] + 1)
    denom = np.minimum(np.asarray(n_relevant, dtype=np.float64), k)
    return np.divide((precision_at * h).sum(axis=1), denom, out=np.zeros(len(denom)), where=denom > 0)


def reciprocal_rank(first_rank: np.ndarray) -> np.ndarray:
    r = np.asarray(first_rank, dtype=np.float64)
    return np.where(np.isfinite(r), 1.0 / (r + 1.0), 0.0)


def accuracy_metrics(hits: np.ndarray, n_relevant: np.ndarray, first_rank: np.ndarray,
                     ks: tuple[int, ...]) -> dict[str, np.ndarray]:
    """Per-user HR, Recall, NDCG, MAP, Precision at each k, and MRR."""
    out: dict[str, np.ndarray] = {}
    for k in ks:
        out[f"HR@{k}"] = hit_rate(hits, k)
        out[f"Recall@{k}"] = recall(hits, n_relevant, k)
        out[f"NDCG@{k}"] = ndcg(hits, n_relevant, k)
        out[f"MAP@{k}"] = average_precision(hits, n_relevant, k)
        out[f"Precision@{k}"] = precision(hits, k)
    out["MRR"] = reciprocal_rank(first_rank)
    return out


# ----------------------------------------------------------------------------- beyond accuracy
def catalog_coverage(topk: np.ndarray, n_items: int, k: int) -> float:
    """Share of the catalog that appears in at least one top-k list."""
    items = np.asarray(topk)[:, :k].ravel()
    items = items[items >= 0]
    return float(len(np.unique(items)) / n_items) if n_items else 0.0


def list_mean(topk: np.ndarray, item_values: np.ndarray, k: int) -> np.ndarray:
    """Mean of a per-item value over each top-k list (padding ignored); NaN for an empty list."""
    t = np.asarray(topk)[:, :k]
    valid = t >= 0
    vals = np.where(valid, item_values[np.where(valid, t, 0)], 0.0)
    n = valid.sum(axis=1)
    return np.divide(vals.sum(axis=1), n, out=np.full(len(n), np.nan), where=n > 0)


def self_information(user_counts: np.ndarray, n_users: int) -> np.ndarray:
    """Per item: -log2 of the smoothed share of training users who interacted with it, (c + 1) / (U + 1)."""
    return -np.log2((np.asarray(user_counts, dtype=np.float64) + 1.0) / (n_users + 1.0))


def popularity_percentile(user_counts: np.ndarray) -> np.ndarray:
    """Per item: its popularity percentile in [0, 1] (1 = most popular, ties share the average rank)."""
    c = np.asarray(user_counts, dtype=np.float64)
    if len(c) < 2:
        return np.ones(len(c))
    _, inverse, counts = np.unique(c, return_inverse=True, return_counts=True)
    first = np.cumsum(counts) - counts  # 0-based rank of the first item of each distinct count
    average = first + (counts - 1) / 2.0
    return average[inverse] / (len(c) - 1.0)


def cooccurrence_cosine(user_item: sp.spmatrix) -> sp.csr_matrix:
    """Item-item cosine similarity of binary user-item columns: |U_i & U_j| / sqrt(|U_i| |U_j|)."""
    x = sp.csr_matrix(user_item, dtype=np.float32, copy=True)
    x.data[:] = 1.0
    co = (x.T @ x).tocsr()
    norms = np.sqrt(co.diagonal()).astype(np.float32)
    inv = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    sim = sp.diags(inv) @ co @ sp.diags(inv)
    return sp.csr_matrix(sim, dtype=np.float32)


def intra_list_diversity(topk: np.ndarray, similarity: sp.csr_matrix, k: int) -> np.ndarray:
    """Per list: 1 - mean pairwise item similarity over its top k items; NaN with fewer than 2 items."""
    return intra_list_diversities(topk, similarity, (k,))[k]


def intra_list_diversities(topk: np.ndarray, similarity: sp.csr_matrix,
                           ks: tuple[int, ...]) -> dict[int, np.ndarray]:
    """`intra_list_diversity` at each k, looking each pair of the longest lists up once."""
    kmax = max(ks)
    t = np.asarray(topk)[:, :kmax]
    n, kk = t.shape
    ia, ib = np.triu_indices(kk, k=1)
    a, b = t[:, ia], t[:, ib]
    ok = (a >= 0) & (b >= 0)
    sims = np.zeros(a.shape)
    sims[ok] = pair_values(similarity, a[ok], b[ok])
    out = {}
    for k in ks:
        cols = ib < k  # pairs within the first k positions (ia < ib)
        total, pairs = sims[:, cols].sum(axis=1), ok[:, cols].sum(axis=1)
        out[k] = np.divide(pairs - total, pairs, out=np.full(n, np.nan), where=pairs > 0)
    return out


def pair_values(matrix: sp.csr_matrix, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """matrix[rows[i], cols[i]] for many pairs (0 where absent); scipy's indexing searches within each row."""
    if not len(rows):
        return np.zeros(0)
    return np.asarray(sp.csr_matrix(matrix)[rows, cols], dtype=np.float64).ravel()


def rating_errors(predicted: np.ndarray, actual: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(squared error, absolute error) per rating."""
    err = np.asarray(predicted, dtype=np.float64) - np.asarray(actual, dtype=np.float64)
    return err**2, np.abs(err)


def rmse(squared_errors: np.ndarray) -> float:
    return float(np.sqrt(np.mean(squared_errors))) if len(squared_errors) else float("nan")


def mae(absolute_errors: np.ndarray) -> float:
    return float(np.mean(absolute_errors)) if len(absolute_errors) else float("nan")
