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
    ids = [i for i, _ in causes]
    return history_reasons([list(range(len(ids)))], [[round(float(w), 6) for _, w in causes]], ids, source,
                           titles=titles, verbs=verbs, **extra)[0]


def history_reasons(positions: Sequence[Sequence[int]], weights: Sequence[Sequence[float]], ids: Sequence[str],
                    source: str, *, titles: dict[str, str] | None = None, verbs: dict[str, str] | None = None,
                    **extra: Any) -> list[dict[str, Any]]:
    """`history_reason` of many targets whose causes come from one list of history items `ids`: target t's
    causes are ids[positions[t][j]] with drops weights[t][j] (rounded floats), most influential first. Each
    history item's text is written once (a list explains ~50 items from the same ~20 history items)."""
    texts: dict[str, str | None] = {}
    out = []
    for pos, ws in zip(positions, weights, strict=True):
        because = [ids[j] for j, w in zip(pos, ws, strict=True) if w > 0][:BECAUSE]
        if not because:
            out.append(fallback_reason(source, **extra))
            continue
        reason: dict[str, Any] = {"type": "history", "source": source, **extra, "because_of": because,
                                  "weights": [w for w in ws if w > 0][:BECAUSE]}
        top = because[0]
        if top not in texts:
            title = (titles or {}).get(top)
            texts[top] = f"Because you {VERBS.get((verbs or {}).get(top, ''), 'viewed')} {title}" if title else None
        if texts[top]:
            reason["text"] = texts[top]
        out.append(reason)
    return out


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
