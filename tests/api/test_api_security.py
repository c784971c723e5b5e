"""Tenant isolation, generated from the route table: for every /v1 route and method, platform A's key
acting on platform B's users, items, models, jobs, recommendations, keys and experiments is refused or
answers with A's own data; B's rows are unchanged afterwards and no answer carries B's data.

A route with a path parameter this file does not know fails the test, naming it, so a new route cannot
slip through: give B a value for it in security_fixtures.setup_shops.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.routing import APIRoute
from security_fixtures import (
    B_ITEM,
    B_USER,
    SECRET_MARKER,
    Shops,
    b_secrets,
    dump_platform,
    schema_body,
    setup_shops,
    v1_routes,
)

from shoprec.api import create_app
from shoprec.api.auth import route_scope
from shoprec.service.platform import Principal
from shoprec.service.testing import local_services

OPAQUE_IDS = ("model_id", "job_id", "recommendation_id", "key_id", "experiment_id")  # ids only B can own


@pytest.fixture(scope="module")
def shops(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shops]:
    services = local_services(tmp_path_factory.mktemp("security"))
    app = create_app(services.settings, services.config, services=services)
    try:
        yield setup_shops(services, app)
    finally:
        services.close()


def bodies(shops: Shops) -> dict[tuple[str, str], Any]:
    """Valid bodies for the write routes, naming B's ids wherever a body can name something."""
    ids = shops.b_ids
    return {
        ("POST", "/v1/platforms"): {"name": "shop-b"},
        ("PUT", "/v1/items"): [{"item_id": B_ITEM, "title": "overwritten by A"}],
        ("POST", "/v1/users"): [{"user_id": B_USER, "attributes": {"by": "A"}}],
        ("POST", "/v1/events"): [{"user_id": B_USER, "item_id": B_ITEM, "type": "view"}],
        ("POST", "/v1/sessions/recommendations"): {"history": [{"item_id": B_ITEM}], "k": 5},
        ("POST", "/v1/feedback"): {"recommendation_id": ids["recommendation_id"], "item_id": B_ITEM,
                                   "type": "click"},
        ("POST", "/v1/models/train"): {"model": "popular"},
        ("POST", "/v1/keys"): {"scopes": ["read"]},
        ("POST", "/v1/experiments"): {"name": "a-exp", "variants": [
            {"name": "c", "model_id": ids["model_id"], "share": 0.5},
            {"name": "t", "model_id": ids["model_id"], "share": 0.5}]},
    }


def _fill_path(method: str, path: str, ids: dict[str, str]) -> str:
    names = re.findall(r"\{(\w+)(?::\w+)?\}", path)
    unknown = [n for n in names if n not in ids]
    if unknown:
        pytest.fail(f"route {method} {path} has path parameter {{{unknown[0]}}} that the isolation test does not "
                    f"know: give platform B such a resource in tests/api/security_fixtures.py (setup_shops)")
    return re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: ids[m.group(1)], path)


def _request(shops: Shops, client: Any, method: str, path: str, route: APIRoute) -> tuple[Any, str]:
    url = _fill_path(method, path, shops.b_ids)
    body = bodies(shops).get((method, path))
    if body is None and route.body_field is not None:
        body = schema_body(shops.app, method, path, shops.b_ids)
    response = client.request(method, url, json=body) if body is not None else client.request(method, url)
    return response, f"{url} {body!r}"


def test_route_table_is_covered(shops: Shops) -> None:
    routes = v1_routes(shops.app)
    paths = {p for _, p, _ in routes}
    assert {"/v1/items/{item_id}", "/v1/users/{user_id}", "/v1/jobs/{job_id}", "/v1/keys/{key_id}"} <= paths
    for method, path, _ in routes:
        _fill_path(method, path, shops.b_ids)  # fails naming any unknown parameter


