"""Recommendations: live history -> model.score -> ranking.top_k -> business filters -> reasons.

The fallback chain fills a list level by level, each level ranking only the items the earlier levels
did not place, through the shared `ranking.top_k` with the filtered-out items as `exclude`:

1. personal: the active model, for a user it knows (its query also carries the live history);
2. session: the active model from the live history alone (a new user, an anonymous visitor);
3. popular_category: popularity within the context's category (the `category` filter, else the
   category of the newest history item);
4. popular: popularity over the whole catalog (every servable item has a score here, so a list is
   never empty while the filters leave any item).

Filters: servable (available, not deleted), category (prefix path), price range, the `exclude`
list, the user's purchases (unless their category is repurchasable), disliked items and, unless
`include_seen`, the items of the live history. Each list is stored under a recommendation_id;
pages are slices of it, so paging never repeats an item.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy.engine import Engine

from shoprec.errors import DataError
from shoprec.service.catalog import CatalogView, CatalogViews
from shoprec.service.config import ServingConfig
from shoprec.service.errors import NotFound
from shoprec.service.models import ServedModel, ServedModels
from shoprec.service.platform import PlatformService
from shoprec.service.reclog import RecommendationLog
from shoprec.service.state import UserState, UserStates
from shoprec.storage import storage_errors
from shoprec.storage.serving import ServingRepo

BECAUSE = 3  # history items named in a personal/session reason


@dataclass(frozen=True)
class Filters:
    category: str | None = None
    min_price: float | None = None
    max_price: float | None = None
    exclude: tuple[str, ...] = ()
    include_seen: bool = False

    def __post_init__(self) -> None:
        for name in ("min_price", "max_price"):
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                raise DataError(f"{name} must be a finite number, got {value}")
        if self.min_price is not None and self.max_price is not None and self.min_price > self.max_price:
            raise DataError(f"min_price ({self.min_price}) is above max_price ({self.max_price})")


@dataclass
class Ranked:
    """A ranked list: item ids, scores and per-item reasons, in served order."""

    items: list[str] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    reasons: list[dict[str, Any]] = field(default_factory=list)

    def to_rows(self) -> list[list[Any]]:
        return [[i, s, r] for i, s, r in zip(self.items, self.scores, self.reasons, strict=True)]

    @classmethod
    def from_rows(cls, rows: Sequence[Sequence[Any]]) -> Ranked:
        return cls([r[0] for r in rows], [float(r[1]) for r in rows], [dict(r[2]) for r in rows])


@dataclass(frozen=True)
class Level:
    """One level of the chain: scores over the catalog (-inf: no opinion) and the reason it gives."""

    reason: dict[str, Any]
    scores: np.ndarray


def rank_chain(levels: Sequence[Level], blocked: np.ndarray, n: int, view: CatalogView) -> Ranked:
    """Fill up to n items level by level with ranking.top_k; `blocked` items never appear."""
    from shoprec.ranking import top_k

    out = Ranked()
    taken = blocked.copy()
    for level in levels:
        need = min(n - len(out.items), int((~taken).sum()))
        if need <= 0:
            break
        idx, vals = top_k(level.scores, need, exclude=[np.flatnonzero(taken)])
        for i, v in zip(idx[0].tolist(), vals[0].tolist(), strict=True):
            if i < 0:
                break
            out.items.append(view.items.external(i))
            out.scores.append(round(float(v), 6))
            out.reasons.append(level.reason)
            taken[i] = True
    return out


class RecommendService:
    def __init__(self, engine: Engine, config: ServingConfig, platforms: PlatformService, users: UserStates,
                 catalogs: CatalogViews, models: ServedModels, log: RecommendationLog) -> None:
        self.engine, self.config = engine, config
        self.platforms, self.users, self.catalogs, self.models, self.log = platforms, users, catalogs, models, log

    # ---------------------------------------------------------------- public
    def recommend(self, platform: str, user: str, k: int, offset: int = 0, filters: Filters | None = None,
                  recommendation_id: str | None = None) -> dict[str, Any]:
        self._check_page(k, offset)
        if recommendation_id:
            return self._page(platform, recommendation_id, k, offset, user)
        filters = filters or Filters()
        state = self.users.get(platform, user)
        view = self.catalogs.get(platform)
        served = self.models.get(platform)
        blocked = self._blocked(view, filters, state)
        n = min(self.config.list_depth, max(offset + k, self.config.page_depth))
        levels = self._levels(view, served, state.history, filters.category, user_id=user, blocked=blocked, n=n)
        ranked = rank_chain(levels, blocked, n, view)
        return self._store(platform, user, served, ranked, k, offset)

    def session(self, platform: str, history: Sequence[str], k: int, filters: Filters | None = None
                ) -> dict[str, Any]:
        """Recommendations for an anonymous visitor from the items of the current session (oldest first)."""
        self._check_page(k, 0)
        filters = filters or Filters()
        view = self.catalogs.get(platform)
        served = self.models.get(platform)
        state = UserState(history=tuple(history))
        blocked = self._blocked(view, filters, state)
        levels = self._levels(view, served, state.history, filters.category, user_id=None, blocked=blocked, n=k)
        ranked = rank_chain(levels, blocked, k, view)
        return self._store(platform, None, served, ranked, k, 0)

    def similar(self, platform: str, item_id: str, k: int) -> dict[str, Any]:
        """Items like `item_id`: the model's item-to-item scores, then text similarity (works for a new
        item), then popular in its category, then popular."""
        self._check_page(k, 0)
        view = self.catalogs.get(platform)
        i = view.items.get(item_id)
        if i is None:
            raise NotFound(f"no item {item_id!r} on platform {platform!r}")
        served = self.models.get(platform)
        levels: list[Level] = []
        blocked = ~view.servable
        blocked[i] = True
        session = self._model_level(view, served, None, [i], "item_to_item", blocked, k)
        if session is not None:
            levels.append(session)
        if view.texts[i]:
            vectors = view.text_vectors()
            sims = (vectors @ vectors[i]).astype(np.float32)
            sims[~np.any(vectors != 0, axis=1)] = -np.inf
            levels.append(Level({"source": "content", "similar_to": item_id}, sims[None, :]))
        levels.extend(self._popular_levels(view, view.category[i] or None))
        ranked = rank_chain(levels, blocked, k, view)
        return self._store(platform, None, served, ranked, k, 0)

    def feedback(self, platform: str, recommendation_id: str, item_id: str, feedback_type: str) -> dict[str, Any]:
        """Record feedback on a served item; returns the event to store for the recommendation's user (or None)."""
        log = self._log(platform, recommendation_id)
        if item_id not in {row[0] for row in log["items"]}:
            raise DataError(f"item {item_id!r} was not part of recommendation {recommendation_id!r} (field item_id)")
        now = time.time()
        with storage_errors(self.engine, "record feedback"), self.engine.begin() as conn:
            ServingRepo(conn, self.platforms.platform_id(platform)).add_feedback(
                recommendation_id, item_id, feedback_type, now)
        return {"user_id": log["user_external_id"], "timestamp": now}

    # ---------------------------------------------------------------- pieces
    def _check_page(self, k: int, offset: int) -> None:
        if not 1 <= k <= self.config.max_k:
            raise DataError(f"k must be between 1 and {self.config.max_k}, got {k}")
        if offset < 0 or offset + k > self.config.list_depth:
            raise DataError(f"offset + k must be at most {self.config.list_depth}, got offset {offset} and k {k}")

    def _blocked(self, view: CatalogView, f: Filters, state: UserState) -> np.ndarray:
        blocked = ~view.servable
        if f.category:
            blocked |= ~view.category_mask(f.category)
        if f.min_price is not None:
            blocked |= ~(view.price >= f.min_price)
        if f.max_price is not None:
            blocked |= ~(view.price <= f.max_price)
        never = set(f.exclude) | set(state.disliked)
        never |= {i for i in state.purchased if not self._repurchasable(view, i)}
        if not f.include_seen:
            never |= set(state.history)
        idx = view.items.lookup(never)
        blocked[idx[idx >= 0]] = True
        return blocked

    def _repurchasable(self, view: CatalogView, item: str) -> bool:
        i = view.items.get(item)
        if i is None or not self.config.repurchasable:
            return False
        cat = str(view.category[i])
        return any(cat == c or cat.startswith(c + " > ") for c in self.config.repurchasable)

    def _levels(self, view: CatalogView, served: ServedModel | None, history: Sequence[str],
                category: str | None, user_id: str | None, blocked: np.ndarray, n: int) -> list[Level]:
        hist = view.items.lookup(history)
        hist = hist[hist >= 0]
        levels: list[Level] = []
        user_index = None
        if served is not None and user_id is not None and served.model.users is not None:
            user_index = served.model.users.get(user_id)
        if user_index is not None:
            level = self._model_level(view, served, user_index, hist, "personal", blocked, n)
            if level is not None:
                levels.append(level)
        if not levels and len(hist):
            level = self._model_level(view, served, None, hist, "session", blocked, n)
            if level is not None:
                levels.append(level)
        context = category or (str(view.category[hist[-1]]) if len(hist) and view.category[hist[-1]] else None)
        levels.extend(self._popular_levels(view, context))
        return levels

    def _model_level(self, view: CatalogView, served: ServedModel | None, user: int | None,
                     history: Sequence[int] | np.ndarray, source: str, blocked: np.ndarray, n: int) -> Level | None:
        """The model's scores mapped into the catalog, or None when it cannot answer this query.
        With an ANN index, only its candidates are scored (exactly), unless the filters leave fewer than n."""
        if served is None:
            return None
        from shoprec.models.base import Query

        to_catalog, to_model = served.index_maps(view)
        hist_catalog = np.asarray(history, dtype=np.int64)
        hist_model = to_model[hist_catalog] if len(hist_catalog) else np.zeros(0, dtype=np.int64)
        keep = hist_model >= 0
        query = Query(user=user, history=hist_model[keep].astype(np.int32))
        if not served.model.can_score(query):
            return None
        recent = list(dict.fromkeys(hist_catalog[keep][::-1].tolist()))[:BECAUSE]  # newest first, distinct
        reason: dict[str, Any] = {"source": source, "model": served.name, "model_id": served.model_id}
        if recent:
            reason["because"] = view.items.externals(recent)
        scores = np.full(len(view), -np.inf, dtype=np.float32)
        if served.ann is not None and self._ann_scores(served, query, to_catalog, blocked, n, scores):
            return Level({**reason, "candidates": "ann"}, scores[None, :])
        model_scores = served.model.score([query])[0]
        ok = to_catalog >= 0
        scores[to_catalog[ok]] = np.nan_to_num(model_scores[ok], nan=-np.inf)
        return Level(reason, scores[None, :])

    def _ann_scores(self, served: ServedModel, query: Any, to_catalog: np.ndarray, blocked: np.ndarray, n: int,
                    out: np.ndarray) -> bool:
        """Exact scores of the ANN candidates written into `out`; False when the filters leave fewer than n."""
        from shoprec.service.ann import vector_scorer

        scorer = vector_scorer(served.model)
        if scorer is None or served.ann is None:
            return False
        user_vectors, item_vectors = scorer
        q = user_vectors([query])  # (1, d)
        cand, _ = served.ann.search(q, self.config.ann_candidates)
        cand = cand[0][cand[0] >= 0]
        cat = to_catalog[cand]
        cand, cat = cand[cat >= 0], cat[cat >= 0]
        if int((~blocked[cat]).sum()) < n:
            return False
        out[cat] = (item_vectors[cand] @ q[0]).astype(np.float32)
        return True

    @staticmethod
    def _popular_levels(view: CatalogView, category: str | None) -> list[Level]:
        levels = []
        if category:
            scores = np.where(view.category_mask(category), view.popularity, -np.inf).astype(np.float32)
            levels.append(Level({"source": "popular_category", "category": category}, scores[None, :]))
        levels.append(Level({"source": "popular"}, view.popularity[None, :]))
        return levels

    # ---------------------------------------------------------------- the list store
    def _store(self, platform: str, user: str | None, served: ServedModel | None, ranked: Ranked, k: int,
               offset: int) -> dict[str, Any]:
        entry = {"recommendation_id": uuid.uuid4().hex, "user_external_id": user,
                 "model": served.name if served is not None else None, "items": ranked.to_rows()}
        self.log.add(platform, entry)
        return self._answer(entry, k, offset)

    def _log(self, platform: str, rec_id: str) -> dict[str, Any]:
        return self.log.get(platform, rec_id)

    def _page(self, platform: str, rec_id: str, k: int, offset: int, user: str) -> dict[str, Any]:
        log = self._log(platform, rec_id)
        if log["user_external_id"] != user:
            raise NotFound(f"recommendation {rec_id!r} was not made for user {user!r}")
        return self._answer(log, k, offset)

    @staticmethod
    def _answer(log: dict[str, Any], k: int, offset: int) -> dict[str, Any]:
        rows = log["items"][offset:offset + k]
        return {"recommendation_id": log["recommendation_id"], "model": log["model"], "offset": offset,
                "items": [{"item_id": r[0], "score": r[1], "reason": r[2]} for r in rows]}
