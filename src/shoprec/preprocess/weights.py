"""Event weights for implicit models: how much each kind of event says about a user's interest.

Defaults follow view < cart < purchase: impression 0, view 1, click 1, like 2, cart 3, review 3,
purchase 5; negative or neutral signals (remove_from_cart, return, dislike) weigh 0. For the event
types in `from_value` (default: rating) the weight is the event's value (e.g. the 1-5 stars) when it
has one, else the type's weight. Zero-weight events are kept (drop them with `drop_zero=True`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from types import MappingProxyType

import numpy as np

from shoprec.data.interactions import Interactions
from shoprec.errors import ConfigError
from shoprec.types import EVENT_TYPES, EventType

DEFAULT_EVENT_WEIGHTS: Mapping[str, float] = MappingProxyType({
    "impression": 0.0, "view": 1.0, "click": 1.0, "like": 2.0, "cart": 3.0, "review": 3.0, "purchase": 5.0,
    "rating": 1.0, "remove_from_cart": 0.0, "return": 0.0, "dislike": 0.0,
})


def weight_table(weights: Mapping[str, float] | None = None) -> np.ndarray:
    """float32 weight per EventType code: the defaults overridden by `weights` (names as in EventType)."""
    merged = dict(DEFAULT_EVENT_WEIGHTS)
    for name, w in (weights or {}).items():
        try:
            etype = EventType.parse(str(name))
        except ValueError as exc:
            raise ConfigError(f"event weights: {exc}") from None
        if isinstance(w, bool) or not isinstance(w, int | float) or not math.isfinite(w):
            raise ConfigError(f"event weights: weight of {name!r} must be a finite number, got {w!r}")
        merged[etype.value] = float(w)
    return np.array([merged[t.value] for t in EVENT_TYPES], dtype=np.float32)


def apply_event_weights(interactions: Interactions, weights: Mapping[str, float] | None = None, *,
                        from_value: Iterable[str] = ("rating",), drop_zero: bool = False) -> Interactions:
    """A copy of `interactions` whose `weight` column follows the event types (see the module docstring)."""
    table = weight_table(weights)
    w = table[interactions.event_type.astype(np.int64)]
    try:
        value_codes = [EventType.parse(t).code for t in from_value]
    except ValueError as exc:
        raise ConfigError(f"event weights, from_value: {exc}") from None
    use_value = np.isin(interactions.event_type, value_codes) & np.isfinite(interactions.value)
    w = np.where(use_value, interactions.value, w).astype(np.float32)
    out = Interactions(user=interactions.user, item=interactions.item, users=interactions.users,
                       items=interactions.items, weight=w, value=interactions.value,
                       timestamp=interactions.timestamp, event_type=interactions.event_type)
    return out.subset(w != 0) if drop_zero else out
