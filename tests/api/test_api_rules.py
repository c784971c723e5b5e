"""Business rules over HTTP on a planted catalog (no model: the list is the planted popularity order i00 > i01
> ... > i11): each rule's effect, the reasons naming the rules, errors naming the position / field / id, saved
per-platform defaults isolated between platforms, and the CLI over the same saved rules."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from shoprec.api import create_app
from shoprec.api.schemas import RecommendationOut
from shoprec.cli.main import _register, cli
from shoprec.data.records import EventRecord, ItemRecord
from shoprec.ingest.pipeline import ingest
from shoprec.service import Services
from shoprec.types import EventType

N = 12
CATEGORY = ["Makeup > Eyes"] * 4 + ["Skin Care"] * 4 + ["Nails"] * 4
BRAND = ["Acme", "Acme", "Bolt", "Bolt", "Acme", "Cora", "Cora", "Bolt", "Acme", "Cora", "Bolt", "Bolt"]


def _planted(services: Services, name: str) -> str:
    """Platform `name`: item iNN (category, brand, price 10 x NN + 5, color red for even NN) viewed by N - NN users."""
    key = services.platforms.create(name)
    items = [ItemRecord(f"i{j:02d}", title=f"item {j}", category=CATEGORY[j], brand=BRAND[j], price=10.0 * j + 5,
                        attributes={"color": "red" if j % 2 == 0 else "blue"}) for j in range(N)]
    now = time.time()
    events = [EventRecord(f"u{u}", f"i{j:02d}", EventType.VIEW, now - 60) for j in range(N) for u in range(N - j)]
    ingest(services.engine, name, [*items, *events], privacy=services.privacy.privacy)
    return key


@pytest.fixture
def planted(services: Services) -> tuple[TestClient, TestClient]:
    """Clients of two planted platforms (the same catalog) over one app."""
    keys = _planted(services, "planted"), _planted(services, "other")
    app = create_app(services.settings, services.config, services=services)
    return tuple(TestClient(app, headers={"X-API-Key": k}, raise_server_exceptions=False)  # type: ignore[return-value]
                 for k in keys)


def _list(client: TestClient, **params: object) -> list[dict]:
    resp = client.get("/v1/users/nobody/recommendations", params={"k": 12, **params})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert RecommendationOut.model_validate(body).model_dump(mode="json") == body  # the documented schema
    return body["items"]


def _ids(items: list[dict]) -> list[str]:
    return [i["item_id"] for i in items]


def test_each_rule_on_the_planted_catalog(planted: tuple[TestClient, TestClient]) -> None:
    client, _ = planted
    assert _ids(_list(client)) == [f"i{j:02d}" for j in range(N)]
    only = _ids(_list(client, filter='category in ["Makeup", "Nails"] and price <= 90'))
    assert only == ["i00", "i01", "i02", "i03", "i08"]
    assert _ids(_list(client, filter='attributes.color == "red" and brand != "Acme"')) == ["i02", "i06", "i10"]
    boosted = _list(client, boost=['brand == "Cora": 2'])
    assert _ids(boosted)[:3] == ["i05", "i06", "i09"] and boosted[0]["reason"]["rules"] == ["boost"]
    buried = _list(client, boost=["price < 20: -2"])
    assert _ids(buried)[-2:] == ["i00", "i01"] and buried[-1]["reason"]["rules"] == ["bury"]
    pinned = _list(client, k=5, pin="i11:1,i10:4")
    assert _ids(pinned) == ["i11", "i00", "i01", "i10", "i02"]
    assert pinned[0]["reason"] == {"type": "pinned", "source": "rules", "rules": ["pin"], "level": "pinned"}
    first = client.get("/v1/users/nobody/recommendations", params={"k": 2, "pin": "i11:1,i10:4"}).json()
    page = client.get("/v1/users/nobody/recommendations", params={  # the stored list keeps the rules' reasons
        "k": 2, "offset": 2, "recommendation_id": first["recommendation_id"]}).json()["items"]
    assert _ids(page) == ["i01", "i10"] and page[1]["reason"]["rules"] == ["pin"]
    capped = _list(client, k=6, max_per_category=2)
    assert _ids(capped) == ["i00", "i01", "i04", "i05", "i08", "i09"]
    assert capped[2]["reason"]["rules"] == ["max_per_category"] and "rules" not in capped[1]["reason"]
    assert _ids(_list(client, k=4, max_per_brand=1)) == ["i00", "i02", "i05"]  # three brands only
    diverse = _list(client, k=3, diversity=1.0)  # same-category similarity: one of each category
    assert _ids(diverse) == ["i00", "i04", "i08"] and diverse[1]["reason"]["rules"] == ["diversity"]


def test_session_route_takes_the_rules_in_its_body(planted: tuple[TestClient, TestClient]) -> None:
    client, _ = planted
    resp = client.post("/v1/sessions/recommendations", json={
        "history": [{"item_id": "i00", "type": "view"}], "k": 3, "filter": 'category == "Skin Care"',
        "pin": ["i11:2"], "max_per_brand": 1})
    assert resp.status_code == 200, resp.text
    assert _ids(resp.json()["items"]) == ["i04", "i11", "i05"]


def test_similar_items_take_the_rules_and_the_saved_defaults(planted: tuple[TestClient, TestClient]) -> None:
    client, _ = planted

    def similar(**params: object) -> list[dict]:
        resp = client.get("/v1/items/i00/similar", params={"k": 4, **params})
        assert resp.status_code == 200, resp.text
        return resp.json()["items"]

    plain = _ids(similar())
    assert "i00" not in plain and len(plain) == 4
    ruled = similar(filter='category == "Skin Care"', max_per_brand=1, pin="i11:1")
    ids = _ids(ruled)
    assert ids[0] == "i11" and ruled[0]["reason"]["type"] == "pinned"
    assert all(CATEGORY[int(i[1:])] == "Skin Care" for i in ids[1:])
    assert sorted(BRAND[int(i[1:])] for i in ids[1:]) == ["Acme", "Cora"]  # one per brand; the pin is the Bolt
    assert client.put("/v1/rules", json={"filter": 'brand == "Bolt"'}).status_code == 200
    assert {BRAND[int(i[1:])] for i in _ids(similar())} == {"Bolt"}  # the platform's saved filter
    bad = client.get("/v1/items/i00/similar", params={"filter": 'colour == "red"'})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "filter", bad.text


@pytest.mark.parametrize(("params", "field", "named", "position"), [
    ({"filter": 'price < 10 and colour == "red"'}, "filter", "colour", 15),
    ({"filter": "price >"}, "filter", "expected a number", 7),
    ({"boost": ["brand == 'Acme'"]}, "boost", "expected ':'", 15),
    ({"pin": "i01:1,ghost:2"}, "pin", "ghost", None),
])
def test_bad_rules_are_refused_naming_the_position_and_the_field(planted: tuple[TestClient, TestClient],
                                                                 params: dict, field: str, named: str,
                                                                 position: int | None) -> None:
    client, _ = planted
    resp = client.get("/v1/users/nobody/recommendations", params=params)
    assert resp.status_code == 422 and resp.json()["error"] == "bad_expression", resp.text
    detail = resp.json()["errors"][0]
    assert detail["field"] == field and named in detail["message"] and detail.get("position") == position


def test_a_cap_of_zero_is_refused(planted: tuple[TestClient, TestClient]) -> None:
    client, _ = planted
    for name in ("max_per_category", "max_per_brand"):
        resp = client.get("/v1/users/nobody/recommendations", params={name: 0})
        assert resp.status_code == 422 and resp.json()["errors"][0]["field"] == name, resp.text
    resp = client.put("/v1/rules", json={"max_per_category": 0})
    assert resp.status_code == 422 and resp.json()["errors"][0]["field"] == "max_per_category"


def test_saved_defaults_apply_per_platform_and_combine_with_requests(planted: tuple[TestClient, TestClient]
                                                                     ) -> None:
    client, other = planted
    assert client.get("/v1/rules").json()["updated_at"] is None
    saved = client.put("/v1/rules", json={"filter": "price >= 20", "pin": ["i11:1"], "max_per_category": 1})
    assert saved.status_code == 200, saved.text
    assert saved.json()["filter"] == "price >= 20" and saved.json()["pin"] == ["i11:1"]
    assert _ids(_list(client, k=3)) == ["i11", "i02", "i04"]  # the defaults: filter, pin, cap (i11 is Nails)
    assert _ids(_list(other, k=3)) == ["i00", "i01", "i02"]  # the other platform has none
    assert other.get("/v1/rules").json()["filter"] is None
    # a request narrows the saved filter (AND) and replaces the cap
    assert _ids(_list(client, k=4, filter='brand == "Bolt"', max_per_category=2)) == ["i11", "i02", "i03", "i07"]
    bad = client.put("/v1/rules", json={"pin": ["ghost:1"]})
    assert bad.status_code == 422 and "ghost" in bad.json()["errors"][0]["message"]
    assert client.get("/v1/rules").json()["pin"] == ["i11:1"]  # nothing half-written
    assert client.delete("/v1/rules").json()["filter"] is None
    assert _ids(_list(client, k=3)) == ["i00", "i01", "i02"]


def test_cli_shows_sets_and_clears_the_saved_rules(services: Services, tmp_path: Path) -> None:
    _planted(services, "clishop")
    db = services.settings.database_url
    _register()
    runner = CliRunner()
    out = runner.invoke(cli, ["--db", db, "rules", "set", "-p", "clishop", "--filter", "price < 50",
                              "--boost", 'brand == "Acme": 0.5', "--pin", "i03:2", "--max-per-brand", "2"])
    assert out.exit_code == 0, out.output
    shown = runner.invoke(cli, ["--db", db, "rules", "show", "-p", "clishop"])
    assert '"filter": "price < 50"' in shown.output and '"i03:2"' in shown.output
    bad = runner.invoke(cli, ["--db", db, "rules", "set", "-p", "clishop", "--max-per-category", "0"])
    assert bad.exit_code != 0 and "max_per_category" in str(bad.exception)
    cleared = runner.invoke(cli, ["--db", db, "rules", "clear", "-p", "clishop"])
    assert cleared.exit_code == 0 and '"filter": null' in cleared.output
