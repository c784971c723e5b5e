"""Most-popular baseline: items ranked by (weighted) interaction count, optionally per category.

With `per_category`, a query's scores favour the categories of its recent history: the score is
popularity within the category of the history's items, with global popularity as the tie-breaker.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from shoprec.data import Interactions, ItemCatalog
from shoprec.errors import ConfigError
from shoprec.models.base import Query, Recommender, register


@dataclass(frozen=True)
class PopularConfig:
    weighted: bool = False  # count events by their weight instead of 1 each
    per_category: bool = False  # boost items of the categories in the query's history
    recent_days: float = 0.0  # > 0: count only events of the last N days before the newest event

    def __post_init__(self) -> None:
        if not self.recent_days >= 0:  # also rejects NaN
            raise ConfigError(f"parameter 'recent_days' of model 'popular' must be >= 0, got {self.recent_days}")


@register
class Popular(Recommender):
    name = "popular"
    Config = PopularConfig
    uses_history = True  # any query can be scored (a user is not needed)

    def can_score(self, query: Query) -> bool:
        self._require_fitted()
        return True

    def _fit(self, train: Interactions, catalog: ItemCatalog | None, validation: Any) -> None:
        cfg = self.config
        keep = np.ones(len(train), dtype=bool)
        if cfg.recent_days > 0 and len(train):
            keep = train.timestamp >= train.timestamp.max() - cfg.recent_days * 86400
        w = train.weight[keep] if cfg.weighted else np.ones(int(keep.sum()), dtype=np.float32)
        counts = np.bincount(train.item[keep], weights=w, minlength=train.n_items).astype(np.float32)
        # normalise to (0, 1] so that category boosts (integers) dominate and popularity breaks ties
        self.popularity = counts / max(float(counts.max()), 1.0)
        self.category = np.full(train.n_items, -1, dtype=np.int32)
        if cfg.per_category and catalog is not None:
            names: dict[str, int] = {}
            for i in range(train.n_items):
                c = catalog.category[i] if i < len(catalog.category) else ""
                if c:
                    self.category[i] = names.setdefault(c, len(names))

    def _score(self, queries: Sequence[Query]) -> np.ndarray:
        scores = np.tile(self.popularity, (len(queries), 1))
        if self.config.per_category:
            for r, q in enumerate(queries):
                cats = self.category[q.history[q.history < len(self.category)]]
                cats = cats[cats >= 0]
                if len(cats):
                    scores[r] += np.isin(self.category, cats).astype(np.float32)
        return scores

    def _state(self) -> dict[str, np.ndarray]:
        return {"popularity": self.popularity, "category": self.category}

    def _set_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        self.popularity = arrays["popularity"]
        self.category = arrays["category"]
