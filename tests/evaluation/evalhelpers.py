"""Tiny in-test models and data for the evaluation harness tests."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from shoprec.data import IdMap, Interactions, ItemCatalog
from shoprec.models.base import Query, Recommender


@dataclass(frozen=True)
class NoConfig:
    pass


class Recorder(Recommender):
    """Scores from a function of the queries; remembers what fit and score received."""

    name = "recorder"
    Config = NoConfig
    uses_history = True

    def __init__(self, score_fn: Any = None, rate_fn: Any = None) -> None:
        super().__init__()
        self.score_fn = score_fn
        self.rate_fn = rate_fn
        self.seen_train: Interactions | None = None
        self.seen_validation: Any = None
        self.seen_queries: list[Query] = []
        self.validation_metrics: dict[str, float] | None = None

    def _fit(self, train: Interactions, catalog: ItemCatalog | None, validation: Any) -> None:
        self.seen_train, self.seen_validation = train, validation
        self.training_log.append({"epoch": 1, "loss": 1.0})
        self.training_log.append({"epoch": 2, "loss": 0.5})
        if validation is not None:
            self.validation_metrics = validation.evaluate(self)

    def _score(self, queries: Sequence[Query]) -> np.ndarray:
        self.seen_queries.extend(queries)
        if self.score_fn is None:
            return np.zeros((len(queries), self.n_items), dtype=np.float32)
        return np.stack([self.score_fn(q, self.n_items) for q in queries]).astype(np.float32)

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        return np.array([self.rate_fn(int(u), int(i)) for u, i in zip(users, items, strict=True)])

    def _state(self) -> dict[str, np.ndarray]:
        return {}

    def _set_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        pass


def sequences_data(seqs: dict[str, list[str]], *, start: int = 1000) -> Interactions:
    """Interactions from per-user item sequences (time = position, users interleaved)."""
    users, items, times = [], [], []
    for u, seq in seqs.items():
        for t, item in enumerate(seq):
            users.append(u)
            items.append(item)
            times.append(start + t)
    return Interactions.from_ids(users, items, timestamp=times)


def random_data(n_users: int = 60, n_items: int = 30, n_events: int = 600, seed: int = 0) -> Interactions:
    rng = np.random.default_rng(seed)
    return Interactions(user=rng.integers(0, n_users, n_events), item=rng.integers(0, n_items, n_events),
                        users=IdMap(f"u{i}" for i in range(n_users)), items=IdMap(f"i{i}" for i in range(n_items)),
                        timestamp=rng.integers(0, 10_000, n_events),
                        value=rng.integers(1, 6, n_events).astype(np.float32))


class ItemMean(Recorder):
    """Rating baseline: an item's mean training rating, shrunk towards the global mean by `shrink` ratings."""

    name = "item-mean"

    def __init__(self, shrink: float = 5.0) -> None:
        super().__init__()
        self.shrink = shrink

    def _fit(self, train: Interactions, catalog: ItemCatalog | None, validation: Any) -> None:
        self.mu = float(train.value.mean())
        sums = np.bincount(train.item, weights=train.value - self.mu, minlength=train.n_items)
        counts = np.bincount(train.item, minlength=train.n_items)
        self.bias = sums / (counts + self.shrink)

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        return self.mu + self.bias[items]
