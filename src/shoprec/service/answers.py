"""What RecommendService answers (typed, frozen) and the recommendation log's entries they are read from.

A served list is logged as JSON (shoprec.service.reclog: {"recommendation_id", "user_external_id", "model",
"items": [[item id, score, reason object], ...], "experiment"?, "variant"?}); a page is a slice of it.
The API and the dashboard turn an answer into JSON with `to_json()` (the RecommendationOut /
ExplanationOut shapes of shoprec.api.schemas).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shoprec.explain import Reason

if TYPE_CHECKING:
    from shoprec.service.chain import Ranked
    from shoprec.service.experiments import Assignment


@dataclass(frozen=True, slots=True)
class RecommendedItem:
    item_id: str
    score: float
    reason: Reason

    def to_json(self) -> dict[str, Any]:
        return {"item_id": self.item_id, "score": self.score, "reason": self.reason.to_json()}


@dataclass(frozen=True, slots=True)
class Recommendation:
    """A page of a logged list (RecommendationOut). `experiment`/`variant`: the running experiment that chose it."""

    recommendation_id: str
    model: str | None
    offset: int
    items: tuple[RecommendedItem, ...]
    experiment: str | None = None
    variant: str | None = None

    @property
    def item_ids(self) -> list[str]:
        return [item.item_id for item in self.items]

    def to_json(self) -> dict[str, Any]:
        return {"recommendation_id": self.recommendation_id, "model": self.model, "offset": self.offset,
                "items": [item.to_json() for item in self.items], "experiment": self.experiment,
                "variant": self.variant}


@dataclass(frozen=True, slots=True)
class Explanation:
    """Why an item would be recommended to a user (ExplanationOut)."""

    user_id: str
    item_id: str
    model: str | None
    score: float
    reason: Reason
    experiment: str | None = None
    variant: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"user_id": self.user_id, "item_id": self.item_id, "model": self.model, "score": self.score,
                "reason": self.reason.to_json(), "experiment": self.experiment, "variant": self.variant}


@dataclass(frozen=True, slots=True)
class FeedbackTarget:
    """Whom feedback on a served item is about: the list's user as stored (None: an anonymous list), and when."""

    user_id: str | None
    timestamp: float


def log_entry(rec_id: str, user: str | None, model: str | None, ranked: Ranked,
              assignment: Assignment | None = None) -> dict[str, Any]:
    """The log entry of a new list (a reason shared by many items, e.g. a popularity level's, is written once)."""
    written: dict[int, dict[str, Any]] = {}
    rows = []
    for item, score, reason in zip(ranked.items, ranked.scores, ranked.reasons, strict=True):
        as_json = written.get(id(reason))
        if as_json is None:
            as_json = written[id(reason)] = reason.to_json()
        rows.append([item, score, as_json])
    entry: dict[str, Any] = {"recommendation_id": rec_id, "user_external_id": user, "model": model, "items": rows}
    if assignment is not None:
        entry.update(experiment=assignment.experiment_id, variant=assignment.variant)
    return entry


def page(entry: dict[str, Any], k: int, offset: int, reasons: Sequence[Reason] | None = None) -> Recommendation:
    """Items offset..offset+k of a logged list; `reasons`: the list's own Reasons when the caller has them
    (a list just ranked), else they are read from the entry."""
    rows = entry["items"][offset:offset + k]
    if reasons is not None:
        items = tuple(RecommendedItem(r[0], r[1], reason) for r, reason in zip(rows, reasons[offset:], strict=False))
    else:
        items = tuple(RecommendedItem(r[0], r[1], Reason.from_json(r[2])) for r in rows)
    return Recommendation(entry["recommendation_id"], entry["model"], offset, items, entry.get("experiment"),
                          entry.get("variant"))
