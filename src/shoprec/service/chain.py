"""The fallback chain's mechanics: levels (scores and the reason they give) filled into one ranked list.

RecommendService (shoprec.service.recommend) decides which levels a request gets; `rank_chain` fills the
list level by level through the shared `ranking.top_k`, each level ranking only the items the earlier
levels did not place (the filtered-out items are `blocked` from the start).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from shoprec.explain import Reason, fallback_reason, pinned_reason, popular_in_category_reason
from shoprec.service.catalog import CatalogView

if TYPE_CHECKING:
    from shoprec.rules import Plan

Explainer = Callable[[list[int]], list[Reason]]  # catalog indices placed by a level -> their reasons


@dataclass
class Ranked:
    """A ranked list: item ids, scores and per-item reasons, in served order."""

    items: list[str] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    reasons: list[Reason] = field(default_factory=list)


@dataclass(frozen=True)
class Level:
    """One level of the chain and the reason it gives (or, with `explain`, a reason per placed item,
    computed once for all of them). Its scores are over the whole catalog (-inf: no opinion), or, with
    `candidates` (catalog indices), over those items only, aligned with them: a large catalog's ANN
    candidates, a category's items. `scores` may be a function, called only when the chain reaches the
    level (the popularity fallbacks of a list the model fills alone cost nothing)."""

    reason: Reason
    scores: np.ndarray | Callable[[], np.ndarray]
    explain: Explainer | None = None
    candidates: np.ndarray | Callable[[], np.ndarray] | None = None
    # a level of the model's top candidates only (the int8 scan): the spread of all its scores (for boosts), the
    # floor above which its candidates are its exact top in full, the same level with more of them (`deeper`),
    # and its items below the floor among those a catalog mask leaves open, `depth` of them (`below(open, depth)`)
    spread: float | None = None
    floor: float | None = None
    deeper: Callable[[], Level] | None = None
    below: Callable[[np.ndarray, int], Level] | None = None

    def values(self) -> tuple[np.ndarray, np.ndarray | None]:
        scores = self.scores() if callable(self.scores) else self.scores
        candidates = self.candidates() if callable(self.candidates) else self.candidates
        return np.asarray(scores, dtype=np.float32).reshape(-1), candidates


def rank_chain(levels: Sequence[Level], blocked: np.ndarray, n: int, view: CatalogView, plan: Plan | None = None
               ) -> Ranked:
    """Fill up to n items level by level with ranking.top_k; `blocked` items never appear. A level with
    candidates ranks only those (the same order rule: higher score first, ties by lower catalog index,
    as the candidates are in catalog order). With a rules `plan` (shoprec.rules), each level is ranked by the
    plan (filter, boosts, caps, diversity), the pins are placed last, and each moved item's reason names the
    rules that moved it."""
    from shoprec.ranking import top_k

    out = Ranked()
    taken = plan.blocked(blocked) if plan is not None else blocked.copy()
    free = int((~taken).sum())
    depth = n - plan.n_pins if plan is not None else n
    tags: list[tuple[str, ...]] = []
    for level in levels:
        need = min(depth - len(out.items), free)
        if need <= 0:
            break
        scores, candidates = level.values()
        if candidates is not None and len(candidates) == 0:
            continue  # the level has nothing the filters leave (e.g. only items newer than the model)
        if plan is not None:
            chosen_list, vals_list, level_tags = _rank_level(level, scores, candidates, need, taken, plan)
            tags.extend(level_tags)
        else:
            if candidates is None:
                idx, vals = top_k(scores, need, exclude=[np.flatnonzero(taken)])
                chosen = idx[0]
            else:
                idx, vals = top_k(scores, need, exclude=[np.flatnonzero(taken[candidates])])
                chosen = np.where(idx[0] >= 0, candidates[np.maximum(idx[0], 0)], -1)
            chosen_list, vals_list = chosen.tolist(), vals[0].tolist()
        placed: list[int] = []
        for i, v in zip(chosen_list, vals_list, strict=True):
            if i < 0:
                break
            out.items.append(view.items.external(i))
            out.scores.append(round(float(v), 6))
            placed.append(i)
            taken[i] = True
        free -= len(placed)
        if level.explain is not None and placed:
            out.reasons.extend(level.explain(placed))
        else:
            out.reasons.extend([level.reason] * len(placed))
    if plan is not None:
        _apply_tags(out, tags, plan)
    return out


def _rank_level(level: Level, scores: np.ndarray, candidates: np.ndarray | None, need: int, taken: np.ndarray,
                plan: Plan) -> tuple[list[int], list[float], list[tuple[str, ...]]]:
    """One level ranked by the plan. A scanned level holds only its top: when the rules walk below its floor
    with the list still short, caps alone go on below the floor among the items still open (neither taken
    nor capped: every item above the floor was taken or is capped for good), other rules (MMR) rank the
    level again from a deeper pool."""
    before = plan.snapshot()
    items: list[int] = []
    vals: list[float] = []
    tags: list[tuple[str, ...]] = []
    resume = False
    while True:
        got, got_vals, got_tags = plan.rank(scores, need - len(items), taken, candidates, spread=level.spread,
                                            floor=level.floor, resume=resume)
        items += got
        vals += got_vals
        tags += got_tags
        if len(items) >= need or not plan.truncated:
            break
        if plan.resumable and level.below is not None:
            taken[got] = True  # (placed by the caller too)
            level = level.below(~(taken | plan.capped()), plan.search_depth(need - len(items)))
            resume = True
        elif level.deeper is not None:
            plan.restore(before)
            items, vals, tags = [], [], []
            level = level.deeper()
            resume = False
        else:
            break
        scores, candidates = level.values()
    return items, vals, tags


def _apply_tags(out: Ranked, tags: list[tuple[str, ...]], plan: Plan) -> None:
    """The rules' marks on the reasons of the items they moved, then the pinned items at their positions."""
    marked: dict[tuple[int, tuple[str, ...]], Reason] = {}  # a level's shared reason is copied once per tag set
    for j, t in enumerate(tags):
        if t:
            key = (id(out.reasons[j]), t)
            if key not in marked:
                marked[key] = out.reasons[j].moved_by(t)
            out.reasons[j] = marked[key]
    pinned = pinned_reason()
    for at, i in plan.with_pins(out.items, out.scores):
        neighbour = out.scores[at] if at < len(out.scores) else (out.scores[-1] if out.scores else 0.0)
        out.items.insert(at, plan.table.ids[i])
        out.scores.insert(at, neighbour)
        out.reasons.insert(at, pinned)


def popular_levels(view: CatalogView, category: str | None) -> list[Level]:
    """Popular in the category (its items only), then popular overall; computed if the chain gets there."""
    levels = []
    if category:
        members: list[np.ndarray] = []

        def in_category() -> np.ndarray:
            if not members:
                members.append(np.flatnonzero(view.category_mask(category)))
            return members[0]

        reason = popular_in_category_reason(category).at("popular_category")
        levels.append(Level(reason, lambda: view.popularity[in_category()], candidates=in_category))
    levels.append(Level(fallback_reason().at("popular"), view.popularity))
    return levels
