"""What the Python API returns: small typed results with a `.to_pandas()` for notebooks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shoprec.explain import Reason
from shoprec.service.answers import Recommendation


@dataclass(frozen=True, slots=True)
class Recommended:
    """One recommended item: its id, its score (the level's: model score, or popularity in [0, 1]) and why."""

    item_id: str
    score: float
    reason: Reason

    def to_dict(self) -> dict[str, Any]:
        r = self.reason
        return {"item_id": self.item_id, "score": self.score, "reason": r.type, "level": r.level,
                "because_of": list(r.because_of) if r.because_of else None, "text": r.text}


class Recommendations(list[Recommended]):
    """A ranked list of Recommended (best first): a plain list, plus `item_ids` and `to_pandas()`."""

    @classmethod
    def of(cls, answer: Recommendation) -> Recommendations:
        return cls(Recommended(i.item_id, i.score, i.reason) for i in answer.items)

    @property
    def item_ids(self) -> list[str]:
        return [r.item_id for r in self]

    def to_pandas(self) -> Any:
        """A DataFrame with columns rank (1-based), item_id, score, reason, level, because_of, text."""
        import pandas as pd

        rows = [{"rank": n, **r.to_dict()} for n, r in enumerate(self, start=1)]
        return pd.DataFrame(rows, columns=["rank", "item_id", "score", "reason", "level", "because_of", "text"])


@dataclass(frozen=True, slots=True)
class Explained:
    """Why `item_id` would be recommended to `user_id`: the score and reason the serving path gives it."""

    user_id: str
    item_id: str
    score: float
    reason: Reason
