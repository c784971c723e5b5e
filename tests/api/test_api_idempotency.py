"""Client retries never duplicate: events with an `event_id`, and write requests with an Idempotency-Key (same
answer, work done once; another body refused), including a client whose connection drops before it reads the
answer and that retries against a real server."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient

from shoprec.api import create_app
from shoprec.datasets import read_records
from shoprec.ingest.pipeline import ingest
from shoprec.service import Services
from shoprec.service.testing import local_services, synthetic_platform
from shoprec.storage import PlatformRepo, find_platform

KEY = "Idempotency-Key"


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[Services, TestClient]]:
    services = local_services(tmp_path)
    key = services.platforms.create("shop")
    app = create_app(services.settings, services.config, services=services)
    with TestClient(app, headers={"X-API-Key": key}, raise_server_exceptions=False) as client:
        yield services, client
    services.close()


def _events(services: Services, platform: str = "shop") -> int:
    with services.engine.connect() as conn:
        return PlatformRepo(conn, find_platform(conn, platform) or 0).count_events()


def _batch(n: int, *, ids: bool = False, user: str = "u1") -> list[dict[str, Any]]:
    """n events without a timestamp (the server gives each request its arrival time)."""
    return [{"user_id": user, "item_id": f"i{i}", "type": "view", **({"event_id": f"ev-{user}-{i}"} if ids else {})}
            for i in range(n)]


def test_the_same_batch_twice_with_event_ids_is_stored_once(api: tuple[Services, TestClient]) -> None:
    services, client = api
    first = client.post("/v1/events", json=_batch(3, ids=True))
    assert first.status_code == 200, first.text
    assert first.json() == {"received": 3, "accepted": 3, "duplicates": 0,
                            "stored": {"events": 3, "items": 3, "users": 1}}  # the events created them
    retry = client.post("/v1/events", json=_batch(3, ids=True))
    assert retry.status_code == 200, retry.text
    assert retry.json()["duplicates"] == 3 and retry.json()["stored"]["events"] == 0
    assert _events(services) == 3
    # without event ids nor a key, the same events sent again are new events (they arrived again)
    client.post("/v1/events", json=_batch(1))
    client.post("/v1/events", json=_batch(1))
    assert _events(services) == 5


def test_the_same_request_twice_with_an_idempotency_key_is_done_once(api: tuple[Services, TestClient]) -> None:
    services, client = api
    first = client.post("/v1/events", json=_batch(4), headers={KEY: "req-1"})
    retry = client.post("/v1/events", json=_batch(4), headers={KEY: "req-1"})
    assert first.status_code == retry.status_code == 200, retry.text
    assert retry.json() == first.json() and first.json()["stored"]["events"] == 4
    assert "Idempotent-Replayed" not in first.headers and retry.headers["Idempotent-Replayed"] == "true"
    assert _events(services) == 4
    for method, path, body in (("PUT", "/v1/items", [{"item_id": "x", "title": "X"}]),
                               ("POST", "/v1/users", [{"user_id": "new", "attributes": {"tier": "gold"}}])):
        answers = [client.request(method, path, json=body, headers={KEY: f"{path}-1"}) for _ in range(2)]
        assert [a.status_code for a in answers] == [200, 200] and answers[0].json() == answers[1].json()
        assert answers[1].headers["Idempotent-Replayed"] == "true"


def test_a_key_reused_with_another_body_is_refused(api: tuple[Services, TestClient]) -> None:
    services, client = api
    assert client.post("/v1/events", json=_batch(2), headers={KEY: "req-2"}).status_code == 200
    other = client.post("/v1/events", json=_batch(3), headers={KEY: "req-2"})
    assert other.status_code == 422, other.text
    assert "Idempotency-Key 'req-2' was used with another request body" in other.json()["message"]
    detail = other.json()["errors"][0]
    assert detail["field"] == "Idempotency-Key" and detail["reason"] == "key_reused"
    elsewhere = client.put("/v1/items", json=[{"item_id": "x"}], headers={KEY: "req-2"})
    assert elsewhere.status_code == 422 and "was used for POST /v1/events" in elsewhere.json()["message"]
    assert _events(services) == 2


def test_a_refused_batch_leaves_the_key_free_for_the_corrected_one(api: tuple[Services, TestClient]) -> None:
    services, client = api
    bad = _batch(2)
    bad[1]["event_id"] = "tab\there"
    refused = client.post("/v1/events", json=bad, headers={KEY: "req-3"})
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"][0] | {"message": ""} == {"index": 1, "field": "event_id",
                                                              "reason": "bad_event_id", "message": ""}
    too_long = client.post("/v1/events", json=[{**bad[0], "event_id": "x" * 129}])
    assert too_long.status_code == 422 and too_long.json()["errors"][0]["field"] == "event_id", too_long.text
    assert _events(services) == 0
    fixed = client.post("/v1/events", json=_batch(2), headers={KEY: "req-3"})
    assert fixed.status_code == 200 and fixed.json()["stored"]["events"] == 2


@pytest.mark.parametrize("value", ["x" * 256, "tab\there", "ключ"])
def test_a_bad_idempotency_key_is_a_clear_4xx(api: tuple[Services, TestClient], value: str) -> None:
    services, client = api
    answer = client.post("/v1/events", json=_batch(1), headers={KEY: value.encode("utf-8")})  # type: ignore[dict-item]
    assert answer.status_code == 422, answer.text
    assert "idempotency-key" in answer.text.lower()
    assert set(answer.json()) == {"error", "message", "errors"}
    assert _events(services) == 0


def test_event_id_from_a_csv_import_and_from_rest_is_one_row(api: tuple[Services, TestClient], tmp_path: Path) -> None:
    services, client = api
    path = tmp_path / "events.csv"
    path.write_text("user_id,item_id,event_type,timestamp,event_id\nu1,i1,purchase,2026-12-01T10:00:00,order-77\n")
    assert ingest(services.engine, "shop", read_records("events-csv", path)).stored_total("events") == 1
    answer = client.post("/v1/events", json=[{"user_id": "u1", "item_id": "i1", "type": "purchase",
                                              "event_id": "order-77"}])
    assert answer.json()["duplicates"] == 1 and answer.json()["stored"]["events"] == 0
    assert _events(services) == 1


def test_the_write_routes_document_the_header(api: tuple[Services, TestClient]) -> None:
    _, client = api
    paths = client.get("/openapi.json").json()["paths"]
    for method, path in (("post", "/v1/events"), ("put", "/v1/items"), ("post", "/v1/users"), ("post", "/v1/feedback")):
        names = {p["name"] for p in paths[path][method].get("parameters", [])}
        assert KEY in names, (method, path, names)
    assert "event_id" in client.get("/openapi.json").json()["components"]["schemas"]["EventIn"]["properties"]


def test_feedback_with_an_idempotency_key_is_recorded_once(tmp_path: Path) -> None:
    services = local_services(tmp_path)
    shop = synthetic_platform(services, "fb", users=20, items=15, model="popular")
    app = create_app(services.settings, services.config, services=services)
    with TestClient(app, headers={"X-API-Key": shop.api_key}) as client:
        user = shop.user_ids[0]
        rec = client.get(f"/v1/users/{user}/recommendations", params={"k": 3}).json()
        before = _events(services, "fb")
        body = {"recommendation_id": rec["recommendation_id"], "item_id": rec["items"][0]["item_id"], "type": "click"}
        answers = [client.post("/v1/feedback", json=body, headers={KEY: "fb-1"}) for _ in range(2)]
    services.close()
    assert answers[0].json() == answers[1].json() and answers[1].headers["Idempotent-Replayed"] == "true"
    assert _events(services, "fb") == before + 1


# ------------------------------------------------------------------------- a real server, a dropped connection
@pytest.fixture
def server(api: tuple[Services, TestClient]) -> Iterator[tuple[Services, str, str]]:
    """The app served by uvicorn in a thread; yields (services, base URL, API key)."""
    services, client = api
    key = client.headers["X-API-Key"]
    app = create_app(services.settings, services.config, services=services)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("uvicorn did not start within 30 s")
        time.sleep(0.05)
    yield services, f"http://127.0.0.1:{port}", key
    srv.should_exit = True
    thread.join(timeout=10)


def _send_and_hang_up(base: str, key: str, body: bytes, idempotency_key: str) -> None:
    """Send a whole POST /v1/events and close the connection without reading a byte of the answer."""
    host, port = base.removeprefix("http://").split(":")
    head = (f"POST /v1/events HTTP/1.1\r\nHost: {host}\r\nX-API-Key: {key}\r\nContent-Type: application/json\r\n"
            f"{KEY}: {idempotency_key}\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head + body)
        sock.shutdown(socket.SHUT_RDWR)


def test_a_client_that_retries_after_a_dropped_connection_stores_one_copy(
        server: tuple[Services, str, str]) -> None:
    services, base, key = server
    batch = _batch(500, user="dropped")  # no timestamps, no event ids: only the key protects them
    _send_and_hang_up(base, key, json.dumps(batch).encode(), "retry-after-drop")
    with httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=30) as http:
        deadline = time.monotonic() + 60
        while True:  # the contract: retry the same request with the same key until it is not 409 (in progress)
            retry = http.post("/v1/events", json=batch, headers={KEY: "retry-after-drop"})
            if retry.status_code != 409 or time.monotonic() > deadline:
                break
            time.sleep(float(retry.headers.get("Retry-After", "1")))
        assert retry.status_code == 200, retry.text
        again = http.post("/v1/events", json=batch, headers={KEY: "retry-after-drop"})
    assert again.status_code == 200 and again.json() == retry.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert retry.json()["received"] == 500
    assert _events(services) == 500  # exactly one copy, whichever try did the work
