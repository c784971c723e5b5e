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
`include_seen`, the items of the live history. Business rules (`Filters.rules`, combined with the platform's
saved defaults from shoprec.service.rules) are bound to the catalog once per list (shoprec.rules.Plan) and
rank every level of the chain (filter, boosts, caps, diversity, then pins). Each list is stored under a
recommendation_id;
pages are slices of it, so paging never repeats an item.

The ranking chain's mechanics are in shoprec.service.chain, the answers' types and the log entries they are
read from in shoprec.service.answers.

Reasons (shoprec.explain.Reason): each item's `reason` has "type" (history, popular_in_category,
similar_text, fallback_popular), "source" (the model name, "popularity" or "content") and "level"
(the chain level: personal, session, item_to_item, content, popular_category, popular). A model
level's history reasons are leave-one-out attributions of the placed items, one batched
model.score call per list. During a running experiment (ExperimentService) a user's list comes
from their variant's model and the answer names "experiment" and "variant".
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from shoprec.errors import DataError
from shoprec.explain import BECAUSE, Reason, fallback_reason, history_reasons, popular_in_category_reason
from shoprec.explain.attribution import LeaveOneOut
from shoprec.explain.reasons import similar_text_reason
from shoprec.privacy.keys import Privacy
from shoprec.rules import Plan, Rules, Vectors
from shoprec.service.answers import Explanation, FeedbackTarget, Recommendation, log_entry, page
from shoprec.service.catalog import CatalogView, CatalogViews
from shoprec.service.chain import Level, Ranked, popular_levels, rank_chain
from shoprec.service.config import ServingConfig
from shoprec.service.errors import NotFound
from shoprec.service.models import ServedModel, ServedModels
from shoprec.service.platform import PlatformService
from shoprec.service.queries import HistoryContext, history_context, known_context, make_query
from shoprec.service.reclog import RecommendationLog
from shoprec.service.rules import RulesService
from shoprec.service.scanned import ScannedLevel
from shoprec.service.state import UserState, UserStates
from shoprec.storage import Engine, storage_errors
from shoprec.storage.serving import ServingRepo

if TYPE_CHECKING:
    from shoprec.models.base import Query
    from shoprec.service.experiments import Assignment, ExperimentService

NARROW_FILTER_ITEMS = 100_000  # large catalogs: filters leaving at most this many items are scored exactly
__all__ = ["Filters", "HistoryContext", "ListStore", "RecommendService", "history_context", "known_context",
           "make_query"]


@dataclass(frozen=True)
class Filters:
    category: str | None = None
    min_price: float | None = None
    max_price: float | None = None
    exclude: tuple[str, ...] = ()
    include_seen: bool = False
    rules: Rules | None = None  # the request's business rules, combined with the platform's saved ones

    def __post_init__(self) -> None:
        for name in ("min_price", "max_price"):
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                raise DataError(f"{name} must be a finite number, got {value}")
        if self.min_price is not None and self.max_price is not None and self.min_price > self.max_price:
            raise DataError(f"min_price ({self.min_price}) is above max_price ({self.max_price})")


class ListStore(NamedTuple):
    """Where a RecommendService keeps its lists (`log`) and their feedback (`engine`, `platforms`)."""

    engine: Engine
    platforms: PlatformService
    log: RecommendationLog


