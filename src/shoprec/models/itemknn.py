"""Item-based k-nearest neighbours: cosine similarity with shrinkage, top-N neighbours per item.

    X       (n_users, n_items)  event weights (duplicates summed), optionally tf-idf / BM25 re-weighted
    S[i,j]  = X_i . X_j / (|X_i| |X_j| + shrink)   for j among the `neighbors` most similar items of i
    score   = h @ S   where h (n_items,) holds the query history, recent items weighted by
              history_decay ** (steps before the newest event)

Scoring uses only the query's history, so a new event changes the next scores at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp

from shoprec.data import Interactions, ItemCatalog
from shoprec.models._implicit import ItemToItemRecommender, at_least, in_range
from shoprec.models.base import register


@dataclass(frozen=True)
class ItemKNNConfig:
    """Defaults tuned on Beauty validation NDCG@10 (benchmarks/tune_classic.py): 1000 neighbours scored
    0.0559 and 100 scored 0.0555, so the default keeps 100 (10x less memory on large catalogs)."""

    neighbors: int = 100  # most similar items kept per item
    shrink: float = 50.0  # added to the cosine denominator: damps pairs seen by few users
    weighting: Literal["none", "tfidf", "bm25"] = "none"  # re-weighting of X before similarity
    history_decay: float = 0.6  # weight of a history item j steps before the newest one: decay**j

    def __post_init__(self) -> None:
        at_least("itemknn", "neighbors", self.neighbors, 1)
        at_least("itemknn", "shrink", self.shrink, 0.0)
        in_range("itemknn", "history_decay", self.history_decay, 0.0, 1.0)


def reweight(x: sp.csr_matrix, weighting: str, k1: float = 1.2, b: float = 0.75) -> sp.csr_matrix:
    """tf-idf or BM25 weighting of a users x items matrix, users playing the role of terms.

    idf(u) = log(n_items / (1 + items of u)): very active users say less about item similarity.
    """
    if weighting == "none":
        return x
    x = x.tocoo(copy=True)
    n_items = x.shape[1]
    idf = np.log(n_items / (1.0 + np.bincount(x.row, minlength=x.shape[0]))).clip(min=0.0)
    if weighting == "tfidf":
        x.data = np.sqrt(x.data) * idf[x.row]
    else:
        length = np.bincount(x.col, weights=x.data, minlength=n_items)
        norm = (1.0 - b) + b * length / max(float(length.mean()), 1e-12)
        x.data = x.data * (k1 + 1.0) / (k1 * norm[x.col] + x.data) * idf[x.row]
    return x.tocsr().astype(np.float32)


def cosine_similarity(x: sp.csr_matrix, shrink: float) -> sp.csr_matrix:
    """(n_items, n_items) shrunk cosine similarity of the columns of x, zero diagonal (not stored)."""
    xt = x.T.tocsr()  # (n_items, n_users)
    sim = (xt @ xt.T).tocsr()  # dot products; the diagonal holds the squared norms
    sim.sort_indices()
    norms = np.sqrt(sim.diagonal())
    rows = np.repeat(np.arange(sim.shape[0]), np.diff(sim.indptr))
    sim.data = (sim.data / (norms[rows] * norms[sim.indices] + shrink)).astype(np.float32)
    sim.data[rows == sim.indices] = 0.0
    sim.eliminate_zeros()
    return sim


def top_n_per_row(m: sp.csr_matrix, n: int) -> sp.csr_matrix:
    """Keep the n largest entries of each row (ties: lower column index first); m has sorted indices."""
    counts = np.diff(m.indptr)
    keep = np.ones(m.nnz, dtype=bool)
    for r in np.flatnonzero(counts > n):
        lo, hi = m.indptr[r], m.indptr[r + 1]
        order = np.lexsort((m.indices[lo:hi], -m.data[lo:hi]))
        keep[lo + order[n:]] = False
    indptr = np.concatenate([[0], np.cumsum(np.minimum(counts, n))])
    return sp.csr_matrix((m.data[keep], m.indices[keep], indptr), shape=m.shape, dtype=np.float32)


@register
class ItemKNN(ItemToItemRecommender):
    name = "itemknn"
    Config = ItemKNNConfig

    def _fit(self, train: Interactions, catalog: ItemCatalog | None, validation: Any) -> None:
        cfg = self.config
        x = reweight(train.to_csr(weighted=True), cfg.weighting)
        self.similarity = top_n_per_row(cosine_similarity(x, cfg.shrink), cfg.neighbors)

    def _item_weights(self) -> sp.csr_matrix:
        return self.similarity

    def _state(self) -> dict[str, np.ndarray]:
        s = self.similarity
        return {"data": s.data, "indices": s.indices.astype(np.int32), "indptr": s.indptr.astype(np.int64)}

    def _set_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        n = self.n_items
        self.similarity = sp.csr_matrix((arrays["data"], arrays["indices"], arrays["indptr"]), shape=(n, n))
