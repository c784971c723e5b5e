"""List types beside the personal list: trending, buy it again, frequently bought together, new arrivals.

Each list is a fallback chain like RecommendService's (shoprec.service.chain: levels filled through the shared
`ranking.top_k`, the servable and exclusion filters of RecommendService), logged under a recommendation_id
so that feedback works on it, and each level gives its reason (shoprec.explain.reasons):

- trending: items whose count of people (positive events) in the last `window` is at least `min_count` and
  above the window before, by (recent - previous) / sqrt(previous + 1) (a rise, discounted for items that
  were already busy); then popular in `category`, then popular. Counts are cached per platform and window
  for TRENDING_TTL_S (one grouped query over the two windows' events), then counted anew in the background
  while requests keep the previous counts (up to TRENDING_STALE_S old), as the catalog's popularity is.
- buy again: the person's purchased items of repurchasable categories (`serving.repurchasable`, as
  RecommendService treats them), by times bought + 1 / (1 + days since the newest purchase); then popular.
- frequently bought together: items bought by people who bought a cart item (a person's purchases are one
  basket), by the number of such people summed over the cart items; then the active model's session list
  from the cart, popular in the newest cart item's category, popular. An unknown cart item is refused
  (NotFound naming every unknown id), as similar items refuse an unknown item.
- new arrivals: items created in the last `days` ranked for the person by the active model (the items it
  knows), then by text similarity to their history (items newer than the model), then by popularity in the
  category of their newest history item, then newest first; then popular over the whole catalog.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from shoprec.errors import DataError
from shoprec.explain import Reason, fallback_reason
from shoprec.explain.reasons import bought_together_reason, buy_again_reason, new_arrival_reason, trending_reason
from shoprec.service.answers import Recommendation, log_entry, page
from shoprec.service.background import lower_priority
from shoprec.service.catalog import CatalogView
from shoprec.service.chain import Level, Ranked, popular_levels, rank_chain
from shoprec.service.errors import NotFound
from shoprec.service.recommend import Filters, RecommendService
from shoprec.service.state import POSITIVE_TYPES, UserState
from shoprec.storage import storage_errors
from shoprec.storage.lists import ListsRepo

log = logging.getLogger(__name__)
TRENDING_TTL_S = 30.0  # trending counts are reused this long (per worker, platform and window)
TRENDING_STALE_S = 300.0  # and answered this long while a background thread counts anew
MAX_COUNTS = 64  # (platform, window) counts kept per worker; the oldest is dropped beyond
WINDOW = re.compile(r"^([1-9][0-9]{0,3})([hd])$")
MAX_WINDOW_S = 90 * 86400.0
MAX_CART = 100
CONTENT_HISTORY = 20  # newest history items whose texts make a person's content profile (new arrivals)
DAY_S = 86400.0

__all__ = ["ListService", "UnknownCartItems", "parse_window"]


class UnknownCartItems(NotFound):
    """Cart items the platform does not know: (position in the request, item id) of each."""

    def __init__(self, platform: str, unknown: list[tuple[int, str]]) -> None:
        self.unknown = unknown
        names = ", ".join(repr(i) for _, i in unknown[:10]) + (" ..." if len(unknown) > 10 else "")
        super().__init__(f"no item {names} on platform {platform!r} (field item_ids)")


def parse_window(window: str) -> float:
    """Seconds of a window written "6h" or "7d" (1h .. 90d); DataError naming `window` otherwise."""
    match = WINDOW.match(window or "")
    seconds = int(match.group(1)) * (3600 if match.group(2) == "h" else 86400) if match else 0
    if not match or seconds > MAX_WINDOW_S:
        raise DataError(f"window must be hours or days such as 6h or 7d, at most 90d, got {window!r}")
    return float(seconds)


@dataclass
class _Counts:
    """Trending counts of one (platform, window) anchored at `anchor` (unix seconds), and their catalog indices
    for the view they were last mapped onto."""

    anchor: float
    ids: list[str]
    recent: np.ndarray
    previous: np.ndarray
    mapped: tuple[CatalogView, np.ndarray] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def indices(self, view: CatalogView) -> np.ndarray:
        with self.lock:
            if self.mapped is None or self.mapped[0] is not view:
                self.mapped = (view, view.items.lookup(self.ids))
            return self.mapped[1]


class ListService:
    """The list types over RecommendService's parts (catalog views, user states, models, the list log)."""

    def __init__(self, recommend: RecommendService) -> None:
        self.recommend = recommend
        self.engine, self.platforms, self.log = recommend.list_store()  # lists are logged: feedback works on them
        self.config, self.catalogs, self.users, self.models = (recommend.config, recommend.catalogs, recommend.users,
                                                               recommend.models)
        self._counts: dict[tuple[str, float], _Counts] = {}
        self._lock = threading.Lock()
        self._refreshing: set[tuple[str, float]] = set()

    # ---------------------------------------------------------------- trending
    def trending(self, platform: str, k: int, window: str = "24h", category: str | None = None,
                 min_count: int = 3, now: float | None = None) -> Recommendation:
        """Items rising in the last `window` (optionally within `category`), then popular ones."""
        self._check_k(k)
        if min_count < 1:
            raise DataError(f"min_count must be at least 1, got {min_count}")
        seconds = parse_window(window)
        counts = self._trending_counts(platform, seconds, time.time() if now is None else now)
        view = self.catalogs.get(platform)
        idx = counts.indices(view)
        r, p = counts.recent, counts.previous
        rising = (idx >= 0) & (r >= min_count) & (r > p)
        scores = np.full(len(view), -np.inf, dtype=np.float32)
        scores[idx[rising]] = (r[rising] - p[rising]) / np.sqrt(p[rising] + 1.0)
        by_item = {int(i): (int(a), int(b)) for i, a, b in zip(idx[rising], r[rising], p[rising], strict=True)}

        def explain(placed: list[int]) -> list[Reason]:
            return [trending_reason(*by_item[i], window, category).at("trending") for i in placed]

        blocked = self.recommend.blocked(view, Filters(category=category or None), UserState())
        levels = [Level(trending_reason(0, 0, window).at("trending"), scores, explain),
                  *popular_levels(view, category or None)]
        return self._store(platform, None, None, rank_chain(levels, blocked, k, view), k)

    def _trending_counts(self, platform: str, seconds: float, now: float) -> _Counts:
        """The counts anchored within TRENDING_TTL_S before `now`; counts up to TRENDING_STALE_S old are answered
        while a background thread counts anew (a request waits for a count only when there is none to reuse)."""
        key = (platform, seconds)
        cached = self._counts.get(key)
        if cached is not None and 0.0 <= now - cached.anchor < TRENDING_TTL_S:
            return cached
        if cached is not None and 0.0 <= now - cached.anchor < TRENDING_STALE_S:
            with self._lock:
                start = key not in self._refreshing
                self._refreshing.add(key)
            if start:
                threading.Thread(target=self._refresh, args=(platform, seconds, now), daemon=True,
                                 name="shoprec-trending").start()
            return cached
        return self._count(platform, seconds, now)

    def _refresh(self, platform: str, seconds: float, now: float) -> None:
        lower_priority()
        try:
            self._count(platform, seconds, now)
        except Exception as exc:  # the database is away: keep answering the counts there are
            log.error("trending counts of platform %s: %s", platform, exc)
        finally:
            with self._lock:
                self._refreshing.discard((platform, seconds))

    def _count(self, platform: str, seconds: float, now: float) -> _Counts:
        with storage_errors(self.engine, "count trending items"), self.engine.connect() as conn:
            found = ListsRepo(conn, self.platforms.platform_id(platform)).window_counts(
                POSITIVE_TYPES, now - 2 * seconds, now - seconds, now)
        ids = list(found)
        counts = _Counts(now, ids, np.array([found[i][0] for i in ids], dtype=np.float64),
                         np.array([found[i][1] for i in ids], dtype=np.float64))
        key = (platform, seconds)
        with self._lock:
            self._counts.pop(key, None)
            self._counts[key] = counts  # newest last: a full dict drops its oldest entry
            while len(self._counts) > MAX_COUNTS:
                self._counts.pop(next(iter(self._counts)))
        return counts

    # ---------------------------------------------------------------- buy it again
    def buy_again(self, platform: str, user: str, k: int, now: float | None = None) -> Recommendation:
        """The user's purchased items of repurchasable categories (most bought, then most recent), then popular."""
        self._check_k(k)
        now = time.time() if now is None else now
        stored = self.recommend.privacy.user_id(platform, user)
        with storage_errors(self.engine, f"read the purchases of user {user!r}"), self.engine.connect() as conn:
            bought = ListsRepo(conn, self.platforms.platform_id(platform)).user_purchases(stored)
        view = self.catalogs.get(platform)
        state = self.users.get(platform, stored)
        blocked = self.recommend.blocked(view, Filters(include_seen=True), state)
        scores = np.full(len(view), -np.inf, dtype=np.float32)
        times: dict[int, int] = {}
        for item, n, ts in bought:
            i = view.items.get(item)
            if i is not None and self.recommend.repurchasable(view, item):
                scores[i] = n + 1.0 / (1.0 + max(now - ts, 0.0) / DAY_S)
                times[i] = n

        def explain(placed: list[int]) -> list[Reason]:
            return [buy_again_reason(view.items.external(i), view.titles[i], times[i]).at("buy_again")
                    for i in placed]

        levels = [Level(fallback_reason(), scores, explain), *popular_levels(view, None)]
        return self._store(platform, stored, None, rank_chain(levels, blocked, k, view), k)

    # ---------------------------------------------------------------- frequently bought together
    def bought_together(self, platform: str, items: Sequence[str], k: int) -> Recommendation:
        """Items bought with the cart's items, then the model's session list from the cart, then popular."""
        self._check_k(k)
        cart = list(dict.fromkeys(items))
        if not cart or len(cart) > MAX_CART:
            raise DataError(f"item_ids must hold 1 to {MAX_CART} item ids, got {len(cart)}")
        view = self.catalogs.get(platform)
        unknown = [(n, i) for n, i in enumerate(items) if view.items.get(i) is None]
        if unknown:
            raise UnknownCartItems(platform, unknown)
        with storage_errors(self.engine, "read co-purchases"), self.engine.connect() as conn:
            pairs = ListsRepo(conn, self.platforms.platform_id(platform)).co_purchases(cart)
        scores = np.full(len(view), -np.inf, dtype=np.float32)
        best: dict[int, tuple[int, str]] = {}  # candidate -> (people, the cart item they bought it with most)
        for a, b, n in pairs:
            j = view.items.get(b)
            if j is None:
                continue
            scores[j] = n if not np.isfinite(scores[j]) else scores[j] + n
            if n > best.get(j, (0, ""))[0]:
                best[j] = (n, a)

        def explain(placed: list[int]) -> list[Reason]:
            out = []
            for i in placed:
                people, with_item = best[i]
                with_title = view.titles[view.items.index(with_item)]
                out.append(bought_together_reason(with_item, with_title, people).at("bought_together"))
            return out

        blocked = ~view.servable
        blocked[view.items.lookup(cart)] = True
        served = self.models.get(platform)
        chain = self.recommend.chain_levels(view, served, cart, None, user_id=None, blocked=blocked, n=k,
                                            verbs=dict.fromkeys(cart, "cart"))
        levels = [Level(fallback_reason(), scores, explain), *chain]
        return self._store(platform, None, served.name if served is not None else None,
                           rank_chain(levels, blocked, k, view), k)

    # ---------------------------------------------------------------- new arrivals
    def new_arrivals(self, platform: str, user: str, k: int, days: int = 30, now: float | None = None
                     ) -> Recommendation:
        """Items created in the last `days`, ranked for the user (model, content, category), then newest first;
        then popular when fewer than k new items are servable."""
        self._check_k(k)
        if not 1 <= days <= 365:
            raise DataError(f"days must be between 1 and 365, got {days}")
        now = time.time() if now is None else now
        since = now - days * DAY_S
        with storage_errors(self.engine, "read the newest items"), self.engine.connect() as conn:
            created = ListsRepo(conn, self.platforms.platform_id(platform)).items_created_since(since)
        view = self.catalogs.get(platform)
        stored = self.recommend.privacy.user_id(platform, user)
        state = self.users.get(platform, stored)
        blocked = self.recommend.blocked(view, Filters(), state)
        idx = view.items.lookup([i for i, _ in created])
        age = np.full(len(view), -np.inf, dtype=np.float32)
        # the newest first: each item's rank by its creation time (exact in float32, where seconds since `since`
        # would round items created within a quarter of a second of each other to a tie)
        times = np.array([c for (_, c), i in zip(created, idx, strict=True) if i >= 0], dtype=np.float64)
        age[idx[idx >= 0]] = np.searchsorted(np.unique(times), times) + 1
        new = np.isfinite(age)
        served = self.models.get(platform)
        model_levels = [level for level in self.recommend.chain_levels(
            view, served, state.history, None, user_id=stored, blocked=blocked | ~new, n=k,
            verbs=dict(zip(state.history, state.history_types, strict=True)))
            if level.reason.level in ("personal", "session")]
        levels = [*(_new_only(level, new) for level in model_levels), *self._content_level(view, state.history, new)]
        hist = view.items.lookup(state.history)
        hist = hist[hist >= 0]
        context = str(view.category[hist[-1]]) if len(hist) and view.category[hist[-1]] else None
        if context:
            in_context = new & view.category_mask(context) & (view.popularity > 0)
            levels.append(_new_only(popular_levels(view, context)[0], in_context))
        levels.append(Level(new_arrival_reason().at("newest"), age))
        levels.extend(popular_levels(view, None))
        return self._store(platform, stored, served.name if served is not None and model_levels else None,
                           rank_chain(levels, blocked, k, view), k)

    def _content_level(self, view: CatalogView, history: Sequence[str], new: np.ndarray) -> list[Level]:
        """New items by cosine similarity of their text to the mean text of the newest history items."""
        hist = view.items.lookup(history[-CONTENT_HISTORY:])
        hist = hist[hist >= 0]
        if not len(hist) or not new.any():
            return []
        vectors = view.text_vectors()
        profile = vectors[hist].sum(axis=0)
        norm = float(np.linalg.norm(profile))
        if norm == 0.0:
            return []
        sims = (vectors @ (profile / norm)).astype(np.float32)
        sims[~new | ~np.any(vectors != 0, axis=1) | (sims <= 0)] = -np.inf
        reason = new_arrival_reason(Reason("similar_text", "content", text="Like items you viewed")).at("content")
        return [Level(reason, sims)]

    # ---------------------------------------------------------------- pieces
    def _check_k(self, k: int) -> None:
        if not 1 <= k <= self.config.max_k:
            raise DataError(f"k must be between 1 and {self.config.max_k}, got {k}")

    def _store(self, platform: str, user: str | None, model: str | None, ranked: Ranked, k: int) -> Recommendation:
        """Log the list (feedback on its items works as on any list) and answer its first page."""
        entry = log_entry(uuid.uuid4().hex, user, model, ranked)
        self.log.add(platform, entry)
        return page(entry, k, 0, ranked.reasons)


def _new_only(level: Level, new: np.ndarray) -> Level:
    """`level` ranking only the items `new` marks; its reasons say new_arrival."""
    scores, candidates = level.values()
    if candidates is None:
        scores = np.where(new, scores, -np.inf).astype(np.float32)
    else:
        keep = new[candidates]
        scores, candidates = scores[keep], candidates[keep]
    inner = level.explain

    def explain(placed: list[int]) -> list[Reason]:
        reasons = inner(placed) if inner is not None else [level.reason] * len(placed)
        return [new_arrival_reason(r) for r in reasons]

    return Level(new_arrival_reason(level.reason), scores, explain, candidates)
