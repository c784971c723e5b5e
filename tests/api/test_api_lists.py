"""List types over HTTP: trending, buy it again, frequently bought together, new arrivals; the answers are
RecommendationOut field for field, feedback works on them, and bad input is a 4xx naming the parameter."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from shoprec.api import create_app
from shoprec.api.schemas import RecommendationOut, RecommendedItem
from shoprec.service.testing import local_services, synthetic_platform

HOUR = 3600.0


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    """A synthetic shop (itemknn) with "Grocery" repurchasable and planted items and events."""
    svc = local_services(tmp_path, repurchasable=("Grocery",))
    shop = synthetic_platform(svc, "shop", users=30, items=20)
    app = create_app(svc.settings, svc.config, services=svc)
    with TestClient(app, headers={"X-API-Key": shop.api_key}, raise_server_exceptions=False) as c:
        items = [{"item_id": "milk", "title": "Milk", "category": "Grocery > Dairy"},
                 {"item_id": "tv", "title": "TV", "category": "Electronics"},
                 {"item_id": "riser", "title": "Rising Star", "category": "Toys"},
                 {"item_id": "pair-a", "title": "Tent", "category": "Outdoor"},
                 {"item_id": "pair-b", "title": "Tent Pegs", "category": "Outdoor"}]
        assert c.put("/v1/items", json=items).status_code == 200
        now = time.time()
        events = ([{"user_id": f"fan-{n}", "item_id": "riser", "type": "view", "timestamp": now - HOUR - n}
                   for n in range(4)]
                  + [{"user_id": "buyer", "item_id": i, "type": "purchase", "timestamp": now - HOUR}
                     for i in ("milk", "tv")]
                  + [{"user_id": f"camper-{n}", "item_id": i, "type": "purchase", "timestamp": now - HOUR - n}
                     for n in range(2) for i in ("pair-a", "pair-b")])
        resp = c.post("/v1/events", json=events)
        assert resp.status_code == 200 and resp.json()["stored"]["events"] == len(events), resp.text
        yield c
    svc.close()


def _list(resp) -> dict:
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert set(body) == set(RecommendationOut.model_fields), body
    assert all(set(i) == set(RecommendedItem.model_fields) for i in body["items"])
    assert RecommendationOut.model_validate(body).model_dump(mode="json") == body
    return body


def test_trending_and_feedback_on_it(client: TestClient) -> None:
    body = _list(client.get("/v1/lists/trending", params={"k": 4, "window": "6h"}))
    first = body["items"][0]
    assert first["item_id"] == "riser" and len(body["items"]) == 4
    assert first["reason"]["type"] == "trending" and first["reason"]["level"] == "trending"
    assert first["reason"]["weights"] == [4.0, 0.0]
    assert {i["reason"]["level"] for i in body["items"][1:]} == {"popular"}
    toys = _list(client.get("/v1/lists/trending", params={"k": 2, "category": "Electronics", "window": "6h"}))
    assert "riser" not in [i["item_id"] for i in toys["items"]]
    fb = client.post("/v1/feedback", json={"recommendation_id": body["recommendation_id"], "item_id": "riser",
                                           "type": "click"})
    assert fb.status_code == 200 and fb.json()["event_stored"] is False


def test_buy_again_returns_the_repurchasable_purchase_only(client: TestClient) -> None:
    body = _list(client.get("/v1/users/buyer/buy-again", params={"k": 5}))
    ids = [i["item_id"] for i in body["items"]]
    assert ids[0] == "milk" and "tv" not in ids
    assert body["items"][0]["reason"] == {**body["items"][0]["reason"], "type": "buy_again", "item_id": "milk"}
    cold = _list(client.get("/v1/users/nobody/buy-again", params={"k": 3}))
    assert {i["reason"]["type"] for i in cold["items"]} == {"fallback_popular"}
    fb = client.post("/v1/feedback", json={"recommendation_id": body["recommendation_id"], "item_id": "milk",
                                           "type": "purchase"})
    assert fb.status_code == 200 and fb.json()["event_stored"] is True


def test_frequently_bought_together(client: TestClient) -> None:
    body = _list(client.post("/v1/lists/frequently-bought-together", json={"item_ids": ["pair-a"], "k": 3}))
    first = body["items"][0]
    assert first["item_id"] == "pair-b" and first["reason"]["type"] == "bought_together"
    assert first["reason"]["item_id"] == "pair-a" and first["score"] == 2.0
    fallback = _list(client.post("/v1/lists/frequently-bought-together", json={"item_ids": ["riser"], "k": 3}))
    assert "bought_together" not in {i["reason"]["type"] for i in fallback["items"]}


def test_new_arrivals(client: TestClient) -> None:
    body = _list(client.get("/v1/users/fan-0/new-arrivals", params={"k": 5, "days": 1}))
    assert len(body["items"]) == 5 and {i["reason"]["type"] for i in body["items"]} == {"new_arrival"}


@pytest.mark.parametrize(("method", "route", "params", "field"), [
    ("get", "/v1/lists/trending", {"window": "1w"}, "window"),
    ("get", "/v1/lists/trending", {"window": "91d"}, "window"),
    ("get", "/v1/lists/trending", {"k": 0}, "k"),
    ("get", "/v1/lists/trending", {"min_count": 0}, "min_count"),
    ("get", "/v1/lists/trending", {"windw": "6h"}, "windw"),
    ("get", "/v1/users/buyer/buy-again", {"k": 101}, "k"),
    ("get", "/v1/users/buyer/buy-again", {"days": 3}, "days"),
    ("get", "/v1/users/buyer/new-arrivals", {"days": 0}, "days"),
    ("get", "/v1/users/buyer/new-arrivals", {"days": "soon"}, "days"),
    ("post", "/v1/lists/frequently-bought-together", {}, "item_ids"),
])
def test_bad_input_is_a_422_naming_the_parameter(client: TestClient, method: str, route: str,
                                                 params: dict[str, object], field: str) -> None:
    if method == "post":
        resp = client.post(route, json={"item_ids": [], "k": 3})
    else:
        resp = client.get(route, params=params)
    assert resp.status_code == 422, resp.text
    body = resp.json()
    assert body["error"] == "invalid_request" and body["errors"][0]["field"] == field, body


def test_an_unknown_cart_item_is_a_404_naming_it(client: TestClient) -> None:
    resp = client.post("/v1/lists/frequently-bought-together", json={"item_ids": ["pair-a", "ghost"], "k": 3})
    assert resp.status_code == 404, resp.text
    body = resp.json()
    assert body["error"] == "not_found" and "'ghost'" in body["message"]
    assert body["errors"] == [{"index": 1, "field": "item_ids", "reason": "unknown_item", "message": "no item 'ghost'"}]
