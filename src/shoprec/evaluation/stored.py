"""A stored model evaluated on newer data: `Reindexed(model, users, items)` is the model seen through the
evaluated data's id maps, so the shared ranking path (evaluation.engine) can score it beside a model fitted on
that data, on the same task.

A stored model has its own user and item indices (those of the data it was trained on). Queries are
translated into them (a user it does not know becomes anonymous, history items it does not know are dropped
with their event types and timestamps) and its scores are spread back over the evaluated items; an item the
model does not know scores -inf: it is never recommended, and as a target it is a miss (a model trained on
newer data would know it: that is part of what the comparison measures).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from shoprec.data import IdMap, Interactions, ItemCatalog
from shoprec.errors import DataError
from shoprec.models.base import Query, RankingValidation, RatingValidation, Recommender


@dataclass(frozen=True)
class _NoConfig:
    """Reindexed has no parameters of its own."""


class Reindexed(Recommender):
    """A fitted model behind the evaluated data's user and item indices (scores only)."""

    name = "stored"
    Config = _NoConfig

    def __init__(self, model: Recommender, users: IdMap, items: IdMap) -> None:
        super().__init__(_NoConfig())
        if model.users is None or model.items is None:
            raise DataError(f"model {model.name!r} is not fitted")
        self.inner = model
        self.users, self.items = users, items
        self.training_log, self.fit_seconds = list(model.training_log), model.fit_seconds
        self._user = model.users.lookup(users.to_list()).astype(np.int64)  # data user -> model user (-1)
        self._item = model.items.lookup(items.to_list()).astype(np.int64)  # data item -> model item (-1)
        self._known = np.flatnonzero(self._item >= 0)

    @property
    def known_items(self) -> int:
        """How many of the evaluated items the stored model knows."""
        return len(self._known)

    def translate(self, query: Query) -> Query:
        """The query in the stored model's indices."""
        user = None
        if query.user is not None and 0 <= query.user < len(self._user) and self._user[query.user] >= 0:
            user = int(self._user[query.user])
        history = np.asarray(query.history, dtype=np.int64)
        mapped = self._item[history] if len(history) else history
        keep = mapped >= 0
        return Query(user=user, history=mapped[keep].astype(np.int32),
                     event_types=None if query.event_types is None else np.asarray(query.event_types)[keep],
                     timestamps=None if query.timestamps is None else np.asarray(query.timestamps)[keep])

    def can_score(self, query: Query) -> bool:
        return self.inner.can_score(self.translate(query))

    def _score(self, queries: Sequence[Query]) -> np.ndarray:
        inner = self.inner.score([self.translate(q) for q in queries])
        out = np.full((len(queries), len(self._item)), -np.inf, dtype=np.float32)
        out[:, self._known] = inner[:, self._item[self._known]]
        return out

    def _fit(self, train: Interactions, catalog: ItemCatalog | None,
             validation: RankingValidation | RatingValidation | None) -> None:
        raise DataError("a stored model seen through other id maps is evaluated, not fitted")

    def _state(self) -> dict[str, np.ndarray]:
        raise DataError("a reindexed view of a stored model is not saved")

    def _set_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        raise DataError("a reindexed view of a stored model is not loaded")
