"""Names shared across code, config, CLI and API: event types and their integer codes."""

from __future__ import annotations

from enum import StrEnum

import numpy as np


class EventType(StrEnum):
    VIEW = "view"
    CLICK = "click"
    CART = "cart"
    REMOVE_FROM_CART = "remove_from_cart"
    PURCHASE = "purchase"
    RETURN = "return"
    RATING = "rating"
    REVIEW = "review"
    LIKE = "like"
    DISLIKE = "dislike"
    IMPRESSION = "impression"

    @property
    def code(self) -> int:
        return EVENT_CODES[self]

    @classmethod
    def from_code(cls, code: int) -> EventType:
        return EVENT_TYPES[code]

    @classmethod
    def parse(cls, value: str) -> EventType:
        """Parse an event type name (case-insensitive); raises ValueError listing the valid names."""
        try:
            return cls(value.strip().lower())
        except ValueError:
            valid = ", ".join(t.value for t in cls)
            raise ValueError(f"unknown event type {value!r} (valid: {valid})") from None


EVENT_TYPES: tuple[EventType, ...] = tuple(EventType)
EVENT_CODES: dict[EventType, int] = {t: i for i, t in enumerate(EVENT_TYPES)}

# dtypes of the arrays inside shoprec: indices are int32, times are unix seconds.
INDEX_DTYPE = np.int32
TIME_DTYPE = np.int64
