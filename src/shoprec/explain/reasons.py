"""Reasons (a typed `Reason`, JSON through `Reason.to_json`) of the four kinds, and their human text."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

BECAUSE = 3  # history items named in a history reason

VERBS = {"purchase": "bought", "cart": "added to your cart", "like": "liked", "rating": "rated",
         "review": "reviewed", "click": "viewed", "view": "viewed"}


@dataclass(slots=True)  # not frozen: a served list builds ~50, and a frozen __init__ costs 2.5x (treat as immutable)
class Reason:
    """Why an item is in a list. `type`: history, popular_in_category, similar_text or fallback_popular;
    `source`: the model name, "popularity" or "content"; `level`: the serving chain's level (personal,
    session, item_to_item, content, popular_category, popular); `model_id` and `candidates` ("ann",
    "filtered") for a model's reasons; `because_of`/`weights` for a history reason; `category` for
    popular_in_category; `item_id` for similar_text; `text`: the sentence shown to a shopper; `rules`: the
    business rules that moved the item in its list (boost, bury, pin, max_per_category, max_per_brand,
    diversity; shoprec.rules). A pinned item's own reason has type "pinned", source "rules", level "pinned"."""

    type: str
    source: str
    level: str | None = None
    model_id: str | None = None
    candidates: str | None = None
    because_of: tuple[str, ...] | None = None
    weights: tuple[float, ...] | None = None
    category: str | None = None
    item_id: str | None = None
    text: str | None = None
    rules: tuple[str, ...] | None = None  # the business rules that moved the item (shoprec.rules): boost, pin, ...

    def at(self, level: str) -> Reason:
        """This reason placed by the chain level `level`."""
        return replace(self, level=level)

    def moved_by(self, rules: tuple[str, ...]) -> Reason:
        """A copy naming the business rules that moved the item (positional: ~20x cheaper than copy.copy of a
        slotted dataclass, and a list with rules marks most of its ~50 reasons)."""
        return Reason(self.type, self.source, self.level, self.model_id, self.candidates, self.because_of,
                      self.weights, self.category, self.item_id, self.text, rules)

    def to_json(self) -> dict[str, Any]:
        """The JSON object, fields that are None left out. Key order (the bytes the API has always sent):
        a model's reasons name their level and model before the rest; the rules' reasons name their level last."""
        out: dict[str, Any] = {"type": self.type, "source": self.source}
        late_level = self.model_id is None
        if self.level is not None and not late_level:
            out["level"] = self.level
        if self.model_id is not None:
            out["model_id"] = self.model_id
        if self.candidates is not None:
            out["candidates"] = self.candidates
        if self.because_of is not None:
            out["because_of"] = list(self.because_of)
        if self.weights is not None:
            out["weights"] = list(self.weights)
        if self.category is not None:
            out["category"] = self.category
        if self.item_id is not None:
            out["item_id"] = self.item_id
        if self.text is not None:
            out["text"] = self.text
        if self.rules is not None:
            out["rules"] = list(self.rules)
        if self.level is not None and late_level:
            out["level"] = self.level
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Reason:
        """The Reason of a JSON object written by `to_json` (e.g. a list read back from the recommendation log)."""
        because, weights = data.get("because_of"), data.get("weights")
        return cls(type=data["type"], source=data["source"], level=data.get("level"), model_id=data.get("model_id"),
                   candidates=data.get("candidates"),
                   because_of=tuple(because) if because is not None else None,
                   weights=tuple(weights) if weights is not None else None,
                   category=data.get("category"), item_id=data.get("item_id"), text=data.get("text"),
                   rules=tuple(data["rules"]) if data.get("rules") is not None else None)


def history_reason(causes: Sequence[tuple[str, float]], source: str, *, titles: dict[str, str] | None = None,
                   verbs: dict[str, str] | None = None, level: str | None = None, model_id: str | None = None,
                   candidates: str | None = None) -> Reason:
    """A history reason from (history item id, score drop) pairs, most influential first.

    Only items whose removal lowers the score are named (at most BECAUSE); when none does, the score
    does not depend on the history and the reason is the model's popularity prior (fallback_popular)."""
    ids = [i for i, _ in causes]
    return history_reasons([list(range(len(ids)))], [[round(float(w), 6) for _, w in causes]], ids, source,
                           titles=titles, verbs=verbs, level=level, model_id=model_id, candidates=candidates)[0]