def test_platform_a_cannot_touch_platform_b(shops: Shops) -> None:
    """Every /v1 route and method with A's key (every scope) on B's ids: never a 5xx, never B's data, B unchanged;
    a route naming one of B's opaque ids (model, job, list, key, experiment) is refused outright."""
    before = dump_platform(shops.services, "shop-b")
    secrets = b_secrets(shops)
    problems: list[str] = []
    with shops.client(shops.a.api_key) as ca:
        for method, path, route in v1_routes(shops.app):
            response, sent = _request(shops, ca, method, path, route)
            where = f"{method} {path} -> {response.status_code}"
            leaked = {s for s in secrets if s in response.text and s not in sent}
            if response.status_code >= 500:
                problems.append(f"{where}: server error {response.text[:200]}")
            if leaked:
                problems.append(f"{where}: answer holds B's {sorted(leaked)}")
            if any(f"{{{n}}}" in path for n in OPAQUE_IDS) and response.status_code not in (401, 403, 404):
                problems.append(f"{where}: B's {path} must be 401/403/404 for A")
            if path == "/v1/platforms" and response.status_code != 403:
                problems.append(f"{where}: only the deployment admin creates platforms")
            after = dump_platform(shops.services, "shop-b")
            changed = sorted(t for t in set(before) | set(after) if before.get(t) != after.get(t))
            if changed:
                problems.append(f"{where}: B's tables {changed} changed")
                before = after
    assert not problems, "\n".join(problems)


def test_a_key_naming_platform_b_in_x_platform_is_refused(shops: Shops) -> None:
    before = dump_platform(shops.services, "shop-b")
    with shops.client(shops.a.api_key, **{"X-Platform": "shop-b"}) as ca:
        for method, path, route in v1_routes(shops.app):
            response, _ = _request(shops, ca, method, path, route)
            if path == "/v1/platforms":  # admin-only: refused before the platform is looked at
                assert response.status_code == 403, response.text
                continue
            assert response.status_code == 403, f"{method} {path}: {response.status_code} {response.text[:200]}"
    assert dump_platform(shops.services, "shop-b") == before


def test_every_v1_route_needs_a_key(shops: Shops) -> None:
    with shops.client(None) as anonymous:
        for method, path, route in v1_routes(shops.app):
            response, _ = _request(shops, anonymous, method, path, route)
            assert response.status_code == 401, f"{method} {path} answered {response.status_code} without a key"
            assert response.json()["error"] == "unauthorized"


@pytest.mark.parametrize("key", ["sk_" + "A" * 43, "", "admin-test-key ", "admin-test-keyx", "sk_\u00e9\u00e9",
                                 "' OR '1'='1", "x" * 600])
def test_forged_keys_are_refused(shops: Shops, key: str) -> None:
    with shops.client(None) as c:
        response = c.get(f"/v1/users/{B_USER}", headers={"X-API-Key": key.encode("utf-8")})  # type: ignore[dict-item]
    assert response.status_code in (401, 422), response.text
    assert SECRET_MARKER not in response.text


def test_a_tampered_platform_key_is_refused(shops: Shops) -> None:
    key = shops.b.api_key
    forged = key[:-1] + ("A" if key[-1] != "A" else "B")
    with shops.client(forged) as c:
        response = c.get(f"/v1/users/{B_USER}")
    assert response.status_code == 401 and SECRET_MARKER not in response.text


# ------------------------------------------------------------------------------ scopes
def _scoped_key(shops: Shops, scopes: list[str]) -> str:
    with shops.client(shops.a.api_key) as ca:
        response = ca.post("/v1/keys", json={"scopes": scopes, "name": "+".join(scopes)})
    assert response.status_code == 201, response.text
    key: str = response.json()["api_key"]
    return key


@pytest.mark.parametrize("scopes", [["read"], ["write"], ["read", "write"], ["admin"], ["train"], ["events"],
                                    ["read", "write", "admin"]])
