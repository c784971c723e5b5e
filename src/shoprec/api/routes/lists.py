"""List types: trending, buy it again, frequently bought together, new arrivals (shoprec.service.lists).

Answers are RecommendationOut lists logged under a recommendation_id (feedback works on them); each item's
reason names its list type (trending, buy_again, bought_together, new_arrival) or the fallback that placed it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from shoprec.api.auth import PlatformDep, ServicesDep
from shoprec.api.errors import ApiError
from shoprec.api.routes.recommend import IdPath, K, _count
from shoprec.api.schemas import CartIn, RecommendationOut
from shoprec.service.lists import UnknownCartItems

router = APIRouter(prefix="/v1", tags=["lists"])
HOURS = r"([1-9][0-9]{0,2}|1[0-9]{3}|20[0-9]{2}|21[0-5][0-9]|2160)h"  # 1h .. 2160h (90 days)
DAYS = r"([1-9]|[1-8][0-9]|90)d"  # 1d .. 90d
Window = Annotated[str, Query(pattern=f"^({HOURS}|{DAYS})$", description="the recent window: 1h..2160h or 1d..90d; "
                                                                         "it is compared with the window before it")]


@router.get("/lists/trending", response_model=RecommendationOut)
def trending(platform: PlatformDep, services: ServicesDep, request: Request, k: K = 10, window: Window = "24h",
             category: Annotated[str | None, Query(max_length=1000)] = None,
             min_count: Annotated[int, Query(ge=1, le=1_000_000, description="people in the window")] = 3,
             ) -> Response:
    """Items rising in the last `window` (at least `min_count` people, more than the window before), optionally
    within a category; then popular items (in the category)."""
    answer = services.lists.trending(platform, k, window, category or None, min_count)
    return _count(request, platform, answer)


@router.get("/users/{user_id}/buy-again", response_model=RecommendationOut)
def buy_again(user_id: IdPath, platform: PlatformDep, services: ServicesDep, request: Request, k: K = 10
              ) -> Response:
    """Items of repurchasable categories (serving.repurchasable) the user bought before; then popular items."""
    return _count(request, platform, services.lists.buy_again(platform, user_id, k))


@router.post("/lists/frequently-bought-together", response_model=RecommendationOut)
def bought_together(body: CartIn, platform: PlatformDep, services: ServicesDep, request: Request) -> Response:
    """Items bought by the people who bought the cart's items; then the model's list for the cart, then popular
    items. An unknown cart item is a 404 naming it (field item_ids, its index)."""
    try:
        answer = services.lists.bought_together(platform, body.item_ids, body.k)
    except UnknownCartItems as exc:
        raise ApiError(404, "not_found", str(exc), [
            {"index": n, "field": "item_ids", "reason": "unknown_item", "message": f"no item {item!r}"}
            for n, item in exc.unknown[:100]]) from None
    return _count(request, platform, answer)


@router.get("/users/{user_id}/new-arrivals", response_model=RecommendationOut)
def new_arrivals(user_id: IdPath, platform: PlatformDep, services: ServicesDep, request: Request, k: K = 10,
                 days: Annotated[int, Query(ge=1, le=365, description="items created in the last days")] = 30,
                 ) -> Response:
    """Items created in the last `days`, ranked for the user; then popular items when fewer are servable."""
    return _count(request, platform, services.lists.new_arrivals(platform, user_id, k, days))
