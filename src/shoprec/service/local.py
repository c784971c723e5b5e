"""The serving path over in-memory parts: the Python API (shoprec.library) and batch export (service.export).

`LocalRecommend` IS RecommendService (the same `recommend` / `session` / `similar` / `explain`, the same
filters, fallback chain, `ranking.top_k` and reasons) with its database-backed parts replaced by fixed ones:
one catalog view, one served model (or none: the popularity levels answer) and user states read from a
snapshot of events instead of per-request queries. It keeps no lists (RecommendService's `engine`, `platforms`
and `log` are None: paging by recommendation_id and feedback raise NotFound): `_store` builds the page without
writing a recommendation log, and no experiment is consulted, so nothing is recorded as an exposure.

`rank_users` is the batch form: many users' model scores in one `model.score` call per batch, then each
user's list filled by the same `rank_chain` (model level, popular in category, popular) and filters
(`blocked`: unservable, purchased, disliked and, unless `include_seen`, seen items). Its model reasons are
the level's reason (personal / session), without the per-list leave-one-out attribution the online path
computes for the items it shows (that costs one batched score per user).

`states_from_events` and `view_from_catalog` build the snapshot parts with the functions the database path
builds its own with: shoprec.service.state.state_from_events (as UserStates: positive history of the newest
`history_length` events, purchases, the last like/dislike per item) and shoprec.service.catalog.build_view (as
load_view: popularity = positive events per item, scaled to [0, 1]; the category index).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from shoprec.data import Interactions, ItemCatalog
from shoprec.explain import Reason
from shoprec.privacy.keys import Privacy
from shoprec.service.answers import Recommendation, log_entry, page
from shoprec.service.catalog import CatalogView, CatalogViews, EventCounts, build_view
from shoprec.service.chain import Level, Ranked, popular_levels, rank_chain
from shoprec.service.config import ServingConfig
from shoprec.service.queries import history_context, known_context, make_query
from shoprec.service.recommend import Filters, RecommendService
from shoprec.service.served import ServedModel, ServedModels
from shoprec.service.state import MAX_EVENTS_READ, POSITIVE_TYPES, UserState, UserStates, state_from_events
from shoprec.types import EventType

__all__ = ["LocalRecommend", "states_from_events", "view_from_catalog"]

Progress = Callable[[int], None]  # users ranked so far


class _States(UserStates):
    def __init__(self, states: Mapping[str, UserState]) -> None:  # no cache, no database
        self.states = states

    def get(self, platform: str, user: str) -> UserState:
        return self.states.get(user, UserState())


class _Views(CatalogViews):
    def __init__(self, view: CatalogView) -> None:  # one fixed view
        self.view = view

    def get(self, platform: str) -> CatalogView:
        return self.view


class _Models(ServedModels):
    def __init__(self, served: ServedModel | None) -> None:  # one fixed model (None: popularity only)
        self.served = served

    def get(self, platform: str) -> ServedModel | None:
        return self.served

    def get_by_id(self, platform: str, model_id: str) -> ServedModel | None:
        return self.served if self.served is not None and self.served.model_id == model_id else None


class LocalRecommend(RecommendService):
    """RecommendService over a fixed view, model and user states; lists are never logged (see module doc)."""

    def __init__(self, config: ServingConfig, view: CatalogView, served: ServedModel | None,
                 states: Mapping[str, UserState]) -> None:
        # RecommendService's own constructor (so attributes it gains are set here too), with no list store (no
        # database, platform registry or recommendation log: `_store` below keeps nothing), ids as given
        # (Privacy() pseudonymises nothing) and no experiments
        super().__init__(None, config, None, _States(states), _Views(view), _Models(served), None,
                         privacy=Privacy(), experiments=None)

    @property
    def view(self) -> CatalogView:
        return self.catalogs.get("")

    @property
    def served(self) -> ServedModel | None:
        return self.models.get("")

    def _store(self, platform: str, user: str | None, served: ServedModel | None, ranked: Ranked, k: int,
               offset: int, assignment: Any = None) -> Recommendation:
        """The page, not logged (no recommendation_id to page or give feedback on: "local")."""
        entry = log_entry("local", user, served.name if served is not None else None, ranked)
        return page(entry, k, offset, ranked.reasons)

    # ------------------------------------------------------------------ batch
    def rank_users(self, users: Sequence[str], k: int, *, filters: Filters | None = None, batch_size: int = 256,
                   progress: Progress | None = None) -> list[Ranked]:
        """Top-k lists of `users` (ids as stored), the model scoring `batch_size` users per call."""
        self._check_page(k, 0)
        out: list[Ranked] = []
        for start in range(0, len(users), batch_size):
            out.extend(self._rank_batch(users[start:start + batch_size], k, filters or Filters()))
            if progress is not None:
                progress(len(out))
        return out

    def _rank_batch(self, users: Sequence[str], k: int, filters: Filters) -> list[Ranked]:
        view, served = self.view, self.served
        states = [self.users.get("", u) for u in users]
        hists = [_known_history(view, s) for s in states]
        rows: dict[int, tuple[np.ndarray, Reason]] = {}
        if served is not None:
            rows = self._model_rows(view, served, users, states, hists)
        lists = []
        for r, (state, (hist, _)) in enumerate(zip(states, hists, strict=True)):
            blocked = self.blocked(view, filters, state)
            levels: list[Level] = []
            if r in rows:
                levels.append(Level(rows[r][1], rows[r][0]))
            context = filters.category or (str(view.category[hist[-1]]) if len(hist) and view.category[hist[-1]]
                                           else None)
            levels.extend(popular_levels(view, context))
            lists.append(rank_chain(levels, blocked, k, view))
        return lists

    def _model_rows(self, view: CatalogView, served: ServedModel, users: Sequence[str], states: list[UserState],
                    hists: list[tuple[np.ndarray, Any]]) -> dict[int, tuple[np.ndarray, Reason]]:
        """Row -> (catalog-wide scores, reason) for the users the model can answer: personal (a user it knows),
        else session (from the known history), as `chain_levels` decides; one `model.score` call for all."""
        to_catalog, to_model = served.index_maps(view)
        model_users = served.model.users
        queries, rows, levels = [], [], []
        for r, (user, (hist, hctx)) in enumerate(zip(users, hists, strict=True)):
            hist_model = to_model[hist] if len(hist) else np.zeros(0, dtype=np.int64)
            index = model_users.get(user) if model_users is not None else None
            for level, who in (("personal", index), ("session", None)):
                if (level == "personal" and who is None) or (level == "session" and not len(hist)):
                    continue  # as chain_levels: no personal level for an unknown user, no session without history
                query = make_query(who, hist_model, hctx)
                if served.model.can_score(query):
                    queries.append(query)
                    rows.append(r)
                    levels.append(level)
                    break
        if not queries:
            return {}
        scores = served.model.score(queries)
        ok = to_catalog >= 0
        full = np.full((len(queries), len(view)), -np.inf, dtype=np.float32)
        full[:, to_catalog[ok]] = np.nan_to_num(scores[:, ok], nan=-np.inf)
        reasons = {lv: Reason("history", served.name, level=lv, model_id=served.model_id)
                   for lv in ("personal", "session")}
        return {r: (full[j], reasons[lv]) for j, (r, lv) in enumerate(zip(rows, levels, strict=True))}


def _known_history(view: CatalogView, state: UserState) -> tuple[np.ndarray, Any]:
    """The user's history items the catalog knows (catalog indices) and their aligned event context."""
    ids = view.items.lookup(state.history)
    hctx = history_context(state.history_types, state.history_times)
    keep = ids >= 0
    return ids[keep], known_context(hctx, keep)


