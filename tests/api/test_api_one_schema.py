"""One definition of an event, an item and a user: the same records sent over REST and imported from a file
(`shoprec import`) store the same rows; and the request checks every route shares (415 for a body that is not
JSON, a plain sentence for a body of the wrong shape, unknown query parameters refused, one error vocabulary)."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from fastapi.testclient import TestClient

from shoprec.api import create_app
from shoprec.api.errors import CODES
from shoprec.cli.main import _register, cli
from shoprec.service import Services
from shoprec.service.testing import ReadyPlatform, local_services
from shoprec.storage import tables

ITEMS: list[dict[str, Any]] = [
    {"item_id": "i1", "title": "Mug", "category": ["Home", "Kitchen"], "available": "yes", "price": 7.5,
     "currency": "EUR", "image_url": "https://example.invalid/1.png"},
    {"item_id": "i2", "title": "Pan", "category": "Home > Kitchen", "available": "no", "brand": "B",
     "attributes": {"colour": "red"}, "size": 3},
    {"item_id": 3, "title": "Cup", "available": 1},
]
USERS: list[dict[str, Any]] = [
    {"user_id": "u1", "age": 30},
    {"user_id": "u2", "attributes": {"tier": "gold"}, "country": "FR"},
]
EVENTS: list[dict[str, Any]] = [
    {"user_id": "u1", "item_id": "i1", "type": "VIEW", "timestamp": "2024-01-01T10:00:00"},
    {"user_id": "u1", "item_id": "i2", "event_type": "add_to_cart", "timestamp": 1704103260, "session_id": "s1",
     "context": {"page": "home"}},
    {"user_id": "u2", "item_id": 3, "event_type": "Purchase", "timestamp": "2024-01-02T10:00:00+01:00",
     "value": 2, "channel": "app"},
    {"user_id": "u2", "item_id": "i1", "type": "rating", "timestamp": "1704200000", "value": "4.5"},
]


@pytest.fixture
def two(tmp_path: Path) -> Iterator[tuple[Services, TestClient]]:
    """Services over one SQLite file with platforms `rest` and `files`, and a client with rest's key."""
    svc = local_services(tmp_path / "svc")
    key = svc.platforms.create("rest")
    svc.platforms.create("files")
    app = create_app(svc.settings, svc.config, services=svc)
    with TestClient(app, headers={"X-API-Key": key}, raise_server_exceptions=False) as client:
        yield svc, client
    svc.close()


def _import(svc: Services, path: Path, fmt: str) -> None:
    _register()
    result = CliRunner().invoke(cli, ["--db", svc.settings.database_url, "import", str(path), "-f", fmt,
                                      "-p", "files"], catch_exceptions=False)
    assert result.exit_code == 0, result.output


def _jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def _stored(svc: Services, platform: str) -> dict[str, Any]:
    """Every stored row of the platform (without ids and write times), in a stable order."""
    with svc.engine.connect() as conn:
        pid = conn.execute(sa.select(tables.platforms.c.id).where(tables.platforms.c.name == platform)).scalar_one()
        i, u, e = tables.items, tables.users, tables.events
        items = conn.execute(sa.select(i.c.external_id, i.c.title, i.c.description, i.c.category, i.c.brand,
                                       i.c.price, i.c.currency, i.c.attributes, i.c.available)
                             .where(i.c.platform_id == pid).order_by(i.c.external_id)).all()
        users = conn.execute(sa.select(u.c.external_id, u.c.attributes).where(u.c.platform_id == pid)
                             .order_by(u.c.external_id)).all()
        events = conn.execute(sa.select(u.c.external_id, i.c.external_id, e.c.event_type, e.c.value, e.c.timestamp,
                                        e.c.session_id, e.c.context, e.c.text)
                              .join(u, u.c.id == e.c.user_id).join(i, i.c.id == e.c.item_id)
                              .where(e.c.platform_id == pid).order_by(e.c.timestamp)).all()
    return {"items": [tuple(r) for r in items], "users": [tuple(r) for r in users],
            "events": [tuple(r) for r in events]}


