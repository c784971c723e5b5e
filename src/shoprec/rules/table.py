"""ItemTable: the item columns the rules read, one array per field in one index space (the serving catalog's or a
model's), so that an expression is a handful of numpy operations over the whole catalog.

Text fields (category, brand) are kept as distinct names + a code per item: a test compares the few distinct
names, then selects items by code. Attributes (free-form JSON per item) are turned into columns on first use.
Masks of expressions that do not depend on the clock are cached per table (a table is rebuilt when the catalog
changes), so a shop's usual rules cost one dictionary lookup per request.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from shoprec.data import ItemCatalog
    from shoprec.rules.expr import Expression

MAX_CACHED_MASKS = 1000
DAY_S = 86400.0


def _codes(values: Iterable[str]) -> tuple[np.ndarray, np.ndarray]:
    distinct: dict[str, int] = {}
    codes = np.fromiter((distinct.setdefault(v, len(distinct)) for v in values), dtype=np.int32)
    return np.array(list(distinct), dtype=str), codes


@dataclass(eq=False)
class ItemTable:
    """Per-item columns (index-aligned). `now`: the clock for the age fields (None: time.time() per request)."""

    ids: Sequence[str]
    category_names: np.ndarray
    category_codes: np.ndarray
    brand_names: np.ndarray
    brand_codes: np.ndarray
    price: np.ndarray  # float64, NaN unknown
    available: np.ndarray  # bool
    popularity: np.ndarray  # float, [0, 1]
    created_at: np.ndarray  # float64 unix seconds, NaN unknown
    updated_at: np.ndarray
    attributes: Sequence[dict[str, Any] | None]
    now: float | None = None
    _masks: dict[str, np.ndarray] = field(default_factory=dict)
    _boosts: dict[tuple[tuple[str, float], ...], tuple[np.ndarray, np.ndarray, np.ndarray]] = field(
        default_factory=dict)
    _attributes: dict[str, Any] = field(default_factory=dict)
    _index: dict[str, int] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def build(cls, ids: Sequence[str], *, category: Iterable[str] | None = None, brand: Iterable[str] | None = None,
              price: Any = None, available: Any = None, popularity: Any = None, created_at: Any = None,
              updated_at: Any = None, attributes: Sequence[dict[str, Any] | None] | None = None,
              now: float | None = None) -> ItemTable:
        """A table from plain columns; a missing column is empty (""), unknown (NaN) or True for `available`."""
        n = len(ids)

        def numbers(x: Any) -> np.ndarray:
            return np.full(n, np.nan) if x is None else np.asarray(x, dtype=np.float64)

        cat_names, cat_codes = _codes(category if category is not None else [""] * n)
        brand_names, brand_codes = _codes(brand if brand is not None else [""] * n)
        return cls(ids=ids, category_names=cat_names, category_codes=cat_codes, brand_names=brand_names,
                   brand_codes=brand_codes, price=numbers(price),
                   available=np.ones(n, dtype=bool) if available is None else np.asarray(available, dtype=bool),
                   popularity=np.zeros(n) if popularity is None else np.asarray(popularity, dtype=np.float64),
                   created_at=numbers(created_at), updated_at=numbers(updated_at),
                   attributes=attributes if attributes is not None else [None] * n, now=now)

    @classmethod
    def from_catalog(cls, catalog: ItemCatalog, popularity: Any = None) -> ItemTable:
        """The table of an offline ItemCatalog (its item order: a model's); no timestamps (age fields: unknown)."""
        catalog.align()
        return cls.build(catalog.items.externals(range(len(catalog.items))), category=catalog.category,
                         brand=catalog.brand, price=catalog.price,
                         available=catalog.available if len(catalog.available) == len(catalog.items) else None,
                         popularity=popularity, attributes=catalog.attributes)

    def __len__(self) -> int:
        return len(self.category_codes)

    # ---------------------------------------------------------------- columns
    def index_of(self, item_id: str) -> int | None:
        if self._index is None:
            self._index = {str(x): i for i, x in enumerate(self.ids)}
        return self._index.get(item_id)

    def string_mask(self, name: str, values: list[str]) -> np.ndarray:
        """category: the item's path is a value or below it ("A" matches "A > B"); brand, item_id: equal."""
        if name == "item_id":
            mask = np.zeros(len(self), dtype=bool)
            idx = [i for i in (self.index_of(v) for v in values) if i is not None]
            mask[idx] = True
            return mask
        names, codes = ((self.category_names, self.category_codes) if name == "category"
                        else (self.brand_names, self.brand_codes))
        hit = np.zeros(len(names), dtype=bool)
        for v in values:
            hit |= names == v
            if name == "category":
                hit |= np.char.startswith(names, v + " > ")
        return hit[codes]

    def flag(self, name: str) -> np.ndarray:
        return self.available

    def number(self, name: str) -> np.ndarray:
        if name in ("age_days", "updated_days"):
            now = self.now if self.now is not None else time.time()
            stamp = self.created_at if name == "age_days" else self.updated_at
            return (now - stamp) / DAY_S
        return {"price": self.price, "popularity": self.popularity, "created_at": self.created_at,
                "updated_at": self.updated_at}[name]

    def attribute(self, name: str) -> tuple[list[Any], np.ndarray, np.ndarray] | None:
        """(distinct values, item of each pair, value code of each pair) of attribute `name`; None: no item has it."""
        with self._lock:
            if name not in self._attributes:
                self._attributes[name] = self._attribute_column(name)
            return self._attributes[name]

    def _attribute_column(self, name: str) -> tuple[list[Any], np.ndarray, np.ndarray] | None:
        distinct: dict[Any, int] = {}
        values: list[Any] = []
        items: list[int] = []
        codes: list[int] = []
        for i, attrs in enumerate(self.attributes):
            if not attrs or name not in attrs:
                continue
            raw = attrs[name]
            for v in raw if isinstance(raw, list) else [raw]:
                if not isinstance(v, (str, int, float, bool)):
                    continue
                key = (type(v) is bool, v)
                if key not in distinct:
                    distinct[key] = len(values)
                    values.append(v)
                items.append(i)
                codes.append(distinct[key])
        if not items and not any(attrs and name in attrs for attrs in self.attributes):
            return None
        return values, np.asarray(items, dtype=np.int64), np.asarray(codes, dtype=np.int64)

    # ---------------------------------------------------------------- masks
    def cached_boosts(self, boosts: Sequence[tuple[Expression, float]]
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(boost per item: the sum of the weights of the boosts it matches, float32; matched by a boost of
        weight > 0; by one of weight < 0), cached unless a boost is timed. Read-only: shared by every list."""
        key = tuple((e.source, w) for e, w in boosts)
        found = self._boosts.get(key)
        if found is not None:
            return found
        boost = np.zeros(len(self), dtype=np.float32)
        lifted = np.zeros(len(self), dtype=bool)
        buried = np.zeros(len(self), dtype=bool)
        for expression, weight in boosts:
            mask = expression.mask(self, "boost")
            boost[mask] += weight
            if weight > 0:
                lifted |= mask
            elif weight < 0:
                buried |= mask
        for a in (boost, lifted, buried):
            a.flags.writeable = False
        if not any(e.timed for e, _ in boosts) and len(self._boosts) < MAX_CACHED_MASKS:
            self._boosts[key] = (boost, lifted, buried)
        return boost, lifted, buried

    def cached_mask(self, expr: Expression, compute: Callable[[], np.ndarray]) -> np.ndarray:
        if expr.timed:
            return compute()
        mask = self._masks.get(expr.source)
        if mask is None:
            mask = compute()
            if len(self._masks) < MAX_CACHED_MASKS:
                self._masks[expr.source] = mask
        return mask