# ---------------------------------------------------------------------- snapshot parts
def states_from_events(events: Interactions, history_length: int, users: Sequence[str] | None = None
                       ) -> dict[str, UserState]:
    """Each user's UserState from a snapshot of raw events (every type; ids as stored), by UserStates' rules
    (`state_from_events` over the user's newest MAX_EVENTS_READ events). `users`: only these (ids as stored);
    default every user with events."""
    order = np.lexsort((np.arange(len(events)), events.timestamp, events.user))  # per user, oldest first
    user, item = events.user[order], events.item[order]
    etype, stamp = events.event_type[order].astype(np.int64), events.timestamp[order].astype(np.float64)
    bounds = np.flatnonzero(np.diff(user)) + 1
    starts = np.concatenate([[0], bounds]) if len(user) else np.zeros(0, dtype=np.int64)
    stops = np.concatenate([bounds, [len(user)]]) if len(user) else np.zeros(0, dtype=np.int64)
    names = _type_names()
    wanted = None if users is None else set(users)
    items = events.items
    out: dict[str, UserState] = {}
    for a, b in zip(starts.tolist(), stops.tolist(), strict=True):
        uid = events.users.external(int(user[a]))
        if wanted is not None and uid not in wanted:
            continue
        a = max(a, b - MAX_EVENTS_READ)
        rows = zip(items.externals(item[a:b].tolist()), [names[t] for t in etype[a:b].tolist()],
                   stamp[a:b].tolist(), strict=True)
        out[uid] = state_from_events(list(rows), history_length)
    return out


def view_from_catalog(catalog: ItemCatalog, events: Interactions) -> CatalogView:
    """The CatalogView of an in-memory catalog (items available = servable; brands and attributes for the rules),
    popularity from `events`' positive events per item, as load_view counts them."""
    n = len(catalog)
    positive = np.array([x in POSITIVE_TYPES for x in _type_names()], dtype=bool)[events.event_type.astype(np.int64)]
    lookup = catalog.items.lookup(events.items.externals(events.item[positive].tolist()))
    now = time.monotonic()
    return build_view(
        (0.0, n, 0.0), catalog.items.copy(), list(catalog.category),
        price=np.asarray(catalog.price, dtype=np.float64), servable=np.asarray(catalog.available, dtype=bool).copy(),
        positive_events=np.bincount(lookup[lookup >= 0], minlength=n).astype(np.float32),
        titles=list(catalog.title), texts=catalog.texts(), counts=EventCounts({}, 0, now, now),
        brand=list(catalog.brand), attributes=[a or None for a in catalog.attributes])


def _type_names() -> list[str]:
    """Event type names by code (Interactions.event_type)."""
    return [EventType.from_code(c).value for c in range(len(EventType))]
