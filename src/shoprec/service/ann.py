"""Approximate nearest-neighbour candidates for large catalogs (faiss), with exact re-scoring.

For a model whose scores are inner products (score = query vector . item vector: ALS, BPR and any model
with `user_vectors(queries)` and `item_factors`, see shoprec.models.vectors), an inverted-file index over the
item vectors returns `n` candidates per query; their exact scores go into the shared ranking path (`ranking.top_k` with
`candidates`), so filters and ordering rules are the same as for a full scoring. Models without such
vectors are scored in full. faiss is optional: without it every catalog is scored in full.

Maximum inner product is turned into nearest-neighbour search (Bachrach et al. 2014): every item vector
gets one extra coordinate sqrt(M^2 - |x|^2) (M the largest norm) so that all items have norm M, and a
query gets 0 there; inner products are unchanged and the IVF cells, trained by k-means on equal-norm
vectors, group items that score alike. IVF-Flat: nlist = 4 * sqrt(n_items) cells trained on a seeded
sample; `nprobe` cells are visited per query (the speed/recall trade-off; benchmarks/serving_ann.py
measures recall@20 against exact scoring).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from shoprec.errors import ConfigError

__all__ = ["AnnConfig", "AnnIndex", "augment_items", "exact_top", "faiss_available", "recall_at"]
log = logging.getLogger(__name__)


def faiss_available() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass(frozen=True)
class AnnConfig:
    nprobe: int = 64  # inverted lists visited per query
    train_size: int = 100_000  # item vectors sampled to train the coarse quantiser (at least 40 per cell)
    seed: int = 0
    threads: int = 1  # faiss threads per search (the server's workers run requests in parallel)

    def __post_init__(self) -> None:
        if self.nprobe < 1 or self.train_size < 1 or self.threads < 1:
            raise ConfigError(f"ANN settings must be positive: {self}")


class AnnIndex:
    """Inner-product IVF-Flat index over item vectors (row i = item index i)."""

    def __init__(self, vectors: np.ndarray, config: AnnConfig | None = None) -> None:
        import faiss

        self.config = config or AnnConfig()
        x = augment_items(np.asarray(vectors, dtype=np.float32))  # (n_items, d + 1), all of norm M
        n, d = x.shape
        self.nlist = max(1, min(int(4 * math.sqrt(n)), n // 39 or 1))  # faiss wants >= 39 points per cell
        quantizer = faiss.IndexFlatIP(d)
        self.index = faiss.IndexIVFFlat(quantizer, d, self.nlist, faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(self.config.seed)
        size = min(n, max(self.config.train_size, 40 * self.nlist))  # faiss asks for >= 39 points per cell
        sample = x[rng.choice(n, size=size, replace=False)]
        self.index.cp.seed = self.config.seed
        self.index.train(sample)
        self.index.add(x)
        self.index.nprobe = min(self.config.nprobe, self.nlist)
        self.n_items = n

    def search(self, queries: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(item indices (q, n) with -1 for missing, inner products (q, n)), best first."""
        import faiss

        faiss.omp_set_num_threads(self.config.threads)
        q = np.asarray(queries, dtype=np.float32)
        q = np.ascontiguousarray(np.hstack([q, np.zeros((len(q), 1), dtype=np.float32)]))  # (q, d + 1)
        scores, idx = self.index.search(q, min(n, self.n_items))
        return idx.astype(np.int64), scores


def augment_items(x: np.ndarray) -> np.ndarray:
    """(n, d) -> (n, d + 1) with the extra coordinate sqrt(M^2 - |x|^2): every row has norm M."""
    norms2 = np.einsum("nd,nd->n", x, x)
    extra = np.sqrt(np.maximum(norms2.max(initial=0.0) - norms2, 0.0))
    return np.ascontiguousarray(np.hstack([x, extra[:, None]]), dtype=np.float32)


def exact_top(queries: np.ndarray, vectors: np.ndarray, n: int) -> np.ndarray:
    """Exact top-n item indices by inner product through ranking.top_k (the reference for recall)."""
    from shoprec.ranking import top_k

    idx, _ = top_k(queries @ vectors.T, n)
    return idx.astype(np.int64)


def recall_at(approx: np.ndarray, exact: np.ndarray) -> float:
    """Mean share of each row's exact top-n found in the approximate top-n."""
    hits = [len(set(a[a >= 0].tolist()) & set(e.tolist())) / len(e) for a, e in zip(approx, exact, strict=True)]
    return float(np.mean(hits)) if hits else 0.0