def test_the_same_records_over_rest_and_from_files_store_the_same_rows(two: tuple[Services, TestClient],
                                                                       tmp_path: Path) -> None:
    svc, client = two
    for route, method, body in (("/v1/items", "PUT", ITEMS), ("/v1/users", "POST", USERS),
                                ("/v1/events", "POST", EVENTS)):
        answer = client.request(method, route, json=body)
        assert answer.status_code == 200, answer.text
    _import(svc, _jsonl(tmp_path / "items.jsonl", ITEMS), "items-jsonl")
    _import(svc, _jsonl(tmp_path / "users.jsonl", USERS), "users-jsonl")
    _import(svc, _jsonl(tmp_path / "events.jsonl", EVENTS), "events-jsonl")
    rest, files = _stored(svc, "rest"), _stored(svc, "files")
    assert rest == files
    by_id = {row[0]: row for row in rest["items"]}
    assert by_id["i1"][3] == "Home > Kitchen" and by_id["i1"][7] == {"image_url": "https://example.invalid/1.png"}
    assert by_id["i2"][7] == {"colour": "red", "size": 3} and by_id["i2"][8] is False and by_id["3"][8] is True
    assert dict(rest["users"]) == {"u1": {"age": 30}, "u2": {"tier": "gold", "country": "FR"}}
    assert [(r[2], r[3], r[4]) for r in rest["events"]] == [
        ("view", None, 1704103200.0), ("cart", None, 1704103260.0), ("purchase", 2.0, 1704186000.0),
        ("rating", 4.5, 1704200000.0)]
    assert rest["events"][1][6] == {"page": "home"} and rest["events"][2][6] == {"channel": "app"}


def test_csv_events_with_a_type_column_match_rest(two: tuple[Services, TestClient], tmp_path: Path) -> None:
    svc, client = two
    events = [{k: v for k, v in e.items() if k != "context"} for e in EVENTS]
    for e in events:
        e["type"] = e.pop("event_type", None) or e["type"]
    path = tmp_path / "events.csv"
    columns = ["user_id", "item_id", "type", "timestamp", "value", "session_id", "channel"]
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        writer.writerows(events)
    assert client.post("/v1/events", json=events).status_code == 200
    _import(svc, path, "events-csv")
    rest, files = _stored(svc, "rest"), _stored(svc, "files")
    assert rest["events"] == files["events"] and len(rest["events"]) == 4


@pytest.mark.parametrize(("record", "field"), [
    ({"user_id": "u", "item_id": "i", "type": "teleport", "timestamp": 1704103200}, "type"),
    ({"user_id": "u", "item_id": "i", "type": "view", "timestamp": "next tuesday"}, "timestamp"),
    ({"user_id": "u", "item_id": "i", "type": "view", "context": [1], "timestamp": 1704103200}, "context"),
])
def test_records_both_paths_refuse_are_named_alike(two: tuple[Services, TestClient], tmp_path: Path,
                                                   record: dict[str, Any], field: str) -> None:
    svc, client = two
    answer = client.post("/v1/events", json=[record])
    assert answer.status_code == 422 and answer.json()["error"] == "invalid_request"
    assert answer.json()["errors"][0]["field"] == field
    _register()
    report = CliRunner().invoke(cli, ["--db", svc.settings.database_url, "import",
                                      str(_jsonl(tmp_path / "bad.jsonl", [record])), "-f", "events-jsonl",
                                      "-p", "files", "--json"])
    assert f"field={field}" in report.output or f"field={'event_type' if field == 'type' else field}" \
        in report.output, report.output


def test_an_item_put_with_an_attributes_string_is_refused_naming_it(client: TestClient) -> None:
    answer = client.put("/v1/items", json=[{"item_id": "a"}, {"item_id": "b", "attributes": "red"}])
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["index"] == 1 and answer.json()["errors"][0]["field"] == "attributes"


# ------------------------------------------------------------------ request checks shared by every route
@pytest.mark.parametrize("headers", [{"Content-Type": "text/plain"},
                                     {"Content-Type": "application/x-www-form-urlencoded"}, {}])
def test_a_body_that_is_not_declared_json_is_415(client: TestClient, headers: dict[str, str]) -> None:
    answer = client.post("/v1/events", content=b'[{"user_id": "u", "item_id": "i", "type": "view"}]',
                         headers=headers)
    assert answer.status_code == 415, answer.text
    assert answer.json()["error"] == "unsupported_media_type" and "application/json" in answer.json()["message"]


def test_json_with_a_charset_or_a_json_suffix_is_accepted(client: TestClient, shop: ReadyPlatform) -> None:
    body = json.dumps([{"user_id": "u", "item_id": shop.item_ids[0], "type": "view"}]).encode()
    for content_type in ("application/json; charset=utf-8", "application/vnd.shoprec+json"):
        assert client.post("/v1/events", content=body, headers={"Content-Type": content_type}).status_code == 200


@pytest.mark.parametrize(("route", "noun"), [("/v1/events", "events"), ("/v1/users", "users")])
def test_an_object_where_a_list_is_expected_says_so(client: TestClient, route: str, noun: str) -> None:
    answer = client.post(route, json={"user_id": "u", "item_id": "i", "type": "view"})
    assert answer.status_code == 422
    assert answer.json()["message"] == f"expected a JSON array of {noun}, got an object: wrap it in [...]"


