"""Auth, items, users and events over HTTP: 4xx JSON bodies naming field and record index, never a 5xx."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from shoprec.service import Services
from shoprec.service.testing import TEST_ADMIN_KEY, ReadyPlatform


def _event(user: str = "u1", item: str = "i1", **extra: object) -> dict:
    return {"user_id": user, "item_id": item, "type": "view", "timestamp": time.time() - 5, **extra}


def _error(resp, status: int) -> dict:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) >= {"error", "message", "errors"}
    return body


def test_keys(client: TestClient, shop: ReadyPlatform) -> None:
    assert _error(client.get("/v1/models", headers={"X-API-Key": ""}), 401)["error"] == "unauthorized"
    assert client.get("/v1/models", headers={"X-API-Key": "sk_nope"}).status_code == 401
    other = client.post("/v1/platforms", json={"name": "other"}, headers={"X-API-Key": TEST_ADMIN_KEY})
    assert other.status_code == 201 and other.json()["api_key"].startswith("sk_")
    assert client.post("/v1/platforms", json={"name": "x"}).status_code == 403  # a platform key is not admin
    other_key = other.json()["api_key"]
    assert client.get(f"/v1/items/{shop.item_ids[0]}", headers={"X-API-Key": other_key}).status_code == 404
    assert client.get(f"/v1/items/{shop.item_ids[0]}", headers={"X-Platform": "other"}).status_code == 403
    admin = {"X-API-Key": TEST_ADMIN_KEY}
    assert client.get("/v1/models", headers=admin).status_code == 422
    assert client.get(f"/v1/items/{shop.item_ids[0]}", headers={**admin, "X-Platform": "shop"}).status_code == 200
    assert client.get("/v1/models", headers={**admin, "X-Platform": "nowhere"}).status_code == 404


def test_items_roundtrip_and_delete(client: TestClient) -> None:
    nasty = "<script>alert(1)</script>'; DROP TABLE items; --"
    resp = client.put("/v1/items", json=[{"item_id": "n1", "title": nasty, "price": 12.5, "category": "Toys"}])
    assert resp.status_code == 200 and resp.json()["accepted"] == 1
    got = client.get("/v1/items/n1").json()
    assert got["title"] == nasty and got["price"] == 12.5 and got["available"] is True
    assert client.delete("/v1/items/n1").status_code == 204
    assert _error(client.get("/v1/items/n1"), 404)["error"] == "not_found"
    assert client.delete("/v1/items/n1").status_code == 204  # deleting again is harmless
    assert client.delete("/v1/items/never").status_code == 404
    assert client.get("/v1/items/" + "x" * 300).status_code == 422


def test_users(client: TestClient, shop: ReadyPlatform) -> None:
    assert client.post("/v1/users", json=[{"user_id": "n1", "attributes": {"age": 30}}]).status_code == 200
    assert client.get("/v1/users/n1").json()["attributes"] == {"age": 30}
    assert client.get(f"/v1/users/{shop.user_ids[0]}").json()["recent_events"]
    assert client.get("/v1/users/ghost").status_code == 404


def test_events_are_stored_and_unknown_users_created(client: TestClient, services: Services) -> None:
    resp = client.post("/v1/events", json=[_event("new-u", "new-i"), _event("new-u", "new-i", type="cart")])
    assert resp.status_code == 200, resp.text
    assert resp.json()["stored"]["events"] == 2
    assert client.get("/v1/users/new-u").status_code == 200
    assert client.get("/v1/items/new-i").json()["title"] == ""  # a bare item


@pytest.mark.parametrize(("record", "field"), [
    ({"user_id": True, "item_id": "i", "type": "view"}, "user_id"),
    ({"item_id": "i", "type": "view"}, "user_id"),
    ({"user_id": "u", "item_id": "i", "type": "teleport"}, "type"),
    ({"user_id": "u", "item_id": "i", "type": "view", "timestamp": "yesterday"}, "timestamp"),
    ({"user_id": "u" * 257, "item_id": "i", "type": "view"}, "user_id"),
    ({"user_id": "u", "item_id": "i", "type": "view", "context": "red"}, "context"),
    ({"user_id": "u", "item_id": "i", "type": "view", "value": "a lot"}, "value"),
    ({"user_id": "u", "item_id": "i"}, "event_type"),
    ({"user_id": "u", "item_id": "i", "type": "view", "timestamp": time.time() + 30 * 86400}, "timestamp"),
    ({"user_id": " ", "item_id": "i", "type": "view"}, "user_id"),
])
def test_bad_events_name_index_and_field_and_write_nothing(client: TestClient, services: Services, record: dict,
                                                            field: str) -> None:
    before = client.get("/v1/users/u1").status_code
    body = _error(client.post("/v1/events", json=[_event(), record]), 422)
    assert body["errors"][0]["index"] == 1
    assert body["errors"][0]["field"] == field
    assert client.get("/v1/users/u1").status_code == before == 404  # record 0 was not written either


def test_oversized_and_malformed_bodies(client: TestClient) -> None:
    assert _error(client.post("/v1/events", json=[_event()] * 10_001), 413)["error"] == "too_large"
    assert client.post("/v1/events", json=[_event()] * 3).status_code == 200  # 3 equal events: one stored
    bad = client.post("/v1/events", content=b"[{\"user_id\": ", headers={"Content-Type": "application/json"})
    assert _error(bad, 400)["error"] == "malformed_json"
    assert client.post("/v1/events", json={"user_id": "u"}).status_code == 422
    assert client.put("/v1/items", json=[{"item_id": "a", "price": "cheap"}]).status_code == 422
    assert client.put("/v1/items", json=[{"item_id": "a", "available": "maybe"}]).status_code == 422


def test_storage_errors_answer_503_without_database_details(client: TestClient, services: Services,
                                                            shop: ReadyPlatform, monkeypatch: pytest.MonkeyPatch,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    """The database's address and the driver's message (which can quote other platforms' values) stay in the
    server log; the caller learns only that storage failed."""
    from shoprec.errors import StorageError

    detail = "cannot read the user in database postgresql://shoprec@db.internal/prod: duplicate 'other-shop-secret'"

    def fail(*args: object, **kwargs: object) -> None:
        raise StorageError(detail)

    monkeypatch.setattr(services.data, "get_user", fail)
    with caplog.at_level("WARNING"):
        res = client.get(f"/v1/users/{shop.user_ids[0]}")
    assert res.status_code == 503 and res.json()["error"] == "storage_unavailable"
    assert "db.internal" not in res.text and "other-shop-secret" not in res.text
    assert detail in caplog.text
