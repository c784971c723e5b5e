"""Bayesian personalised ranking (Rendle et al. 2009), fitted by the `implicit` library on CPU.

    fit:   user_factors (n_users, f+1), item_factors (n_items, f+1) by implicit's SGD on
           log sigmoid(u . (y_pos - y_neg)); the last item column is an item bias, the user's is 1
    score: u . item_factors^T  where u is the user factor, or, when the query has a history, a
           user vector recomputed from that history (fold-in, below)

Fold-in: the same BPR SGD restricted to the user vector, item factors frozen, from u = 0:
step t takes the history item t mod len(history) (weighted by history_decay ** steps before the
newest event) against `fold_in_negatives` items drawn from a generator seeded by `seed` and t
alone, so a query's vector depends only on its history, never on the other queries of a batch.

implicit's BPR is lock-free (hogwild) with several threads and then not reproducible: the default
num_threads=1 is deterministic for a given seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
from implicit.cpu.bpr import BayesianPersonalizedRanking
from scipy.special import expit
from threadpoolctl import threadpool_limits

from shoprec.data import Interactions, ItemCatalog
from shoprec.models._implicit import FactorRecommender, at_least, in_range, positive
from shoprec.models.base import register


@dataclass(frozen=True)
class BPRConfig:
    """Defaults tuned on Beauty validation NDCG@10 (benchmarks/tune_classic.py)."""

    RENAMED: ClassVar[dict[str, str]] = {"factors": "embedding_size", "iterations": "epochs"}
    embedding_size: int = 128  # latent dimensions (plus one item-bias column)
    learning_rate: float = 0.1  # SGD step, for the fit and the fold-in
    regularization: float = 0.01  # L2 weight on the factors
    epochs: int = 600  # passes over the training events
    fold_in_steps: int = 200  # SGD steps of a history fold-in
    fold_in_negatives: int = 4  # negatives per fold-in step (shared by the queries of a batch)
    history_decay: float = 0.3  # fold-in weight of a history item j steps before the newest one: decay**j
    num_threads: int = 1  # implicit's threads; > 1 is faster but not reproducible (hogwild SGD)
    seed: int = 0  # seeds the initial factors, the training samples and the fold-in negatives

    def __post_init__(self) -> None:
        at_least("bpr", "embedding_size", self.embedding_size, 1)
        positive("bpr", "learning_rate", self.learning_rate)
        at_least("bpr", "regularization", self.regularization, 0.0)
        at_least("bpr", "epochs", self.epochs, 1)
        at_least("bpr", "fold_in_steps", self.fold_in_steps, 1)
        at_least("bpr", "fold_in_negatives", self.fold_in_negatives, 1)
        in_range("bpr", "history_decay", self.history_decay, 0.0, 1.0)
        at_least("bpr", "num_threads", self.num_threads, 0)


@register
class BPR(FactorRecommender):
    name = "bpr"
    Config = BPRConfig
    fold_in_cells = 50_000_000  # queries x items cells of the dense history mask of one fold-in batch

    def _fit(self, train: Interactions, catalog: ItemCatalog | None, validation: Any) -> None:
        cfg = self.config
        with threadpool_limits(1, "blas"):  # implicit warns unless BLAS is single-threaded
            bpr = BayesianPersonalizedRanking(
                factors=cfg.embedding_size, learning_rate=cfg.learning_rate, regularization=cfg.regularization,
                dtype=np.float32, iterations=cfg.epochs, num_threads=cfg.num_threads, random_state=cfg.seed)
            bpr.fit(train.to_csr(weighted=True), show_progress=False)
        self.user_factors = np.ascontiguousarray(bpr.user_factors, dtype=np.float32)  # (n_users, f+1)
        self.item_factors = np.ascontiguousarray(bpr.item_factors, dtype=np.float32)  # (n_items, f+1)

    def _fold_in(self, history: sp.csr_matrix) -> np.ndarray:
        batch = max(1, min(4096, self.fold_in_cells // self.n_items))
        with threadpool_limits(1, "blas"):  # the step's products are tiny: threads only add overhead
            parts = [self._fold_in_batch(history[s:s + batch]) for s in range(0, history.shape[0], batch)]
        return np.concatenate(parts)

    def _fold_in_batch(self, history: sp.csr_matrix) -> np.ndarray:
        cfg = self.config
        y = self.item_factors  # (n_items, f+1)
        n, lens = history.shape[0], np.diff(history.indptr)
        seen = history.toarray() > 0  # (n, n_items): negatives drawn from the history are skipped
        negatives = np.random.default_rng(cfg.seed).integers(0, len(y), size=(cfg.fold_in_steps, cfg.fold_in_negatives))
        u = np.zeros((n, y.shape[1]), dtype=np.float32)
        u[:, -1] = 1.0  # the bias coordinate stays 1
        rows = np.arange(n)[:, None]
        k = cfg.fold_in_negatives
        for t in range(cfg.fold_in_steps):
            at = history.indptr[:-1] + t % lens
            pos, weight = history.indices[at], history.data[at]  # (n,)
            y_pos, y_neg = y[pos], y[negatives[t]]  # (n, f+1), (k, f+1)
            x = np.einsum("nf,nf->n", u, y_pos)[:, None] - u @ y_neg.T  # (n, k) pairwise margins
            g = expit(-x) * weight[:, None] * ~seen[rows, negatives[t]]  # (n, k) d log sigmoid(x) / dx
            grad = y_pos * g.sum(axis=1, keepdims=True)  # (n, f+1)
            grad -= g @ y_neg
            grad -= (cfg.regularization * k) * u
            grad[:, -1] = 0.0
            grad *= cfg.learning_rate / k
            u += grad
        return u
