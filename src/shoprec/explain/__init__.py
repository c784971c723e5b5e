"""Explanations attached to recommendations: why each item is in a list, from the model's own scores.

    drops = leave_one_out(model, query, items)             # one model.score call, len(history) + 1 queries
    reason = history_reason(drops, j, because_of_ids, source="itemknn")

Reasons are typed (`Reason`; every one carries `type` and `source`, the model or rule that placed the item),
sent as JSON through `Reason.to_json()`:
    {"type": "history", "because_of": [item ids, most influential first], "weights": [score drops], "text"?}
    {"type": "popular_in_category", "category": ...}
    {"type": "similar_text", "item_id": ...}
    {"type": "fallback_popular"}
List types (shoprec.service.lists) add trending, buy_again, bought_together and new_arrival.
"""

from shoprec.explain.attribution import ATTRIBUTION_HISTORY, Attribution, leave_one_out
from shoprec.explain.reasons import (
    BECAUSE,
    Reason,
    fallback_reason,
    history_reason,
    history_reasons,
    popular_in_category_reason,
    similar_text_reason,
)

__all__ = [
    "ATTRIBUTION_HISTORY",
    "BECAUSE",
    "Attribution",
    "Reason",
    "fallback_reason",
    "history_reason",
    "history_reasons",
    "leave_one_out",
    "popular_in_category_reason",
    "similar_text_reason",
]
