"""Leave-one-out attribution: how much an item's score drops when one history item is removed.

For a query (user, history) and target items T, the attribution of history item h to target t is

    drop[h, t] = score(query)[t] - score(query without every occurrence of h)[t]

computed with ONE `model.score` call over 1 + len(candidates) queries (the full query first), so it
is the model's own arithmetic, not a decoration. Only the newest ATTRIBUTION_HISTORY distinct items
are candidates (older ones stay in every query: they are context, not candidates), which bounds the
cost to (1 + 20) rows of scoring whatever the history length.

Inner-product models (`shoprec.models.vectors.InnerProductModel`: user_vectors + item_factors, as the ANN
path uses them) score only the target columns: (1 + 20) query vectors against k item vectors, whatever the
catalog size.

A removal that leaves the model with nothing to score from (e.g. itemknn with a one-item history)
counts as a drop to zero: the whole score is credited to that item (exact for the linear models,
whose empty-history score is 0).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from shoprec.models.base import Query, Recommender
from shoprec.models.vectors import history_scorer, vector_scorer
from shoprec.settings import ATTRIBUTION_HISTORY  # newest distinct history items considered as causes


@dataclass(frozen=True)
class Attribution:
    """candidates: history item indices (model space), newest first; drops: (n_candidates, n_targets);
    base: (n_targets,) scores of the full query."""

    candidates: np.ndarray
    drops: np.ndarray
    base: np.ndarray

    def top(self, n: int) -> tuple[list[list[int]], list[list[float]]]:
        """Per target, the positions in `candidates` of its n largest drops (ties: newest first) and those
        drops, largest first: ([n_targets][<= n], [n_targets][<= n]), vectorised over the targets."""
        order = np.argsort(-self.drops, axis=0, kind="stable")[:n]  # (<= n, n_targets)
        weights = np.round(np.take_along_axis(self.drops, order, axis=0), 6)
        return order.T.tolist(), weights.T.tolist()

    def ranked(self, target: int) -> list[tuple[int, float]]:
        """(history item, drop) of target column `target`, largest drop first (ties: newest first)."""
        col = self.drops[:, target]
        order = np.argsort(-col, kind="stable")
        return [(int(self.candidates[j]), float(col[j])) for j in order]


def without(query: Query, item: int) -> Query:
    """The query with every occurrence of `item` removed from its history (aligned arrays follow)."""
    keep = np.asarray(query.history) != item
    types = query.event_types[keep] if query.event_types is not None else None
    stamps = query.timestamps[keep] if query.timestamps is not None else None
    return replace(query, history=np.asarray(query.history)[keep], event_types=types, timestamps=stamps)


class LeaveOneOut:
    """The leave-one-out batch of one query, prepared once: [query, query without c1, ...] for the newest
    `cap` distinct history items c1, c2, ... For an inner-product model the batch's query vectors are
    computed here, once: `scores()` (the full query over the whole catalog, for the list itself) and
    `attribution(targets)` (for its explanations) then share them, so serving encodes the history once; for
    other models the batch is scored once, over the whole catalog, and both read those scores."""

    def __init__(self, model: Recommender, query: Query, cap: int = ATTRIBUTION_HISTORY) -> None:
        self.model, self.query = model, query
        history = np.asarray(query.history, dtype=np.int64)
        self.candidates = np.array(list(dict.fromkeys(history[::-1].tolist()))[:cap], dtype=np.int64)
        loo = [without(query, int(c)) for c in self.candidates]
        self.scorable = np.array([model.can_score(q) for q in loo], dtype=bool)
        self.batch = [query] + [q for q, ok in zip(loo, self.scorable, strict=True) if ok]
        self.vectors = vector_scorer(model)
        self.query_vectors = (np.asarray(self.vectors[0](self.batch), dtype=np.float32)
                              if self.vectors is not None else None)  # (1 + n_scorable, d)
        self.sparse = history_scorer(model) if self.vectors is not None else None
        # the full query's sparse part (1, n_items) CSR; the leave-one-out rows' only at the targets (attribution)
        self.history_part = self.sparse(self.batch[:1]) if self.sparse is not None else None
        self._batch_scores: np.ndarray | None = None  # (1 + n_scorable, n_items), other models, on first use

    def scores(self) -> np.ndarray:
        """(n_items,) scores of the full query: the model's own, from the shared vectors when it has them."""
        if self.query_vectors is None or self.vectors is None:
            return self._scored()[0]
        scores = self.query_vectors[0] @ self.vectors[1].T
        if self.history_part is not None:  # the sparse part beside the inner products (models.vectors)
            scores = scores + self.history_part[0].toarray()[0].astype(np.float32)
        return scores

    def _scored(self) -> np.ndarray:
        """The whole batch scored over the catalog: one `model.score` call, made once."""
        if self._batch_scores is None:
            self._batch_scores = self.model.score(self.batch)
        return self._batch_scores

    def attribution(self, targets: np.ndarray) -> Attribution:
        """Score drops of `targets` (model item indices) when each candidate is left out."""
        targets = np.asarray(targets, dtype=np.int64)
        if self.query_vectors is not None and self.vectors is not None:
            scores = self.query_vectors @ self.vectors[1][targets].T
            if self.sparse is not None:
                part = self.sparse(self.batch, targets)
                scores = scores + (part.toarray() if part is not None else 0.0)
        else:
            scores = self._scored()[:, targets]
        scores = scores.astype(np.float64)  # (1 + n_scorable, n_targets)
        base = scores[0]
        left = np.zeros((len(self.candidates), len(targets)), dtype=np.float64)  # unscorable: a drop to zero
        left[self.scorable] = scores[1:]
        drops = base[None, :] - left
        drops[~np.isfinite(drops)] = 0.0
        return Attribution(candidates=self.candidates, drops=drops, base=base)


def leave_one_out(model: Recommender, query: Query, targets: np.ndarray,
                  cap: int = ATTRIBUTION_HISTORY) -> Attribution:
    """Score drops of `targets` (model item indices) when each of the newest `cap` distinct history
    items is left out; one batched `model.score` call (or one batch of query vectors)."""
    return LeaveOneOut(model, query, cap).attribution(targets)
