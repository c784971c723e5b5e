"""Recommendations, similar items, anonymous sessions and feedback."""

from __future__ import annotations

from collections import Counter
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import JSONResponse

from shoprec.api.auth import PlatformDep, ServicesDep
from shoprec.api.idempotency import IdempotencyKeyDep, idempotent
from shoprec.api.schemas import ExplanationOut, FeedbackIn, FeedbackOut, RecommendationOut, SessionIn
from shoprec.data.records import EventRecord
from shoprec.rules import Rules
from shoprec.rules.expr import MAX_EXPRESSION_LENGTH
from shoprec.rules.rules import MAX_BOOSTS
from shoprec.service import Filters
from shoprec.service.answers import Recommendation
from shoprec.service.cache import dumps
from shoprec.service.errors import RecordError, RecordErrors
from shoprec.storage.tables import MAX_ID_LENGTH
from shoprec.types import EventType

router = APIRouter(prefix="/v1", tags=["recommendations"])
IdPath = Annotated[str, Path(min_length=1, max_length=MAX_ID_LENGTH, pattern=r"^[^\x00]*$")]
K = Annotated[int, Query(ge=1, le=100)]
FilterParam = Annotated[str | None, Query(max_length=MAX_EXPRESSION_LENGTH, description=(
    'business rule: only items matching this expression, e.g. category in ["Makeup", "Nails"] and price <= 30 '
    "(docs/serving.md, Business rules); 422 bad_expression naming the position and the field"))]
BoostParam = Annotated[list[str] | None, Query(max_length=MAX_BOOSTS, description=(
    'business rule, repeatable: "EXPRESSION: WEIGHT" adds WEIGHT x the score spread to matching items '
    '(negative: buries them), e.g. brand == "Acme": 0.3'))]
PinParam = Annotated[str | None, Query(max_length=100_000, description=(
    "business rule: comma-separated ITEM_ID:POSITION (1-based) pins, e.g. sku-1:1,sku-7:4; an unknown item is 422"))]
CapParam = Annotated[int | None, Query(ge=1, le=1000, description="business rule: at most this many items per "
                                                                  "category (brand) in the list")]
DiversityParam = Annotated[float | None, Query(ge=0, le=1, allow_inf_nan=False, description=(
    "business rule: MMR diversity weight from 0 (off) to 1"))]


class FastJSONResponse(JSONResponse):
    """JSONResponse rendered by orjson (several times faster than json.dumps for a list with its reasons)."""

    def render(self, content: Any) -> bytes:
        return dumps(content)


def check_prices(min_price: float | None, max_price: float | None) -> None:
    """422 naming both parameters when min_price is above max_price."""
    if min_price is not None and max_price is not None and min_price > max_price:
        message = f"min_price ({min_price:g}) is above max_price ({max_price:g})"
        raise RecordErrors([RecordError(None, name, "min_above_max", message) for name in ("min_price", "max_price")])


def _count(request: Request, platform: str, answer: Recommendation) -> Response:
    """The answer as JSON, after counting its items by fallback level. `to_json()` gives the RecommendationOut
    shape (tests validate the bytes against the schema), so it is sent as it is rather than validated again."""
    counter = request.app.state.metrics.recommended
    levels = Counter(item.reason.level or "?" for item in answer.items)
    for level, count in levels.items():
        counter.labels(platform, level).inc(count)
    return FastJSONResponse(answer.to_json())


