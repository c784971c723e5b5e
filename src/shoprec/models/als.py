"""Implicit-feedback ALS (Hu, Koren & Volinsky 2008), fitted by the `implicit` library on CPU.

    X      (n_users, n_items)  event weights (duplicates summed); confidence C = alpha * X
    fit:   user_factors (n_users, f), item_factors (n_items, f) by implicit's conjugate-gradient ALS
    score: u . item_factors^T  where u is the user factor, or, when the query has a history,
           implicit's exact least-squares recomputation of u from that history (recalculate_user),
           history items weighted by history_decay ** (steps before the newest event)

implicit's ALS gives the same factors for any `num_threads` (users and items are solved
independently), so the default uses every core and stays deterministic for a given seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
from implicit.cpu.als import AlternatingLeastSquares
from threadpoolctl import threadpool_limits

from shoprec.data import Interactions, ItemCatalog
from shoprec.models._implicit import FactorRecommender, at_least, in_range, positive
from shoprec.models.base import register


@dataclass(frozen=True)
class ALSConfig:
    """Defaults tuned on Beauty validation NDCG@10 (benchmarks/tune_classic.py)."""

    RENAMED: ClassVar[dict[str, str]] = {"factors": "embedding_size", "iterations": "epochs"}
    embedding_size: int = 128  # latent dimensions
    regularization: float = 10.0  # L2 weight on the factors
    alpha: float = 160.0  # confidence = alpha * event weight (implicit's convention, no "1 +")
    epochs: int = 10  # ALS sweeps
    history_decay: float = 0.2  # fold-in weight of a history item j steps before the newest one: decay**j
    num_threads: int = 0  # implicit's threads (0: all cores; results do not depend on it)
    seed: int = 0  # seeds the initial factors

    def __post_init__(self) -> None:
        at_least("als", "embedding_size", self.embedding_size, 1)
        at_least("als", "regularization", self.regularization, 0.0)
        positive("als", "alpha", self.alpha)
        at_least("als", "epochs", self.epochs, 1)
        in_range("als", "history_decay", self.history_decay, 0.0, 1.0)
        at_least("als", "num_threads", self.num_threads, 0)


def _implicit_als(cfg: ALSConfig) -> AlternatingLeastSquares:
    with threadpool_limits(1, "blas"):  # implicit warns unless BLAS is single-threaded
        return AlternatingLeastSquares(
            factors=cfg.embedding_size, regularization=cfg.regularization, alpha=cfg.alpha, dtype=np.float32,
            iterations=cfg.epochs, num_threads=cfg.num_threads, random_state=cfg.seed)


@register
class ALS(FactorRecommender):
    name = "als"
    Config = ALSConfig

    def _fit(self, train: Interactions, catalog: ItemCatalog | None, validation: Any) -> None:
        self._als = _implicit_als(self.config)

        def log(iteration: int, seconds: float, loss: float | None) -> None:
            self.training_log.append({"iteration": iteration + 1, "seconds": round(seconds, 4)})

        with threadpool_limits(1, "blas"):
            self._als.fit(train.to_csr(weighted=True), show_progress=False, callback=log)
        self.user_factors = np.ascontiguousarray(self._als.user_factors, dtype=np.float32)
        self.item_factors = np.ascontiguousarray(self._als.item_factors, dtype=np.float32)

    def _fold_in(self, history: sp.csr_matrix) -> np.ndarray:
        # implicit's exact Cholesky solve: (Y^T Y + Y^T (C_u - I) Y + reg I) u = Y^T C_u p_u
        return np.asarray(self._als.recalculate_user(np.arange(history.shape[0]), history), dtype=np.float32)

    def _set_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        super()._set_state(arrays, meta)
        self._als = _implicit_als(self.config)
        self._als.user_factors = self.user_factors
        self._als.item_factors = self.item_factors
