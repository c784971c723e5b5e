"""The inner-product view of a model: scores = user_vectors(queries) @ item_factors.T [+ history_scores(queries)].

Models whose scores are inner products (the factor models ALS and BPR, the transformer) expose
`user_vectors(queries)` (n_queries, d) and `item_factors` (n_items, d). Serving uses the view for
approximate candidates (ANN, int8 scan) and explanations use it to score only the target columns.
A model may add a sparse part >= 0 that the inner products cannot carry (the transformer's transition term):
`history_scores(queries, columns=None)`, an (n_queries, n_items) CSR matrix or None, non-zero on few items per
query (with `columns`: over those items only); a search over the inner products then adds those items to its
candidates and their part to their scores.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import scipy.sparse as sp

from shoprec.models.base import Query

QueryVectors = Callable[[Sequence[Query]], np.ndarray]


class HistoryScores(Protocol):
    """A model's `history_scores`: (n_queries, n_items) CSR or None; with `columns`, over those items only."""

    def __call__(self, queries: Sequence[Query], columns: np.ndarray | None = None) -> sp.csr_matrix | None:
        ...


@runtime_checkable
class InnerProductModel(Protocol):
    """A model whose scores equal `user_vectors(queries) @ item_factors.T`."""

    @property
    def item_factors(self) -> np.ndarray:
        """(n_items, d) item vectors, row i = item index i."""
        ...

    def user_vectors(self, queries: Sequence[Query]) -> np.ndarray:
        """(n_queries, d) query vectors matching `item_factors`."""
        ...


def vector_scorer(model: object) -> tuple[QueryVectors, np.ndarray] | None:
    """(query -> vectors function, contiguous float32 item vectors) when the model is an InnerProductModel
    with a 2-d item matrix, else None (the model is then scored in full)."""
    if not isinstance(model, InnerProductModel):
        return None
    items = model.item_factors
    if not isinstance(items, np.ndarray) or items.ndim != 2:
        return None
    return model.user_vectors, np.ascontiguousarray(items, dtype=np.float32)


def history_scorer(model: object) -> HistoryScores | None:
    """The model's `history_scores` (the sparse part of its scores beside the inner products), or None for a
    model without one."""
    found = getattr(model, "history_scores", None)
    return found if callable(found) else None


def sparse_row(part: sp.csr_matrix | None, row: int, columns: np.ndarray | None = None) -> np.ndarray | None:
    """Row `row` of a history_scores matrix as a dense float32 array (over `columns` when given), None for None."""
    if part is None:
        return None
    dense = np.asarray(part[row].toarray()[0], dtype=np.float32)
    return dense if columns is None else dense[columns]
