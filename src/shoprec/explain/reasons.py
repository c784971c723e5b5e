"""Reason objects (JSON-able dicts) of the four kinds, and their human text."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

BECAUSE = 3  # history items named in a history reason

VERBS = {"purchase": "bought", "cart": "added to your cart", "like": "liked", "rating": "rated",
         "review": "reviewed", "click": "viewed", "view": "viewed"}


def history_reason(causes: Sequence[tuple[str, float]], source: str, *, titles: dict[str, str] | None = None,
                   verbs: dict[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    """A history reason from (history item id, score drop) pairs, most influential first.

    Only items whose removal lowers the score are named (at most BECAUSE); when none does, the score
    does not depend on the history and the reason is the model's popularity prior (fallback_popular)."""
    named = [(i, w) for i, w in causes if w > 0][:BECAUSE]
    if not named:
        return fallback_reason(source, **extra)
    reason: dict[str, Any] = {"type": "history", "source": source, **extra,
                              "because_of": [i for i, _ in named], "weights": [round(float(w), 6) for _, w in named]}
    top = named[0][0]
    title = (titles or {}).get(top)
    if title:
        verb = VERBS.get((verbs or {}).get(top, ""), "viewed")
        reason["text"] = f"Because you {verb} {title}"
    return reason


def popular_in_category_reason(category: str, source: str = "popularity") -> dict[str, Any]:
    return {"type": "popular_in_category", "source": source, "category": category,
            "text": f"Popular in {category}"}


def similar_text_reason(item_id: str, title: str = "", source: str = "content") -> dict[str, Any]:
    reason: dict[str, Any] = {"type": "similar_text", "source": source, "item_id": item_id}
    if title:
        reason["text"] = f"Similar to {title}"
    return reason


def fallback_reason(source: str = "popularity", **extra: Any) -> dict[str, Any]:
    return {"type": "fallback_popular", "source": source, **extra, "text": "Popular right now"}
