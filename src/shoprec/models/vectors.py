"""The inner-product view of a model: scores = user_vectors(queries) @ item_factors.T.

Models whose scores are inner products (the factor models ALS and BPR, the transformer) expose
`user_vectors(queries)` (n_queries, d) and `item_factors` (n_items, d). Serving uses the view for
approximate candidates (ANN, int8 scan) and explanations use it to score only the target columns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from shoprec.models.base import Query

QueryVectors = Callable[[Sequence[Query]], np.ndarray]


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
