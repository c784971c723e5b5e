"""The model's query of a history: its items the model knows, with their event types and timestamps as the models
saw them in training. Serving (shoprec.service.recommend) and the batch path (shoprec.service.local) build it here."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from shoprec.types import EventType

if TYPE_CHECKING:
    from shoprec.models.base import Query

HistoryContext = tuple[np.ndarray | None, np.ndarray | None]  # (event-type codes, unix timestamps), aligned


def history_context(types: Sequence[str] | None, times: Sequence[float] | None) -> HistoryContext:
    """Event-type codes and timestamps of a history, as the models saw them in training (None: unknown).
    Offline evaluation gives sequence models the same columns (evaluation.engine), so online and offline
    queries agree."""
    codes = None
    if types:
        codes = np.array([EventType.parse(t).code for t in types], dtype=np.int64)
    stamps = np.asarray(times, dtype=np.float64) if times else None
    return codes, stamps


def known_context(context: HistoryContext | None, keep: np.ndarray) -> HistoryContext | None:
    """The context of the history items that `keep` marks (the items the catalog knows)."""
    if context is None:
        return None
    codes, stamps = context
    return (codes[keep] if codes is not None and len(codes) == len(keep) else None,
            stamps[keep] if stamps is not None and len(stamps) == len(keep) else None)


def make_query(user: int | None, hist_model: np.ndarray, context: HistoryContext | None) -> Query:
    """The model's query: the history items the model knows (oldest first) with their aligned context."""
    from shoprec.models.base import Query

    keep = hist_model >= 0
    known = known_context(context, keep)
    codes, stamps = known if known is not None else (None, None)
    return Query(user=user, history=hist_model[keep].astype(np.int32), event_types=codes, timestamps=stamps)
