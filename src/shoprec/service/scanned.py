"""A model level found by the int8 scan (shoprec.service.scan): the exact scores of the model's top candidates only,
with what the rules need to rank them as they would rank the whole catalog.

Without rules a list of n takes the model's top n, and the scan's candidates hold it. Rules reorder the level:
a boost lifts items from below the top n, and a cap per category or MMR diversity walks further down the
model's order than n. So for a list with rules the level is searched in the order the rules rank it:
- a boost of weight w adds w x the level's spread (max - min of all its scores): the spread comes from the
  exact scores of the few items that may hold the level's maximum or minimum (`extreme_candidates`), and the
  candidates are the top n of score + boost x spread (the bounds shifted by each item's boost);
- the level carries a floor: the candidates ranking at or above it are the level's exact top in full. When the
  rules' walk reaches below it with the list still short, caps alone (`Plan.resumable`) go on below the floor:
  the level is searched again among the items neither taken nor capped yet (`Level.below`: full categories and
  brands left out, the walk needs few of them), and so on; other rules (MMR diversity) rank the level again from
  a pool 4x as deep (`Level.deeper`), down to every allowed item. Either search scores the whole catalog instead
  once it would reach a quarter of the allowed items.
The list is the one full scoring gives (tests/service/test_service_scan.py), never filled from popularity
where the model had items.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from shoprec.models.vectors import sparse_row
from shoprec.rules.apply import level_spread
from shoprec.service.chain import Explainer, Level
from shoprec.service.scan import extreme_candidates, ranked_candidates

if TYPE_CHECKING:
    from shoprec.explain import Reason
    from shoprec.explain.attribution import LeaveOneOut
    from shoprec.rules import Plan
    from shoprec.service.models import ServedModel

DEEPEN = 4  # a level the rules walked through is searched again this many times as deep
FULL_SHARE = 4  # ... or scored in full once that would hold a quarter of the allowed items (a gather of many
# rows costs more than the one full product)


@dataclass(frozen=True)
class ScannedLevel:
    """The candidates (catalog indices, ascending) of a scanned model level and their exact float32 scores;
    `spread` (boosted lists) and `floor` (lists with rules) as Level takes them; `search` gives a deeper one."""

    candidates: np.ndarray
    scores: np.ndarray
    depth: int
    spread: float | None = None
    floor: float | None = None
    search_deeper: Callable[[int, np.ndarray | None], ScannedLevel] | None = None  # (depth, open catalog items)
    full: bool = False  # `scores` cover the whole catalog (a deepening that scored every item)

    @classmethod
    def search(cls, served: ServedModel, loo: LeaveOneOut, to_catalog: np.ndarray, blocked: np.ndarray, n: int,
               plan: Plan | None = None, every_score: Callable[[], np.ndarray] | None = None
               ) -> ScannedLevel | None:
        """The items that can make the model's top n among those `blocked` leaves (ranked as `plan`'s boosts
        rank them), from the served model's int8 scan; None without one. `every_score`: the level's scores of
        the whole catalog, which a deepening takes instead once it would hold a quarter of the allowed items."""
        if served.scan is None or loo.query_vectors is None or loo.vectors is None:
            return None
        query = loo.query_vectors[0]
        bounds = served.scan.bounds(query)
        if bounds is None:
            return None
        item_vectors = loo.vectors[1]
        rankable = to_catalog >= 0
        rankable[rankable] = ~blocked[to_catalog[rankable]]
        allowed = np.flatnonzero(rankable)  # the model's items a level may rank, and their bounds
        lower, upper = bounds[0][allowed], bounds[1][allowed]
        extra = sparse_row(loo.history_part, 0)  # the scores' sparse part beside the products (models.vectors)
        if extra is not None:  # known exactly: it moves both bounds of the items it lifts
            lower, upper = lower + extra[allowed], upper + extra[allowed]

        def exact(found: np.ndarray) -> np.ndarray:
            scores = np.asarray(item_vectors[found] @ query, dtype=np.float32)
            return scores if extra is None else scores + extra[found]

        spread: float | None = None
        offset: np.ndarray | None = None
        if plan is not None and plan.boost is not None:
            boost = plan.boost[to_catalog[allowed]]
            if len(allowed) and boost.any():
                spread = level_spread(exact(allowed[extreme_candidates(lower, upper)]))
                offset = boost * np.float32(spread)

        def at(depth: int, open_catalog: np.ndarray | None = None) -> ScannedLevel:
            pool = allowed
            lo, hi, off = lower, upper, offset
            if open_catalog is not None:  # a search below the floor: only the items the rules may still place
                keep = open_catalog[to_catalog[allowed]]
                pool, lo, hi = allowed[keep], lower[keep], upper[keep]
                off = offset[keep] if offset is not None else None
            first = open_catalog is None and depth <= n  # the list's own search is never scored in full
            if every_score is not None and not first and min(depth, len(pool)) * FULL_SHARE >= len(allowed):
                return cls(np.zeros(0, dtype=np.int64), every_score(), depth, full=True)
            positions, floor = ranked_candidates(lo, hi, depth, off)
            found = pool[positions]
            catalog = to_catalog[found]
            order = np.argsort(catalog, kind="stable")  # catalog order: ties go to the lower index, as in top_k
            found, catalog = found[order], catalog[order]
            deeper = at if plan is not None and floor > -np.inf else None
            return cls(catalog, exact(found), depth, spread, floor if plan is not None else None, deeper)

        return at(n)

    def level(self, reason: Reason, explain: Explainer | None) -> Level:
        """The chain's Level of these candidates (its `deeper`: the same level searched DEEPEN times as deep, its
        `below`: searched among the catalog items left open, or either scored in full); a full level is the one
        full scoring gives (no candidates, spread or floor)."""
        if self.full:
            return Level(reason, self.scores, explain)
        search = self.search_deeper
        if search is None:
            return Level(reason, self.scores, explain, self.candidates, spread=self.spread, floor=self.floor)
        return Level(reason, self.scores, explain, self.candidates, spread=self.spread, floor=self.floor,
                     deeper=lambda: search(self.depth * DEEPEN, None).level(reason, explain),
                     below=lambda open_, depth: search(depth, open_).level(reason, explain))
