"""EASE: embarrassingly shallow autoencoder (Steck, WWW 2019), closed form.

    X   (n_users, n_items)  event weights (duplicates summed)
    P   = (X^T X + regularization * I)^-1            dense float32 (n_items, n_items), Cholesky
    B   = -P / diag(P) column-wise, diag(B) = 0      item-item weights
    score = h @ B   where h (n_items,) holds the query history, recent items weighted by
            history_decay ** (steps before the newest event)

Memory is one dense n_items^2 float32 matrix (12k items: 0.6 GB; 40k: 6.4 GB), hence `max_items`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg.lapack as lapack

from shoprec.data import Interactions, ItemCatalog
from shoprec.errors import DataError
from shoprec.models._implicit import ItemToItemRecommender, at_least, blas_threads, in_range, positive
from shoprec.models.base import register


@dataclass(frozen=True)
class EASEConfig:
    """Defaults tuned on Beauty validation NDCG@10 (benchmarks/tune_classic.py)."""

    regularization: float = 100.0  # lambda added to the diagonal of X^T X
    history_decay: float = 0.6  # weight of a history item j steps before the newest one: decay**j
    max_items: int = 40_000  # refuse larger catalogs: the model is a dense n_items^2 matrix
    num_threads: int = 0  # BLAS/LAPACK threads for the fit (0: library default, all cores)

    def __post_init__(self) -> None:
        positive("ease", "regularization", self.regularization)
        in_range("ease", "history_decay", self.history_decay, 0.0, 1.0)
        at_least("ease", "max_items", self.max_items, 1)
        at_least("ease", "num_threads", self.num_threads, 0)


def _symmetrize_upper(a: np.ndarray, block: int = 1024) -> None:
    """Copy the upper triangle of square `a` onto its lower triangle, in place, block by block."""
    n = a.shape[0]
    for i0 in range(0, n, block):
        i1 = min(i0 + block, n)
        a[i0:i1, :i0] = a[:i0, i0:i1].T
        d = a[i0:i1, i0:i1]
        d[:] = np.triu(d) + np.triu(d, 1).T


def ease_weights(gram: np.ndarray, regularization: float) -> np.ndarray:
    """B = I - P diag(1/diag(P)) with P = (gram + reg I)^-1; overwrites `gram` (float32, C order)."""
    n = gram.shape[0]
    gram[np.diag_indices(n)] += np.float32(regularization)
    # gram is symmetric: its transpose is the Fortran-ordered view LAPACK wants, no copy needed
    chol, info = lapack.spotrf(gram.T, lower=0, overwrite_a=1, clean=0)
    if info != 0:
        raise DataError(f"model 'ease': X^T X + regularization*I is not positive definite (LAPACK info {info})")
    del gram
    inv, info = lapack.spotri(chol, lower=0, overwrite_c=1)
    if info != 0:
        raise DataError(f"model 'ease': cannot invert X^T X + regularization*I (LAPACK info {info})")
    del chol
    _symmetrize_upper(inv)  # spotri fills the upper triangle only
    p = inv.T if inv.T.flags.c_contiguous else np.ascontiguousarray(inv)  # symmetric: same values
    del inv
    diag = np.diag(p).copy()
    p /= -diag[None, :]
    p[np.diag_indices(n)] = 0.0
    return p


@register
class EASE(ItemToItemRecommender):
    name = "ease"
    Config = EASEConfig

    def _fit(self, train: Interactions, catalog: ItemCatalog | None, validation: Any) -> None:
        cfg = self.config
        if train.n_items > cfg.max_items:
            raise DataError(
                f"model 'ease': {train.n_items} items exceed max_items={cfg.max_items} "
                f"(a dense {train.n_items}^2 float32 matrix needs {4 * train.n_items**2 / 1e9:.1f} GB)")
        x = train.to_csr(weighted=True)
        with blas_threads(cfg.num_threads):
            # the dense Gram matrix (n_items, n_items) is overwritten in place by the solve
            self.weights = ease_weights(np.ascontiguousarray((x.T @ x).toarray(), dtype=np.float32),
                                        cfg.regularization)

    def _item_weights(self) -> np.ndarray:
        return self.weights

    def _state(self) -> dict[str, np.ndarray]:
        return {"weights": self.weights}

    def _set_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        self.weights = arrays["weights"]