@router.get("/users/{user_id}/recommendations", response_model=RecommendationOut)
async def recommendations(
    user_id: IdPath, platform: PlatformDep, services: ServicesDep, request: Request, k: K = 10,
    offset: Annotated[int, Query(ge=0, le=99, description="offset + k <= the list depth (100 by default)")] = 0,
    category: Annotated[str | None, Query(max_length=1000)] = None,
    min_price: Annotated[float | None, Query(allow_inf_nan=False)] = None,
    max_price: Annotated[float | None, Query(allow_inf_nan=False)] = None,
    exclude: Annotated[str | None, Query(max_length=100_000, description="comma-separated item ids")] = None,
    include_seen: bool = False,
    recommendation_id: Annotated[str | None, Query(max_length=64, description="page through this list")] = None,
    filter: FilterParam = None, boost: BoostParam = None, pin: PinParam = None,
    max_per_category: CapParam = None, max_per_brand: CapParam = None, diversity: DiversityParam = None,
) -> Response:
    """Top-k items for a user (a new user gets a cold-start list); filters never let an excluded item through.
    offset + k may not exceed the list depth (100 by default): 422 naming offset."""
    check_prices(min_price, max_price)
    depth = services.config.list_depth
    if offset + k > depth:
        message = f"offset + k must be at most {depth}, got offset {offset} and k {k}"
        raise RecordErrors([RecordError(None, name, "page_too_deep", message) for name in ("offset", "k")])
    excluded = tuple(x.strip() for x in (exclude or "").split(",") if x.strip())
    rules = Rules.parse(filter, boost, pin, max_per_category, max_per_brand, diversity)
    filters = Filters(category=category or None, min_price=min_price, max_price=max_price, exclude=excluded,
                      include_seen=include_seen, rules=rules)
    answer = services.recommend.recommend(platform, user_id, k, offset, filters, recommendation_id)
    return _count(request, platform, answer)


@router.get("/users/{user_id}/recommendations/explain", response_model=ExplanationOut)
def explain(user_id: IdPath, platform: PlatformDep, services: ServicesDep,
            item_id: Annotated[str, Query(min_length=1, max_length=MAX_ID_LENGTH)]) -> ExplanationOut:
    """Why an item (recommended or not) would be recommended to the user: the model's leave-one-out
    attribution over their history, or the popularity fallback (a cold user); 404 for an unknown item."""
    return ExplanationOut(**services.recommend.explain(platform, user_id, item_id).to_json())


@router.get("/items/{item_id}/similar", response_model=RecommendationOut)
def similar(item_id: IdPath, platform: PlatformDep, services: ServicesDep, request: Request, k: K = 10,
            filter: FilterParam = None, boost: BoostParam = None, pin: PinParam = None,
            max_per_category: CapParam = None, max_per_brand: CapParam = None, diversity: DiversityParam = None,
            ) -> Response:
    """Items similar to an item (a new item through its text), under the platform's saved business rules and
    this request's."""
    rules = Rules.parse(filter, boost, pin, max_per_category, max_per_brand, diversity)
    return _count(request, platform, services.recommend.similar(platform, item_id, k, rules))


@router.post("/sessions/recommendations", response_model=RecommendationOut)
def session(body: SessionIn, platform: PlatformDep, services: ServicesDep, request: Request) -> Response:
    """Recommendations for an anonymous visitor from the session's items."""
    check_prices(body.min_price, body.max_price)
    rules = Rules.parse(body.filter, body.boost, body.pin, body.max_per_category, body.max_per_brand,
                        body.diversity)
    filters = Filters(category=body.category or None, min_price=body.min_price, max_price=body.max_price,
                      exclude=tuple(body.exclude), rules=rules)
    events = [e for e in body.history if e.type not in (EventType.DISLIKE, EventType.IMPRESSION)]
    return _count(request, platform, services.recommend.session(
        platform, [e.item_id for e in events], body.k, filters, types=[EventType(e.type).value for e in events]))


@router.post("/feedback", response_model=FeedbackOut)
def feedback(body: FeedbackIn, platform: PlatformDep, services: ServicesDep, request: Request,
             idempotency_key: IdempotencyKeyDep = None) -> Response:
    """Feedback on a recommended item; for a known user it is also stored as an event (it changes the next list).
    With an Idempotency-Key, a retry gets the first answer and records nothing again."""

    def work(now: float) -> FeedbackOut:
        logged = services.recommend.feedback(platform, body.recommendation_id, body.item_id, body.type)
        user = logged.user_id
        if user is not None:
            event = EventRecord(user_id=user, item_id=body.item_id, event_type=EventType(body.type),
                                timestamp=logged.timestamp, context={"recommendation_id": body.recommendation_id})
            stored = services.data.add_events(platform, [event], stored_ids=True).stored.events
            request.app.state.metrics.events.labels(platform).inc(stored)
        return FeedbackOut(recommendation_id=body.recommendation_id, item_id=body.item_id, type=body.type,
                           event_stored=user is not None)

    return idempotent(request, services, platform, idempotency_key, body.model_dump(mode="json"), work)


