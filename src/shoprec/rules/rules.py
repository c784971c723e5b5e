"""Rules: a request's (or a platform's saved) business rules, parsed and checked once.

    rules = Rules.parse(filter='category in ["Makeup", "Skin Care"] and price < 50',
                        boost=['brand == "Acme": 0.3', "age_days > 365: -0.5"], pin="sku-1:1,sku-9:5",
                        max_per_category=3, max_per_brand=2, diversity=0.3)
    plan = rules.bind(table)                    # shoprec.rules.apply.Plan: masks over the catalog
    effective = saved.combined(request_rules)  # how a request combines with the platform's defaults

Combination (`combined`): both filters apply (AND: a request narrows the shop's filter, never widens it);
boosts add up (the default's, then the request's); the request's pins, caps and diversity replace the
default's when given (a cap cannot be lifted per request, only changed).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from shoprec.rules.expr import BoolOp, Expression, RuleError, parse, parse_boost

if TYPE_CHECKING:
    from shoprec.rules.apply import Plan, Vectors
    from shoprec.rules.table import ItemTable

MAX_BOOSTS = 20
MAX_PINS = 100
MAX_POSITION = 1000


@dataclass(frozen=True)
class Boost:
    """Items matching `expression` get `weight` x the level's score spread added (negative: buried)."""

    expression: Expression
    weight: float

    def to_text(self) -> str:
        return f"{self.expression.source}: {self.weight:g}"


@dataclass(frozen=True)
class Pin:
    item_id: str
    position: int  # 1-based position in the whole list

    def to_text(self) -> str:
        return f"{self.item_id}:{self.position}"


@dataclass(frozen=True)
class Rules:
    filter: Expression | None = None
    boosts: tuple[Boost, ...] = ()
    pins: tuple[Pin, ...] = ()
    max_per_category: int | None = None
    max_per_brand: int | None = None
    diversity: float | None = None

    # ---------------------------------------------------------------- parsing
    @classmethod
    def parse(cls, filter: str | None = None, boost: str | Iterable[str] | None = None,
              pin: str | Iterable[str | tuple[str, int]] | None = None, max_per_category: int | None = None,
              max_per_brand: int | None = None, diversity: float | None = None) -> Rules:
        """Rules from the request's parameters (any may be None); RuleError naming the parameter, the position
        and the field. `boost`: one `EXPRESSION: WEIGHT` or several; `pin`: "ID:POSITION[,ID:POSITION...]" or a
        list of "ID:POSITION" strings / (id, position) pairs (positions 1-based)."""
        expr = parse(filter, "filter") if filter is not None and filter.strip() else None
        boosts = _boosts(boost)
        pins = _pins(pin)
        return cls(expr, boosts, pins, _cap(max_per_category, "max_per_category"),
                   _cap(max_per_brand, "max_per_brand"), _diversity(diversity))

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Rules:
        """The Rules of `to_json`'s object (saved defaults)."""
        unknown = set(data) - {"filter", "boost", "pin", "max_per_category", "max_per_brand", "diversity"}
        if unknown:
            name = sorted(unknown)[0]
            raise RuleError(name, "unknown rule (rules: filter, boost, pin, max_per_category, max_per_brand, "
                                  "diversity)", reason="unknown_field", name=name)
        return cls.parse(data.get("filter"), data.get("boost"), data.get("pin"), data.get("max_per_category"),
                         data.get("max_per_brand"), data.get("diversity"))

    def to_json(self) -> dict[str, Any]:
        return {"filter": self.filter.source if self.filter is not None else None,
                "boost": [b.to_text() for b in self.boosts], "pin": [p.to_text() for p in self.pins],
                "max_per_category": self.max_per_category, "max_per_brand": self.max_per_brand,
                "diversity": self.diversity}

    # ---------------------------------------------------------------- use
    @property
    def empty(self) -> bool:
        return (self.filter is None and not self.boosts and not self.pins and self.max_per_category is None
                and self.max_per_brand is None and not self.diversity)

    @property
    def reorders(self) -> bool:
        """Whether the list needs more candidates than it shows (caps, diversity)."""
        return bool(self.max_per_category or self.max_per_brand or self.diversity)

    def combined(self, request: Rules) -> Rules:
        """These (a platform's saved defaults) with a request's rules on top (see the module docstring)."""
        if self.empty:
            return request
        if request.empty:
            return self
        if self.filter is not None and request.filter is not None:
            node = BoolOp("and", (self.filter.node, request.filter.node))
            flt: Expression | None = Expression(f"({self.filter.source}) and ({request.filter.source})", node)
        else:
            flt = request.filter or self.filter
        return replace(self, filter=flt, boosts=self.boosts + request.boosts, pins=request.pins or self.pins,
                       max_per_category=_first(request.max_per_category, self.max_per_category),
                       max_per_brand=_first(request.max_per_brand, self.max_per_brand),
                       diversity=_first(request.diversity, self.diversity))

    def check_items(self, table: ItemTable) -> None:
        """RuleError naming the first pinned id the catalog does not have (a request's pins must exist)."""
        for p in self.pins:
            if table.index_of(p.item_id) is None:
                raise RuleError("pin", f"unknown item {p.item_id!r}", reason="unknown_item", name=p.item_id)

    def check_fields(self, table: ItemTable) -> None:
        """Evaluate every expression once (RuleError for an attribute no item has)."""
        if self.filter is not None:
            self.filter.mask(table, "filter")
        for b in self.boosts:
            b.expression.mask(table, "boost")

    def bind(self, table: ItemTable, vectors: Vectors | None = None) -> Plan:
        """A Plan applying these rules to one list over `table` (`vectors`: item vectors for diversity)."""
        from shoprec.rules.apply import Plan

        return Plan(self, table, vectors)


