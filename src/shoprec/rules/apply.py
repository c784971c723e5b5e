"""Plan: one list's rules bound to a catalog, and the selection that applies them level by level.

The ranking path (serving's `service.chain.rank_chain`, offline `apply_rules`) asks the plan to rank each
level: `Plan.rank(scores, need, taken)`:
- filter: items the expression rejects are blocked before any level ranks (`Plan.blocked`);
- boosts: a matching item's score gets weight x the level's score spread (max - min of its rankable scores)
  added, so a weight is comparable across models: 1 lifts a matching item above every non-matching one of
  the level, -1 buries it below them;
- caps (max_per_category, max_per_brand) alone: pass by pass, each pass leaving out the full categories /
  brands and taking a pool of the best of the rest in order (`_rank_capped`);
- diversity (MMR: relevance (1 - λ) against λ x the highest similarity to an item already in the list: cosine
  of the model's item vectors when it has them, else "same category"), with or without caps, picks greedily
  from a pool of the level's top items (ranking.top_k), widened 4x at a time while the caps leave it short;
- pins are placed last at their positions (1-based; past the list's end: appended), pushing the others down.
Each placed item carries the tags of the rules that moved it: boost, bury, max_per_category, max_per_brand,
diversity, pin.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeAlias

import numpy as np

from shoprec.ranking import top_k, top_row

if TYPE_CHECKING:
    from shoprec.rules.rules import Rules
    from shoprec.rules.table import ItemTable

Vectors: TypeAlias = Callable[[np.ndarray], np.ndarray]  # item indices -> (len, d) vectors (zero row: none)
Tags = tuple[str, ...]
POOL_FACTOR = 4
POOL_EXTRA = 50
CAPPED_POOL_FACTOR = 8  # caps: a deeper first pool (its sort is cheap next to another pass's partition)
CAPPED_SEARCH_FACTOR = 8  # caps: the candidates a search finds per place (Beauty, cap 2: a short walk goes on below)


def level_spread(rankable: np.ndarray) -> float:
    """What a boost of weight 1 adds: the max - min of a level's rankable scores (float32), 1.0 when they are
    all equal."""
    return float(rankable.max() - rankable.min()) or 1.0


class Plan:
    """The rules of one list over one ItemTable; keeps the list's state (counts, placed items) across levels."""

    def __init__(self, rules: Rules, table: ItemTable, vectors: Vectors | None = None) -> None:
        self.rules, self.table, self.vectors = rules, table, vectors
        self.allowed = rules.filter.mask(table, "filter") if rules.filter is not None else None
        self.boost: np.ndarray | None = None  # per item, the weights of the boosts it matches (read-only)
        self._lifted: np.ndarray | None = None  # items a boost of weight > 0 matches (their tag "boost")
        self._buried: np.ndarray | None = None  # ... of weight < 0 ("bury")
        if rules.boosts:
            self.boost, self._lifted, self._buried = table.cached_boosts([(b.expression, b.weight)
                                                                          for b in rules.boosts])
        pins = [(table.index_of(p.item_id), p.position - 1) for p in rules.pins]
        self.pins: list[tuple[int, int]] = [(i, pos) for i, pos in pins if i is not None]
        self.truncated = False  # the last `rank` ranked a level holding only its top (a short list: deepen it)
        self._carried: Tags = ()  # caps without diversity: the caps that skipped an item of the level so far
        self.reset()

    def reset(self) -> None:
        """Forget the list built so far (offline evaluation reuses one plan for every row)."""
        self.placed: list[int] = []
        self._cat = np.zeros(len(self.table.category_names), dtype=np.int64)
        self._brand = np.zeros(len(self.table.brand_names), dtype=np.int64)
        self._live_pins: list[tuple[int, int]] = []

    # ---------------------------------------------------------------- before ranking
    def blocked(self, blocked: np.ndarray) -> np.ndarray:
        """The items no level may place: `blocked` (the request's filters), those the filter expression rejects,
        and the pinned items (placed by `with_pins`). A pinned item that `blocked` removes is left out."""
        self._live_pins = [(i, pos) for i, pos in self.pins if not blocked[i]]
        out = blocked | ~self.allowed if self.allowed is not None else blocked.copy()
        for i, _ in self._live_pins:
            out[i] = True
            self._count(i)
        return out

    @property
    def n_pins(self) -> int:
        return len(self._live_pins)

    def search_depth(self, n: int) -> int:
        """How many of the model's top items a list of n with these rules asks a candidate search (ANN, the int8
        scan) for: the ranking pool, deeper with caps (they walk down the model's order past full categories)."""
        if self.rules.max_per_category or self.rules.max_per_brand:
            return max(n * CAPPED_SEARCH_FACTOR, n + POOL_EXTRA)
        return self.pool_size(n)

    @property
    def resumable(self) -> bool:
        """Whether a level cut at its floor can be ranked on below it (`rank(..., resume=True)`) rather than
        again from a deeper pool: caps without diversity, whose walk down the level's order takes or skips each
        item for good (MMR's choice depends on the whole pool)."""
        r = self.rules
        return bool(r.max_per_category or r.max_per_brand) and not r.diversity

    def capped(self) -> np.ndarray:
        """The items (over the table) a cap blocks now: their category or brand is full."""
        r, t = self.rules, self.table
        out = np.zeros(len(t), dtype=bool)
        if r.max_per_category:
            out |= (self._cat >= r.max_per_category)[t.category_codes]
        if r.max_per_brand:
            out |= (self._brand >= r.max_per_brand)[t.brand_codes]
        return out

    def pool_size(self, need: int) -> int:
        """How many of a level's top items to consider for `need` places (caps and diversity skip some)."""
        return max(need * POOL_FACTOR, need + POOL_EXTRA) if self.rules.reorders else need

    # ---------------------------------------------------------------- one level
    def rank(self, scores: np.ndarray, need: int, taken: np.ndarray, candidates: np.ndarray | None = None, *,
             spread: float | None = None, floor: float | None = None, resume: bool = False
             ) -> tuple[list[int], list[float], list[Tags]]:
        """Place up to `need` items of one level: (item indices, their ranking scores, tags per item).
        `scores` covers every item, or with `candidates` (item indices) those items only, aligned with them;
        `taken` (over every item) marks the items that may not be placed. A level holding only its top items
        (serving's int8 scan) gives the spread of all its scores (for the boosts) and its `floor`: only the
        candidates ranking at or above it are known to be the level's top in full: a list left short by them is
        `truncated` (the caller deepens the level, as the items below the floor are not all there). `resume`
        (`resumable` plans): these are the same level's items below the floor of the last call, and its walk goes
        on (the caps that skipped an item above stay in the tags)."""
        excl = taken[candidates] if candidates is not None else taken
        s = np.asarray(scores, dtype=np.float32).reshape(-1)
        if self.boost is not None:
            s = self._boosted(s, self.boost[candidates] if candidates is not None else self.boost, excl, spread)
        self.truncated = False
        if floor is not None and floor > -np.inf:  # the level holds only its top
            self.truncated = True
            excl = excl | (s < floor)
        if self.rules.reorders and not self.rules.diversity:
            return self._rank_capped(s, need, excl, candidates, self._carried if resume else ())
        free = int((~excl & np.isfinite(s)).sum())
        pool = min(self.pool_size(need), free)
        if pool <= 0:
            return [], [], []
        counts = self._cat.copy(), self._brand.copy()
        while True:
            self._cat, self._brand = counts[0].copy(), counts[1].copy()
            idx, vals = top_k(s, pool, exclude=[np.flatnonzero(excl)])
            ok = idx[0] >= 0
            local, vals_ = idx[0][ok], vals[0][ok]
            items = candidates[local] if candidates is not None else local.astype(np.int64)
            chosen, tags = self._select(items, vals_, need)
            if len(chosen) >= need or pool >= free:
                break
            pool = min(pool * POOL_FACTOR, free)  # the caps left the pool short: a wider one (partition, no sort)
        out_items = [int(items[j]) for j in chosen]
        self.placed.extend(out_items)
        return out_items, [float(vals_[j]) for j in chosen], [self._boost_tags(i) + t for i, t in
                                                              zip(out_items, tags, strict=True)]

    def _rank_capped(self, s: np.ndarray, need: int, excl: np.ndarray, candidates: np.ndarray | None,
                     carried: Tags = ()) -> tuple[list[int], list[float], list[Tags]]:
        """Caps without diversity, pass by pass: each pass leaves out the categories / brands already full (one
        mask over the level's items), ranks a pool of the rest (ranking.top_row) and takes it in order under the
        caps; a pool the caps leave short is followed by the next pool below it. Every item of a pool is taken
        or skipped, and the items below it score no higher, so the order is the full ranking's."""
        excl = excl | ~np.isfinite(s)
        table = self.table
        cat_codes = table.category_codes[candidates] if candidates is not None else table.category_codes
        brand_codes = table.brand_codes[candidates] if candidates is not None else table.brand_codes
        cap_cat, cap_brand = self.rules.max_per_category or 0, self.rules.max_per_brand or 0
        items_out: list[int] = []
        vals_out: list[float] = []
        tags_out: list[Tags] = []
        while len(items_out) < need:
            if cap_cat:
                excl |= (self._cat >= cap_cat)[cat_codes]
            if cap_brand:
                excl |= (self._brand >= cap_brand)[brand_codes]
            left = need - len(items_out)
            pool = max(left * CAPPED_POOL_FACTOR, left + POOL_EXTRA)  # a second pass costs a partition of the level
            local, v = top_row(s, pool, excl)
            if not len(local):
                break
            items = candidates[local] if candidates is not None else local.astype(np.int64)
            chosen, tags, carried = self._capped_pass(items, left, carried)
            items_out.extend(int(items[j]) for j in chosen)
            vals_out.extend(float(v[j]) for j in chosen)
            tags_out.extend(tags)
            excl[local] = True
            if len(local) < pool:
                break
        self._carried = carried
        self.placed.extend(items_out)
        return items_out, vals_out, [self._boost_tags(i) + t for i, t in zip(items_out, tags_out, strict=True)]

    def _boosted(self, s: np.ndarray, boost: np.ndarray, excl: np.ndarray, spread: float | None = None
                 ) -> np.ndarray:
        rankable = np.isfinite(s) & ~excl
        if not rankable.any() or not boost.any():
            return s
        if spread is None:
            spread = level_spread(s[rankable])
        return s + boost * np.float32(spread)

    def snapshot(self) -> tuple[np.ndarray, np.ndarray, int]:
        """The list's state before a level, to rank the level again (`restore`) from a deeper pool."""
        return self._cat.copy(), self._brand.copy(), len(self.placed)

    def restore(self, state: tuple[np.ndarray, np.ndarray, int]) -> None:
        self._cat, self._brand = state[0].copy(), state[1].copy()
        del self.placed[state[2]:]

    def _boost_tags(self, i: int) -> Tags:
        if self._lifted is None or self._buried is None:
            return ()
        lifted, buried = bool(self._lifted[i]), bool(self._buried[i])
        return ("boost", "bury") if lifted and buried else ("boost",) if lifted else ("bury",) if buried else ()

    def _count(self, i: int) -> None:
        self._cat[self.table.category_codes[i]] += 1
        self._brand[self.table.brand_codes[i]] += 1

    def _capped(self, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per pool item: whether the category cap, the brand cap, blocks it now."""
        r = self.rules
        cat = (self._cat[self.table.category_codes[items]] >= r.max_per_category if r.max_per_category
               else np.zeros(len(items), dtype=bool))
        brand = (self._brand[self.table.brand_codes[items]] >= r.max_per_brand if r.max_per_brand
                 else np.zeros(len(items), dtype=bool))
        return cat, brand

    def _select(self, items: np.ndarray, vals: np.ndarray, need: int) -> tuple[list[int], list[Tags]]:
        """Greedy choice among the pool (in ranking order) under the caps and the MMR weight: pool positions
        and tags. Without caps or diversity: the first `need`."""
        if not self.rules.reorders:
            return list(range(min(need, len(items)))), [()] * min(need, len(items))
        lam = self.rules.diversity or 0.0
        if lam == 0:
            return self._capped_pass(items, need)[:2]
        remaining = np.ones(len(items), dtype=bool)
        rel = sim = max_sim = None
        if lam > 0:
            lo, hi = (float(vals.min()), float(vals.max())) if len(vals) else (0.0, 0.0)
            rel = (vals - lo) / (hi - lo) if hi > lo else np.ones(len(vals))
            sim = self._similarity(items, np.asarray(self.placed + [i for i, _ in self._live_pins], dtype=np.int64))
            max_sim = sim[:, len(items):].max(axis=1) if sim.shape[1] > len(items) else np.zeros(len(items))
        chosen: list[int] = []
        tags: list[Tags] = []
        with_cat_skips = with_brand_skips = False
        for _ in range(need):
            cat_cap, brand_cap = self._capped(items)
            eligible = remaining & ~cat_cap & ~brand_cap
            if not eligible.any():
                break
            first = int(np.argmax(eligible))
            j = first
            if rel is not None and max_sim is not None:
                mmr = np.where(eligible, (1 - lam) * rel - lam * max_sim, -np.inf)
                j = int(np.argmax(mmr))
            ahead = remaining[:j]
            with_cat_skips |= bool((ahead & cat_cap[:j]).any())
            with_brand_skips |= bool((ahead & brand_cap[:j]).any())
            t: Tags = ()
            if with_cat_skips:
                t += ("max_per_category",)
            if with_brand_skips:
                t += ("max_per_brand",)
            if j != first:
                t += ("diversity",)
            chosen.append(j)
            tags.append(t)
            remaining[j] = False
            self._count(int(items[j]))
            if sim is not None and max_sim is not None:
                max_sim = np.maximum(max_sim, sim[:, j])
        return chosen, tags

    def _capped_pass(self, items: np.ndarray, need: int, t: Tags = ()) -> tuple[list[int], list[Tags], Tags]:
        """Caps without diversity: one pass in ranking order, skipping the items a cap blocks (plain Python over
        the ~200-item pool: cheaper than a numpy step per place). `t`: the caps that skipped an item before this
        pool (carried to the next)."""
        cap_cat, cap_brand = self.rules.max_per_category or 0, self.rules.max_per_brand or 0
        cats, brands = self.table.category_codes[items].tolist(), self.table.brand_codes[items].tolist()
        counts_cat, counts_brand = self._cat, self._brand
        chosen: list[int] = []
        tags: list[Tags] = []
        for j, (c, b) in enumerate(zip(cats, brands, strict=True)):
            if cap_cat and counts_cat[c] >= cap_cat:
                t = t if "max_per_category" in t else (*t, "max_per_category")
                continue
            if cap_brand and counts_brand[b] >= cap_brand:
                t = t if "max_per_brand" in t else (*t, "max_per_brand")
                continue
            chosen.append(j)
            tags.append(t)
            counts_cat[c] += 1
            counts_brand[b] += 1
            if len(chosen) == need:
                break
        return chosen, tags, t

    def _similarity(self, pool: np.ndarray, placed: np.ndarray) -> np.ndarray:
        """(len(pool), len(pool) + len(placed)) similarities: cosine of item vectors where both items have one,
        else 1.0 for the same category and 0.0 otherwise."""
        both = np.concatenate([pool, placed])
        codes = self.table.category_codes[both]
        same = (codes[: len(pool), None] == codes[None, :]).astype(np.float32)
        if self.vectors is None:
            return same
        v = np.asarray(self.vectors(both), dtype=np.float32)
        norms = np.linalg.norm(v, axis=1)
        has = norms > 0
        unit = v / np.where(has, norms, 1.0)[:, None]
        cos = unit[: len(pool)] @ unit.T
        return np.where(has[: len(pool), None] & has[None, :], cos, same)

    # ---------------------------------------------------------------- after ranking
    def with_pins(self, items: Sequence[object], scores: Sequence[float]) -> list[tuple[int, int]]:
        """Where the pinned items go in a list of len(items) ranked items: (insert position, item) in order;
        a position past the end appends. The caller inserts them in this order."""
        out = []
        length = len(items)
        for i, pos in sorted(self._live_pins, key=lambda p: p[1]):
            at = min(pos, length)
            out.append((at, i))
            length += 1
        return out


def apply_rules(scores: np.ndarray, rules: Rules, table: ItemTable, k: int, *, exclude: np.ndarray | None = None,
                vectors: Vectors | None = None) -> tuple[np.ndarray, np.ndarray, list[list[Tags]]]:
    """Top-k lists of score rows under `rules` (offline evaluation, the library API): (indices int32 (n, k),
    ranking scores float32 (n, k), tags per placed item); -1 / -inf pad short rows. `exclude`: (n, items)
    bool, items a row may not show (its history). The same Plan as serving, one row at a time."""
    s = np.atleast_2d(np.asarray(scores, dtype=np.float32))
    plan = rules.bind(table, vectors)
    idx = np.full((len(s), k), -1, dtype=np.int32)
    vals: np.ndarray = np.full((len(s), k), -np.inf, dtype=np.float32)
    tags: list[list[Tags]] = []
    for r in range(len(s)):
        plan.reset()
        blocked = ~np.isfinite(s[r]) if exclude is None else (exclude[r] | ~np.isfinite(s[r]))
        taken = plan.blocked(blocked)
        items, row_vals, row_tags = plan.rank(s[r], k - plan.n_pins, taken) if k > plan.n_pins else ([], [], [])
        for at, i in plan.with_pins(items, row_vals):
            items.insert(at, i)
            row_vals.insert(at, row_vals[at] if at < len(row_vals) else (row_vals[-1] if row_vals else 0.0))
            row_tags.insert(at, ("pin",))
        idx[r, :len(items)] = items[:k]
        vals[r, :len(items)] = row_vals[:k]
        tags.append(row_tags[:k])
    return idx, vals, tags