def test_scopes_are_enforced_on_every_route(shops: Shops, scopes: list[str]) -> None:
    """A route needs `admin` when it depends on PlatformAdminDep/AdminDep, `train` when it depends on
    TrainPlatformDep (training, job cancel), `events` for POST /v1/events (a `write` key holds it too), else
    read (GET) or write: an `events` key may do nothing else."""
    key = _scoped_key(shops, scopes)
    own = {**shops.b_ids}  # A's own resources do not matter: the scope check comes first
    with shops.client(key) as c:
        for method, path, route in v1_routes(shops.app):
            needed = route_scope(route, method)
            if Principal(platform="a", scopes=frozenset(scopes)).allows(needed):
                continue
            url = _fill_path(method, path, own)
            body = bodies(shops).get((method, path))
            response = c.request(method, url, json=body) if body is not None else c.request(method, url)
            assert response.status_code == 403, f"{method} {path} with {scopes}: {response.status_code}"
            assert f"lacks the '{needed}' scope" in response.json()["message"]


def test_read_key_reads_but_cannot_write(shops: Shops) -> None:
    key = _scoped_key(shops, ["read"])
    with shops.client(key) as c:
        assert c.get(f"/v1/users/{shops.a.user_ids[0]}/recommendations").status_code == 200
        refused = c.post("/v1/events", json=[{"user_id": "u1", "item_id": shops.a.item_ids[0], "type": "view"}])
        assert refused.status_code == 403 and refused.json()["error"] == "forbidden"
        assert c.get("/v1/keys").status_code == 403  # admin scope


def test_revoked_key_fails_at_once_and_rotated_key_works(shops: Shops) -> None:
    key = _scoped_key(shops, ["read", "write"])
    with shops.client(shops.a.api_key) as admin:
        listed = {k["name"]: k for k in admin.get("/v1/keys").json()}
        key_id = listed["read+write"]["key_id"] if not listed["read+write"]["revoked"] else None
        assert key_id is not None
        with shops.client(key) as c:
            assert c.get("/v1/models").status_code == 200  # cached in this worker now
            rotated = admin.post(f"/v1/keys/{key_id}/rotate")
            assert rotated.status_code == 201, rotated.text
            new = rotated.json()
            assert new["scopes"] == ["read", "write"] and new["key_id"] != key_id
            gone = c.get("/v1/models")
            assert gone.status_code == 401 and "revoked" in gone.json()["message"]
        with shops.client(new["api_key"]) as c2:
            assert c2.get("/v1/models").status_code == 200
        assert admin.delete(f"/v1/keys/{key_id}").status_code == 204  # revoking twice changes nothing
        assert admin.delete("/v1/keys/key_doesnotexist").status_code == 404
        assert admin.delete(f"/v1/keys/{shops.b_ids['key_id']}").status_code == 404  # B's key: not A's
        keys = {k["key_id"]: k for k in admin.get("/v1/keys").json()}
        assert keys[key_id]["revoked"] and keys[key_id]["revoked_at"] is not None
        assert not keys[new["key_id"]]["revoked"]
        actions = [(r["action"], r["subject"]) for r in admin.get("/v1/audit", params={"limit": 1000}).json()]
        assert ("key.revoke", key_id) in actions and ("key.create", new["key_id"]) in actions
        assert all("sk_" not in str(r) for r in actions)


@pytest.mark.parametrize("body", [{"scopes": ["root"]}, {"scopes": []}, {"scopes": "read"}, {"name": ""},
                                  {"name": "n" * 65}, {"scopes": ["read"], "extra": 1}])
def test_bad_key_requests_are_422(shops: Shops, body: dict[str, Any]) -> None:
    with shops.client(shops.a.api_key) as c:
        response = c.post("/v1/keys", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] in ("scopes", "name", "extra", "scopes.0")


def test_model_activation_is_audited(shops: Shops) -> None:
    with shops.client(shops.a.api_key) as c:
        model_id = shops.a.trained.model_id
        assert c.post(f"/v1/models/{model_id}/activate").status_code == 200
        records = c.get("/v1/audit").json()
    key_id = shops.services.platforms.authenticate(shops.a.api_key).key_id  # type: ignore[union-attr]
    assert any(r["action"] == "model.activate" and r["subject"] == model_id and r["actor"] == key_id
               for r in records)