def _first(a: Any, b: Any) -> Any:
    return a if a is not None else b


def _boosts(boost: str | Iterable[str] | None) -> tuple[Boost, ...]:
    if boost is None:
        return ()
    texts = [boost] if isinstance(boost, str) else list(boost)
    if len(texts) > MAX_BOOSTS:
        raise RuleError("boost", f"at most {MAX_BOOSTS} boosts, got {len(texts)}", reason="too_many")
    out = []
    for text in texts:
        if not isinstance(text, str):
            raise RuleError("boost", f"a boost is a string 'EXPRESSION: WEIGHT', got {text!r}")
        expr, weight = parse_boost(text, "boost")
        out.append(Boost(expr, weight))
    return tuple(out)


def _pins(pin: str | Iterable[str | tuple[str, int]] | None) -> tuple[Pin, ...]:
    if pin is None:
        return ()
    parts: Sequence[Any] = [p for p in pin.split(",") if p.strip()] if isinstance(pin, str) else list(pin)
    if len(parts) > MAX_PINS:
        raise RuleError("pin", f"at most {MAX_PINS} pins, got {len(parts)}", reason="too_many")
    out: list[Pin] = []
    for part in parts:
        if isinstance(part, (tuple, list)) and len(part) == 2:
            item, pos_text = str(part[0]), str(part[1])
        elif isinstance(part, str) and ":" in part:
            item, pos_text = (s.strip() for s in part.rsplit(":", 1))
        else:
            raise RuleError("pin", f"a pin is ITEM_ID:POSITION, got {part!r}", reason="bad_pin")
        if not pos_text.isdigit() or not 1 <= int(pos_text) <= MAX_POSITION or not item:
            raise RuleError("pin", f"pin {part!r}: the position must be a whole number from 1 to {MAX_POSITION}",
                            reason="bad_pin", name=item or None)
        pin_ = Pin(item, int(pos_text))
        if any(p.item_id == pin_.item_id or p.position == pin_.position for p in out):
            raise RuleError("pin", f"pin {part!r}: the item or the position is pinned twice", reason="bad_pin",
                            name=item)
        out.append(pin_)
    return tuple(sorted(out, key=lambda p: p.position))


def _cap(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise RuleError(name, f"must be a whole number of at least 1, got {value!r} (leave it out for no cap)",
                        reason="bad_cap", name=name)
    return int(value)


def _diversity(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not 0.0 <= value <= 1.0:
        raise RuleError("diversity", f"must be a number from 0 to 1, got {value!r}", reason="out_of_range",
                        name="diversity")
    return float(value)