@pytest.mark.parametrize(("route", "params"), [
    ("/v1/users/u1/recommendations", {"price_min": "abc"}),
    ("/v1/items/i1/similar", {"limit": "3"}),
    ("/v1/models", {"x": "1"}),
    ("/v1/jobs", {"state": "queued"}),
    ("/v1/health/live", {"verbose": "1"}),
])
def test_unknown_query_parameters_are_refused_naming_the_valid_ones(client: TestClient, route: str,
                                                                    params: dict[str, str]) -> None:
    answer = client.get(route, params=params)
    assert answer.status_code == 422, answer.text
    body = answer.json()
    name = next(iter(params))
    assert body["error"] == "invalid_request" and body["errors"][0]["field"] == name
    assert body["errors"][0]["reason"] == "unknown_parameter" and "valid here" in body["message"]


def test_known_parameters_still_work_and_the_valid_ones_are_listed(client: TestClient) -> None:
    answer = client.get("/v1/users/nobody/recommendations", params={"price_min": "1"})
    assert "min_price" in answer.json()["message"] and "max_price" in answer.json()["message"]
    assert client.get("/v1/users/nobody/recommendations", params={"min_price": "1", "k": 3}).status_code == 200


def test_min_price_above_max_price_names_both(client: TestClient) -> None:
    answer = client.get("/v1/users/nobody/recommendations", params={"min_price": 10, "max_price": 5})
    assert answer.status_code == 422
    assert [e["field"] for e in answer.json()["errors"]] == ["min_price", "max_price"]
    session = client.post("/v1/sessions/recommendations", json={"history": [], "min_price": 10, "max_price": 5})
    assert [e["field"] for e in session.json()["errors"]] == ["min_price", "max_price"]


def test_a_page_past_the_list_depth_names_offset_and_k(client: TestClient) -> None:
    answer = client.get("/v1/users/nobody/recommendations", params={"offset": 95, "k": 10})
    assert answer.status_code == 422 and [e["field"] for e in answer.json()["errors"]] == ["offset", "k"]


def test_every_route_family_answers_errors_in_one_vocabulary(client: TestClient) -> None:
    """One wrong request per route family: each answer is {error, message, errors} with a code of CODES, and
    the same kind of mistake (a bad field or parameter) gets the same code everywhere."""
    invalid = [
        client.put("/v1/items", json=[{"item_id": ""}]),
        client.post("/v1/users", json=[{"user_id": ""}]),
        client.post("/v1/events", json=[{"user_id": "u"}]),
        client.get("/v1/users/u/recommendations", params={"k": 0}),
        client.post("/v1/feedback", json={"recommendation_id": "x"}),
        client.post("/v1/models/train", json={"model": ""}),
        client.get("/v1/jobs", params={"limit": 0}),
        client.post("/v1/experiments", json={"name": "x", "variants": []}),
        client.put("/v1/retraining/policy", json={"action": "explode"}),
        client.post("/v1/keys", json={"scopes": 5}),
        client.post("/v1/sessions/recommendations", json={"history": "x"}),
    ]
    for answer in invalid:
        assert answer.status_code == 422, (answer.request.url, answer.text)
        assert answer.json()["error"] == "invalid_request", answer.text
    others = [
        (client.get("/v1/items/ghost"), 404), (client.get("/v1/jobs/" + "f" * 32), 404),
        (client.get("/v1/experiments/nope"), 404), (client.delete("/v1/models"), 405),
        (client.get("/v1/models", headers={"X-API-Key": "nope"}), 401),
        (client.post("/v1/events", content=b"[", headers={"Content-Type": "application/json"}), 400),
        (client.post("/v1/events", content=b"[]", headers={"Content-Type": "text/csv"}), 415),
    ]
    for answer, status in [(a, 422) for a in invalid] + others:
        body = answer.json()
        assert answer.status_code == status, (answer.request.url, answer.text)
        assert set(body) == {"error", "message", "errors"} and CODES[body["error"]][0] == status, body


def test_similar_items_are_worded_item_to_item(client: TestClient, shop: ReadyPlatform) -> None:
    """No person is involved in a similar-items list: its reasons never say "Because you ..."."""
    seen = 0
    for item in shop.item_ids[:5]:
        answer = client.get(f"/v1/items/{item}/similar", params={"k": 5}).json()
        for rec in answer["items"]:
            text = rec["reason"].get("text") or ""
            assert not text.startswith("Because you"), rec
            if rec["reason"].get("level") == "item_to_item" and rec["reason"]["type"] == "history":
                assert text.startswith("Similar to "), rec
                seen += 1
    assert seen  # the model's item-to-item level answered at least once


def test_docs_load_only_local_assets(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    html = page.text
    assert "cdn" not in html.lower() and "https://" not in html and "http://" not in html
    import re

    urls = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html) + re.findall(r"url: ?'([^']+)'", html)
    assert any(u.endswith("swagger-ui-bundle.js") for u in urls) and any(u.endswith(".css") for u in urls)
    for url in urls:
        assert url.startswith("/"), url
        assert client.get(url).status_code == 200, url
    assert client.get("/redoc").status_code == 404