def history_reasons(positions: Sequence[Sequence[int]], weights: Sequence[Sequence[float]], ids: Sequence[str],
                    source: str, *, titles: dict[str, str] | None = None, verbs: dict[str, str] | None = None,
                    level: str | None = None, model_id: str | None = None, candidates: str | None = None
                    ) -> list[Reason]:
    """`history_reason` of many targets whose causes come from one list of history items `ids`: target t's
    causes are ids[positions[t][j]] with drops weights[t][j] (rounded floats), most influential first. Each
    history item's text is written once (a list explains ~50 items from the same ~20 history items)."""
    texts: dict[str, str | None] = {}
    out = []
    for pos, ws in zip(positions, weights, strict=True):
        because = [ids[j] for j, w in zip(pos, ws, strict=True) if w > 0][:BECAUSE]
        if not because:
            out.append(Reason("fallback_popular", source, level=level, model_id=model_id, candidates=candidates,
                              text="Popular right now"))
            continue
        top = because[0]
        if top not in texts:
            texts[top] = history_text(top, titles, verbs, level)
        out.append(Reason("history", source, level=level, model_id=model_id, candidates=candidates,
                          because_of=tuple(because), weights=tuple([w for w in ws if w > 0][:BECAUSE]),
                          text=texts[top] or None))
    return out


def history_text(item_id: str, titles: dict[str, str] | None, verbs: dict[str, str] | None, level: str | None
                 ) -> str | None:
    """The sentence of a history reason whose top cause is `item_id` (None without its title). A person's
    history says what they did ("Because you bought X"); an item-to-item list (level item_to_item: the
    similar items of one item, no person involved) says "Similar to X"."""
    title = (titles or {}).get(item_id)
    if not title:
        return None
    if level == "item_to_item":
        return f"Similar to {title}"
    return f"Because you {VERBS.get((verbs or {}).get(item_id, ''), 'viewed')} {title}"


def popular_in_category_reason(category: str, source: str = "popularity") -> Reason:
    return Reason("popular_in_category", source, category=category, text=f"Popular in {category}")


def similar_text_reason(item_id: str, title: str = "", source: str = "content") -> Reason:
    return Reason("similar_text", source, item_id=item_id, text=f"Similar to {title}" if title else None)


def pinned_reason() -> Reason:
    """The reason of an item a pin rule placed (shoprec.rules): the shop put it there, no model did."""
    return Reason("pinned", "rules", level="pinned", rules=("pin",))


def fallback_reason(source: str = "popularity") -> Reason:
    return Reason("fallback_popular", source, text="Popular right now")


# ------------------------------------------------------------------ list types (shoprec.service.lists)
def trending_reason(recent: int, previous: int, window: str, category: str | None = None) -> Reason:
    """A trending item: `recent` people acted on it in the last `window` ("24h"), `previous` in the window before."""
    return Reason("trending", "events", category=category, weights=(float(recent), float(previous)),
                  text=f"Trending: {recent} people in the last {window} (up from {previous})")


def buy_again_reason(item_id: str, title: str, times: int) -> Reason:
    """An item of a repurchasable category the person bought `times` times before."""
    name = title or "this"
    text = f"Buy again: you bought {name}" + (f" {times} times" if times > 1 else "")
    return Reason("buy_again", "purchases", item_id=item_id, weights=(float(times),), text=text)


def bought_together_reason(item_id: str, title: str, people: int) -> Reason:
    """An item `people` other shoppers bought along with the cart item `item_id` (its strongest partner)."""
    with_ = f" with {title}" if title else ""
    return Reason("bought_together", "purchases", item_id=item_id, weights=(float(people),),
                  text=f"Frequently bought together{with_}")


def new_arrival_reason(placed_by: Reason | None = None, source: str = "catalog") -> Reason:
    """A recently added item. `placed_by`: the reason of the level that ranked it for the person (a model's
    history reason, a content or popular-in-category reason), kept with type new_arrival; None: newest first."""
    if placed_by is None:
        return Reason("new_arrival", source, text="New arrival")
    text = f"New arrival. {placed_by.text}" if placed_by.text else "New arrival"
    return replace(placed_by, type="new_arrival", text=text)