class RecommendService:
    """Lists over a platform's user states, catalog view and served model (see the module doc).

    `engine`, `platforms` and `log` keep the served lists and their feedback (paging by recommendation_id,
    `feedback`, the list types of shoprec.service.lists: `list_store`). An in-process service that keeps nothing
    (shoprec.service.local.LocalRecommend, which overrides `_store`) passes None for the three; there, paging
    and feedback raise NotFound."""

    def __init__(self, engine: Engine | None, config: ServingConfig, platforms: PlatformService | None,
                 users: UserStates, catalogs: CatalogViews, models: ServedModels, log: RecommendationLog | None,
                 privacy: Privacy | None = None, experiments: ExperimentService | None = None,
                 rules: RulesService | None = None) -> None:
        self.engine, self.config = engine, config
        self.rules = rules
        self.platforms, self.users, self.catalogs, self.models, self.log = platforms, users, catalogs, models, log
        self.privacy = privacy or Privacy()
        self.experiments = experiments

    # ---------------------------------------------------------------- public
    def recommend(self, platform: str, user: str, k: int, offset: int = 0, filters: Filters | None = None,
                  recommendation_id: str | None = None) -> Recommendation:
        self._check_page(k, offset)
        user = self.privacy.user_id(platform, user)  # the id as stored (a pseudonym when pseudonymising)
        if recommendation_id:
            return self._page(platform, recommendation_id, k, offset, user)
        filters = filters or Filters()
        state = self.users.get(platform, user)
        view = self.catalogs.get(platform)
        served, assignment = self._served_for(platform, user)
        plan = self._plan(platform, view, served, filters.rules)
        blocked = self.blocked(view, filters, state)
        n = min(self.config.list_depth, max(offset + k, self.config.page_depth))
        levels = self.chain_levels(view, served, state.history, filters.category, user_id=user,
                                   blocked=_searched(blocked, plan), n=plan.search_depth(n) if plan else n,
                                   verbs=dict(zip(state.history, state.history_types, strict=True)),
                                   hctx=history_context(state.history_types, state.history_times), plan=plan)
        ranked = rank_chain(levels, blocked, n, view, plan)
        answer = self._store(platform, user, served, ranked, k, offset, assignment)
        if assignment is not None and self.experiments is not None:
            self.experiments.record_exposure(platform, assignment, answer.recommendation_id, user, answer.item_ids)
        return answer

    def explain(self, platform: str, user: str, item_id: str) -> Explanation:
        """Why `item_id` would be recommended to `user` (recommended or not): the leave-one-out history
        attribution of the user's model (their experiment variant's during an experiment), else the
        popularity fallback that would place it (a cold user: fallback_popular)."""
        view = self.catalogs.get(platform)
        i = view.items.get(item_id)
        if i is None:
            raise NotFound(f"no item {item_id!r} on platform {platform!r}")
        stored_user = self.privacy.user_id(platform, user)
        state = self.users.get(platform, stored_user)
        served, assignment = self._served_for(platform, stored_user)
        ids = view.items.lookup(state.history)
        hist = ids[ids >= 0]
        hctx = known_context(history_context(state.history_types, state.history_times), ids >= 0)
        model = served.name if served is not None else None
        experiment, variant = (assignment.experiment_id, assignment.variant) if assignment is not None else (None, None)
        found = self._model_query(view, served, stored_user, hist, hctx) if served is not None else None
        if served is not None and found is not None and served.index_maps(view)[1][i] >= 0:
            verbs = dict(zip(state.history, state.history_types, strict=True))
            reasons, scores = self._attribute(view, served, found[0], found[1], [i], verbs)
            return Explanation(user, item_id, model, round(scores[0], 6), reasons[0], experiment, variant)
        context = str(view.category[hist[-1]]) if len(hist) and view.category[hist[-1]] else None
        in_context = context is not None and bool(view.category_mask(context)[i])
        reason = popular_in_category_reason(context) if context and in_context else fallback_reason()
        reason = reason.at("popular_category" if in_context else "popular")
        return Explanation(user, item_id, model, round(float(view.popularity[i]), 6), reason, experiment, variant)

    def _served_for(self, platform: str, user: str) -> tuple[ServedModel | None, Assignment | None]:
        """The model serving `user`: their experiment variant's while one runs, else the active one."""
        assignment = self.experiments.assign(platform, user) if self.experiments is not None else None
        if assignment is not None:
            variant = self.models.get_by_id(platform, assignment.model_id)
            if variant is not None:
                return variant, assignment
        return self.models.get(platform), None

    def session(self, platform: str, history: Sequence[str], k: int, filters: Filters | None = None,
                types: Sequence[str] | None = None) -> Recommendation:
        """Recommendations for an anonymous visitor from the items of the current session (oldest first),
        with their event types when known (aligned with `history`)."""
        self._check_page(k, 0)
        filters = filters or Filters()
        view = self.catalogs.get(platform)
        served = self.models.get(platform)
        plan = self._plan(platform, view, served, filters.rules)
        state = UserState(history=tuple(history))
        blocked = self.blocked(view, filters, state)
        levels = self.chain_levels(view, served, state.history, filters.category, user_id=None,
                                   blocked=_searched(blocked, plan), n=plan.search_depth(k) if plan else k,
                                   hctx=history_context(types, None) if types is not None else None, plan=plan)
        ranked = rank_chain(levels, blocked, k, view, plan)
        return self._store(platform, None, served, ranked, k, 0)

    def similar(self, platform: str, item_id: str, k: int, rules: Rules | None = None) -> Recommendation:
        """Items like `item_id`: the model's item-to-item scores, then text similarity (works for a new
        item), then popular in its category, then popular; under the platform's saved rules and `rules`."""
        self._check_page(k, 0)
        view = self.catalogs.get(platform)
        i = view.items.get(item_id)
        if i is None:
            raise NotFound(f"no item {item_id!r} on platform {platform!r}")
        served = self.models.get(platform)
        plan = self._plan(platform, view, served, rules)
        levels: list[Level] = []
        blocked = ~view.servable
        blocked[i] = True
        session = self._model_level(view, served, None, [i], "item_to_item", _searched(blocked, plan),
                                    plan.search_depth(k) if plan else k, plan=plan)
        if session is not None:
            levels.append(session)
        if view.texts[i]:
            vectors = view.text_vectors()
            sims = (vectors @ vectors[i]).astype(np.float32)
            sims[~np.any(vectors != 0, axis=1)] = -np.inf
            levels.append(Level(similar_text_reason(item_id, view.titles[i]).at("content"), sims[None, :]))
        levels.extend(popular_levels(view, view.category[i] or None))
        ranked = rank_chain(levels, blocked, k, view, plan)
        return self._store(platform, None, served, ranked, k, 0)

    def feedback(self, platform: str, recommendation_id: str, item_id: str, feedback_type: str) -> FeedbackTarget:
        """Record feedback on a served item; returns whom (the list's stored user, None: anonymous) and when."""
        log = self._log(platform, recommendation_id)
        if item_id not in {row[0] for row in log["items"]}:
            raise DataError(f"item {item_id!r} was not part of recommendation {recommendation_id!r} (field item_id)")
        now = time.time()
        store = self.list_store()
        with storage_errors(store.engine, "record feedback"), store.engine.begin() as conn:
            ServingRepo(conn, store.platforms.platform_id(platform)).add_feedback(
                recommendation_id, item_id, feedback_type, now)
        return FeedbackTarget(log["user_external_id"], now)

    # ---------------------------------------------------------------- pieces
    def _plan(self, platform: str, view: CatalogView, served: ServedModel | None, request: Rules | None
              ) -> Plan | None:
        """The list's rules: the platform's saved defaults combined with the request's (whose pins must name
        known items), bound to the catalog; None when there are none (the plain path, no cost)."""
        saved = self.rules.get(platform).rules if self.rules is not None else Rules()
        if request is not None and request.pins:
            request.check_items(view.rule_table())
        rules = saved.combined(request or Rules())
        if rules.empty:
            return None
        return rules.bind(view.rule_table(), _item_vectors(view, served) if rules.diversity else None)

    def _check_page(self, k: int, offset: int) -> None:
        if not 1 <= k <= self.config.max_k:
            raise DataError(f"k must be between 1 and {self.config.max_k}, got {k}")
        if offset < 0 or offset + k > self.config.list_depth:
            raise DataError(f"offset + k must be at most {self.config.list_depth}, got offset {offset} and k {k}")

    def blocked(self, view: CatalogView, f: Filters, state: UserState) -> np.ndarray:
        """The items (a bool mask in catalog order) no level of a list may place, under filters `f` for a user in
        `state`: unservable, outside `f.category` or the price range, `f.exclude`, disliked, purchased (unless
        `repurchasable`) and, unless `f.include_seen`, the history's items. The list types
        (shoprec.service.lists) and the in-process service (shoprec.service.local) filter through it too."""
        blocked = ~view.servable
        if f.category:
            blocked |= ~view.category_mask(f.category)
        if f.min_price is not None:
            blocked |= ~(view.price >= f.min_price)
        if f.max_price is not None:
            blocked |= ~(view.price <= f.max_price)
        never = set(f.exclude) | set(state.disliked)
        never |= {i for i in state.purchased if not self.repurchasable(view, i)}
        if not f.include_seen:
            never |= set(state.history)
        idx = view.items.lookup(never)
        blocked[idx[idx >= 0]] = True
        return blocked

    def repurchasable(self, view: CatalogView, item: str) -> bool:
        """Whether `item` is in a repurchasable category (`serving.repurchasable`: one of them or below it),
        whose purchases stay recommendable; False for an item the view does not know."""
        i = view.items.get(item)
        if i is None or not self.config.repurchasable:
            return False
        cat = str(view.category[i])
        return any(cat == c or cat.startswith(c + " > ") for c in self.config.repurchasable)

    def chain_levels(self, view: CatalogView, served: ServedModel | None, history: Sequence[str],
                     category: str | None, user_id: str | None, blocked: np.ndarray, n: int,
                     verbs: dict[str, str] | None = None, hctx: HistoryContext | None = None,
                     plan: Plan | None = None) -> list[Level]:
        """The fallback chain of a history (item ids, oldest first): the model's personal level when it knows
        `user_id`, else its session level from the history, then popular in `category` (else in the newest history
        item's category), then popular. `blocked` and `n`: what the model's candidate search leaves out and how
        many items it must find; `verbs`: each history item's event type (for the reasons); `hctx`: event-type
        codes and timestamps aligned with `history` (what the model saw in training); `plan`: the list's rules
        (a scanned model level then holds every item they could place). The list types (shoprec.service.lists)
        build their chains on it."""
        ids = view.items.lookup(history)
        hist, hctx = ids[ids >= 0], known_context(hctx, ids >= 0)
        levels: list[Level] = []
        user_index = None
        if served is not None and user_id is not None and served.model.users is not None:
            user_index = served.model.users.get(user_id)
        if user_index is not None:
            level = self._model_level(view, served, user_index, hist, "personal", blocked, n, verbs, hctx, plan)
            if level is not None:
                levels.append(level)
        if not levels and len(hist):
            level = self._model_level(view, served, None, hist, "session", blocked, n, verbs, hctx, plan)
            if level is not None:
                levels.append(level)
        context = category or (str(view.category[hist[-1]]) if len(hist) and view.category[hist[-1]] else None)
        levels.extend(popular_levels(view, context))
        return levels

    def _model_level(self, view: CatalogView, served: ServedModel | None, user: int | None,
                     history: Sequence[int] | np.ndarray, level: str, blocked: np.ndarray, n: int,
                     verbs: dict[str, str] | None = None, context: HistoryContext | None = None,
                     plan: Plan | None = None) -> Level | None:
        """The model's scores mapped into the catalog, or None when it cannot answer this query; its
        placed items are explained by leave-one-out attribution (one batched score call).
        With an ANN index, only its candidates are scored (exactly), unless the filters leave fewer than n."""
        if served is None:
            return None

        to_catalog, to_model = served.index_maps(view)
        hist_catalog = np.asarray(history, dtype=np.int64)
        hist_model = to_model[hist_catalog] if len(hist_catalog) else np.zeros(0, dtype=np.int64)
        query = make_query(user, hist_model, context)
        if not served.model.can_score(query):
            return None
        via: str | None = None  # "ann" / "filtered": the model scored only these candidates
        loo: LeaveOneOut | None = None
        found = self._ann_scores(served, query, to_catalog, to_model, blocked, n) if served.ann is not None else None
        candidates: np.ndarray | None = None
        scanned: ScannedLevel | None = None
        if found is not None:  # exact scores of the ANN candidates (or of a narrow filter's items) only
            candidates, scores, via = found
        else:  # the list's scores and its explanations share one encoding of the history (LeaveOneOut)
            loo = LeaveOneOut(served.model, query, self.config.explain_history)
            encoded = loo

            def every_score() -> np.ndarray:  # the model's scores of the whole catalog (-inf: items it lacks)
                out = np.full(len(view), -np.inf, dtype=np.float32)
                ok = to_catalog >= 0
                out[to_catalog[ok]] = np.nan_to_num(encoded.scores()[ok], nan=-np.inf)
                return out

            scanned = ScannedLevel.search(served, loo, to_catalog, blocked, n, plan, every_score)
            if scanned is not None:  # the exact top-n candidates and their scores (shoprec.service.scan)
                candidates, scores = scanned.candidates, scanned.scores
            else:
                scores = every_score()

        def explain(placed: list[int]) -> list[Reason]:
            return self._attribute(view, served, query, level, placed, verbs, loo, via)[0]

        reason = Reason("history", served.name, level=level, model_id=served.model_id, candidates=via)
        if scanned is not None:
            return scanned.level(reason, explain)
        return Level(reason, scores, explain, candidates)

    def _model_query(self, view: CatalogView, served: ServedModel, user: str | None, hist: np.ndarray,
                     context: HistoryContext | None = None) -> tuple[Query, str] | None:
        """The query (and level) the chain would give the model for this user: personal, else session."""
        to_model = served.index_maps(view)[1]
        hist_model = to_model[hist] if len(hist) else np.zeros(0, dtype=np.int64)
        users = served.model.users
        user_index = users.get(user) if user is not None and users is not None else None
        personal = make_query(user_index, hist_model, context)
        if user_index is not None and served.model.can_score(personal):
            return personal, "personal"
        session = make_query(None, hist_model, context)
        if len(hist) and served.model.can_score(session):
            return session, "session"
        return None

    def _attribute(self, view: CatalogView, served: ServedModel, query: Query, level: str, placed: list[int],
                   verbs: dict[str, str] | None, loo: LeaveOneOut | None = None, via: str | None = None
                   ) -> tuple[list[Reason], list[float]]:
        """History reasons (and full-query scores) of catalog items `placed`, from leave-one-out drops
        (of `loo`, the query's prepared batch, when the caller has one) over the newest `explain_history`
        distinct history items."""
        to_catalog, to_model = served.index_maps(view)
        loo = loo or LeaveOneOut(served.model, query, self.config.explain_history)
        att = loo.attribution(to_model[np.asarray(placed, dtype=np.int64)])
        causes = to_catalog[att.candidates].tolist()
        ids = view.items.externals(causes)  # ids[j] names att.candidates[j]
        titles = {ids[j]: view.titles[c] for j, c in enumerate(causes)}
        positions, weights = att.top(BECAUSE)
        reasons = history_reasons(positions, weights, ids, served.name, titles=titles, verbs=verbs, level=level,
                                  model_id=served.model_id, candidates=via)
        return reasons, att.base.tolist()

    def _ann_scores(self, served: ServedModel, query: Any, to_catalog: np.ndarray, to_model: np.ndarray,
                    blocked: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, str] | None:
        """(catalog indices of the ANN candidates in catalog order, their exact scores, "ann"). When the filters leave
        fewer than n of them: every item the filters leave, scored exactly, if at most NARROW_FILTER_ITEMS
        (a category, a price band; "filtered"); else None (the model then scores the whole catalog)."""
        from shoprec.models.vectors import history_scorer, sparse_row, vector_scorer

        scorer = vector_scorer(served.model)
        if scorer is None or served.ann is None:
            return None
        user_vectors, item_vectors = scorer
        q = user_vectors([query])  # (1, d)
        sparse = history_scorer(served.model)
        part = sparse([query]) if sparse is not None else None  # the scores' sparse part beside the products
        cand, _ = served.ann.search(q, self.config.ann_candidates)
        cand = cand[0][cand[0] >= 0]
        if part is not None:  # the items it lifts are candidates too
            cand = np.union1d(cand, part[0].indices).astype(np.int64)
        cat = to_catalog[cand]
        cand, cat = cand[cat >= 0], cat[cat >= 0]
        if int((~blocked[cat]).sum()) < n:  # narrow filters: score exactly the few items they leave
            allowed = np.flatnonzero(~blocked)
            if len(allowed) > NARROW_FILTER_ITEMS:
                return None
            cand = to_model[allowed]
            cat, cand = allowed[cand >= 0], cand[cand >= 0]
            extra = sparse_row(part, 0, cand)
            scores = (item_vectors[cand] @ q[0]).astype(np.float32)
            return cat, scores if extra is None else scores + extra, "filtered"
        order = np.argsort(cat, kind="stable")  # catalog order: ties go to the lower index, as in top_k
        cand = cand[order]
        extra = sparse_row(part, 0, cand)
        scores = (item_vectors[cand] @ q[0]).astype(np.float32)
        return cat[order], scores if extra is None else scores + extra, "ann"

    # ---------------------------------------------------------------- the list store
    def list_store(self) -> ListStore:
        """The parts that keep lists and their feedback; NotFound in a service that keeps none (an in-process
        one: shoprec.service.local)."""
        if self.engine is None or self.platforms is None or self.log is None:
            raise NotFound("this recommender keeps no lists (an in-process one): there is no recommendation_id "
                           "to page or give feedback on")
        return ListStore(self.engine, self.platforms, self.log)

    def _store(self, platform: str, user: str | None, served: ServedModel | None, ranked: Ranked, k: int,
               offset: int, assignment: Assignment | None = None) -> Recommendation:
        entry = log_entry(uuid.uuid4().hex, user, served.name if served is not None else None, ranked, assignment)
        self.list_store().log.add(platform, entry)
        return page(entry, k, offset, ranked.reasons)

    def _log(self, platform: str, rec_id: str) -> dict[str, Any]:
        return self.list_store().log.get(platform, rec_id)

    def _page(self, platform: str, rec_id: str, k: int, offset: int, user: str) -> Recommendation:
        log = self._log(platform, rec_id)
        if log["user_external_id"] != user:
            raise NotFound(f"recommendation {rec_id!r} was not made for user {user!r}")
        return page(log, k, offset)


def _searched(blocked: np.ndarray, plan: Plan | None) -> np.ndarray:
    """What a model level's candidate search (ANN, scan, narrow filters) leaves out: `blocked`, the items the
    rules' filter rejects and the pinned items (placed by the pins, not by a level)."""
    if plan is None or (plan.allowed is None and not plan.pins):
        return blocked
    out = blocked | ~plan.allowed if plan.allowed is not None else blocked.copy()
    out[[i for i, _ in plan.pins]] = True
    return out


def _item_vectors(view: CatalogView, served: ServedModel | None) -> Vectors | None:
    """Catalog indices -> the served model's item vectors (a zero row for an item it does not know), for the
    diversity rule's similarity; None when the model has no item vectors (then: same category)."""
    from shoprec.models.vectors import vector_scorer

    found = vector_scorer(served.model) if served is not None else None
    if found is None or served is None:
        return None
    item_vectors = found[1]
    to_model = served.index_maps(view)[1]

    def vectors(idx: np.ndarray) -> np.ndarray:
        m = to_model[idx]
        out = item_vectors[np.maximum(m, 0)].copy()
        out[m < 0] = 0.0
        return out

    return vectors
