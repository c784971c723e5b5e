"""Helpers shared by the implicit-feedback models (itemknn, ease, als, bpr).

- `known_history` / `history_matrix`: a batch of query histories as a sparse (n_queries, n_items)
  matrix, with optional recency weighting, ignoring items the model has not seen in training.
- `positive`, `at_least`, `in_range`: config checks that raise ConfigError naming the parameter.
- `blas_threads`: a context limiting BLAS threads (0 = library default, i.e. all cores).
- `FactorRecommender`: scoring, history fold-in dispatch and artifacts of the factor models (als, bpr).
- `ItemToItemRecommender`: history-only scoring through an item-item matrix (itemknn, ease).
"""

from __future__ import annotations

import contextlib
from abc import abstractmethod
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from shoprec.errors import ConfigError
from shoprec.models.base import Query, Recommender


# ----------------------------------------------------------------------------- config checks
def positive(model: str, name: str, value: float) -> None:
    """Raise ConfigError unless value > 0."""
    if not value > 0:
        raise ConfigError(f"parameter {name!r} of model {model!r} must be > 0, got {value!r}")


def at_least(model: str, name: str, value: float, low: float) -> None:
    """Raise ConfigError unless value >= low."""
    if not value >= low:
        raise ConfigError(f"parameter {name!r} of model {model!r} must be >= {low}, got {value!r}")


def in_range(model: str, name: str, value: float, low: float, high: float) -> None:
    """Raise ConfigError unless low <= value <= high."""
    if not low <= value <= high:
        raise ConfigError(f"parameter {name!r} of model {model!r} must be in [{low}, {high}], got {value!r}")


# ----------------------------------------------------------------------------- threads
@contextlib.contextmanager
def blas_threads(num_threads: int) -> Iterator[None]:
    """Limit BLAS threads to `num_threads` inside the block (0: leave the library default)."""
    if num_threads <= 0:
        yield
        return
    with threadpool_limits(limits=num_threads, user_api="blas"):
        yield


# ----------------------------------------------------------------------------- histories
def known_history(query: Query, n_items: int) -> np.ndarray:
    """The query's history (oldest first) restricted to items known at training time."""
    h = np.asarray(query.history, dtype=np.int64)
    return h[(h >= 0) & (h < n_items)]


def recency_weights(history: np.ndarray, decay: float) -> tuple[np.ndarray, np.ndarray]:
    """(distinct items, weights): weight = decay ** (steps between the item's latest occurrence and the end).

    decay = 1 gives every distinct item weight 1 (a binary history row).
    """
    if len(history) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    rev = history[::-1]
    items, first_from_end = np.unique(rev, return_index=True)
    weights = np.power(np.float64(decay), first_from_end).astype(np.float32)
    return items.astype(np.int64), weights


def history_matrix(queries: Sequence[Query], n_items: int, decay: float = 1.0) -> sp.csr_matrix:
    """(n_queries, n_items) float32 CSR: row q holds the recency weights of query q's known history items."""
    indptr = np.zeros(len(queries) + 1, dtype=np.int64)
    cols: list[np.ndarray] = []
    vals: list[np.ndarray] = []
    for r, q in enumerate(queries):
        items, weights = recency_weights(known_history(q, n_items), decay)
        cols.append(items)
        vals.append(weights)
        indptr[r + 1] = indptr[r] + len(items)
    col = np.concatenate(cols) if cols else np.zeros(0, dtype=np.int64)
    val = np.concatenate(vals) if vals else np.zeros(0, dtype=np.float32)
    return sp.csr_matrix((val, col, indptr), shape=(len(queries), n_items), dtype=np.float32)


# ----------------------------------------------------------------------------- factor models
class FactorRecommender(Recommender):
    """Base of the matrix-factorisation models: score = user vector . item factors.

    The user vector of a query with a (known-item) history is recomputed from that history by
    `_fold_in`, so a new event changes the scores at once; a known user without a history uses
    the factor learned in `fit`; an unknown user without a history cannot be scored.
    """

    uses_history = True
    uses_user = True
    user_factors: np.ndarray  # (n_users, f)
    item_factors: np.ndarray  # (n_items, f)

    def can_score(self, query: Query) -> bool:
        if query.user is not None and 0 <= query.user < self.n_users:
            return True
        return len(known_history(query, self.n_items)) > 0

    @abstractmethod
    def _fold_in(self, history: sp.csr_matrix) -> np.ndarray:
        """(n, f) user vectors from (n, n_items) history rows."""

    def user_vectors(self, queries: Sequence[Query]) -> np.ndarray:
        """(n, f) user vectors of scoreable queries: folded in from the history when there is one."""
        out = np.empty((len(queries), self.item_factors.shape[1]), dtype=np.float32)
        has_history = np.array([len(known_history(q, self.n_items)) > 0 for q in queries], dtype=bool)
        rows = [int(r) for r in np.flatnonzero(has_history)]
        if rows:
            decay = float(getattr(self.config, "history_decay", 1.0))
            out[rows] = self._fold_in(history_matrix([queries[r] for r in rows], self.n_items, decay))
        for r in np.flatnonzero(~has_history):
            out[r] = self.user_factors[queries[int(r)].user]
        return out

    def _score(self, queries: Sequence[Query]) -> np.ndarray:
        return self.user_vectors(queries) @ self.item_factors.T  # (n, f) @ (f, n_items)

    def _state(self) -> dict[str, np.ndarray]:
        return {"user_factors": self.user_factors, "item_factors": self.item_factors}

    def _set_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        self.user_factors = arrays["user_factors"]
        self.item_factors = arrays["item_factors"]


class ItemToItemRecommender(Recommender):
    """A model that scores a query's (recency-weighted) history through an (n_items, n_items) item-item
    matrix, `h @ W` (itemknn: sparse similarities, ease: dense weights); it needs no known user."""

    uses_history = True
    uses_user = False  # scores come from the history alone

    def can_score(self, query: Query) -> bool:
        return len(known_history(query, self.n_items)) > 0

    @abstractmethod
    def _item_weights(self) -> np.ndarray | sp.csr_matrix:
        """W: the (n_items, n_items) matrix a history row is multiplied with."""

    def _score(self, queries: Sequence[Query]) -> np.ndarray:
        h = history_matrix(queries, self.n_items, self.config.history_decay)  # (n, n_items)
        scores = h @ self._item_weights()  # (n, n_items)
        return np.asarray(scores.todense() if sp.issparse(scores) else scores, dtype=np.float32)
