"""Two platforms for the security tests: A (the attacker's own shop) and B (the victim, holding secrets).

B owns one of everything a route can name: a user, an item, two models (one trained through a job), a
recommendation, an API key and an experiment; its item title and user attributes hold SECRET_MARKER, so an
answer to A that contains the marker leaked B's data. `dump_platform` snapshots every row of B.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from shoprec.service import Services
from shoprec.service.testing import ReadyPlatform, synthetic_platform
from shoprec.storage import find_platform
from shoprec.storage import tables as T
from shoprec.worker.testing import run_queued

SECRET_MARKER = "SECRET-B-7f3a"
B_ITEM = "b-only-item"
B_USER = "b-only-user"
PUBLIC_PATHS = frozenset({"/v1/health/live", "/v1/health/ready"})  # /v1 routes that need no key


@dataclass
class Shops:
    services: Services
    app: FastAPI
    a: ReadyPlatform
    b: ReadyPlatform
    b_ids: dict[str, str] = field(default_factory=dict)  # path parameter name -> B's value

    def client(self, key: str | None, **headers: str) -> TestClient:
        if key is not None:
            headers["X-API-Key"] = key
        return TestClient(self.app, headers=headers, raise_server_exceptions=False)


def api_routes(app: FastAPI) -> Iterator[tuple[str, str, APIRoute]]:
    """(method, path, route) of every API route, also those of included routers (FastAPI nests them)."""
    stack: list[Any] = list(app.router.routes)
    while stack:
        route = stack.pop(0)
        if isinstance(route, APIRoute):
            for method in sorted(route.methods):
                yield method, route.path, route
        elif hasattr(route, "effective_route_contexts"):
            stack.extend(ctx.original_route for ctx in route.effective_route_contexts())
        elif hasattr(route, "routes") and not hasattr(route, "app"):
            stack.extend(route.routes)


def v1_routes(app: FastAPI) -> list[tuple[str, str, APIRoute]]:
    return [r for r in api_routes(app) if r[1].startswith("/v1/") and r[1] not in PUBLIC_PATHS]


def setup_shops(services: Services, app: FastAPI) -> Shops:
    """A and B with trained models; B gets its secret item and user, a job, a served list and an experiment."""
    a = synthetic_platform(services, "shop-a", users=30, items=20, seed=0)
    b = synthetic_platform(services, "shop-b", users=30, items=20, seed=1)
    shops = Shops(services, app, a, b)
    with shops.client(b.api_key) as cb:
        ok(cb.put("/v1/items", json=[{"item_id": B_ITEM, "title": f"{SECRET_MARKER} title",
                                      "attributes": {"note": SECRET_MARKER}}]))
        ok(cb.post("/v1/users", json=[{"user_id": B_USER, "attributes": {"note": SECRET_MARKER}}]))
        ok(cb.post("/v1/events", json=[{"user_id": B_USER, "item_id": B_ITEM, "type": "purchase"}]))
        job = ok(cb.post("/v1/models/train", json={"model": "popular"})).json()
        run_queued(services)
        second = ok(cb.get(f"/v1/jobs/{job['job_id']}")).json()["result"]["model_id"]
        rec = ok(cb.get(f"/v1/users/{B_USER}/recommendations", params={"k": 3})).json()
        key_id = ok(cb.get("/v1/keys")).json()[0]["key_id"]
        shops.b_ids = {"user_id": B_USER, "item_id": B_ITEM, "model_id": b.trained.model_id,
                       "job_id": job["job_id"], "recommendation_id": rec["recommendation_id"], "key_id": key_id}
        if any("{experiment_id}" in path for _, path, _ in v1_routes(app)):
            exp = cb.post("/v1/experiments", json={"name": "b-test", "variants": [
                {"name": "control", "model_id": b.trained.model_id, "share": 0.5},
                {"name": "treatment", "model_id": second, "share": 0.5}]})
            shops.b_ids["experiment_id"] = ok(exp).json()["experiment_id"]
    return shops


def ok(response: Any) -> Any:
    assert response.status_code < 300, f"setup request failed: {response.status_code} {response.text[:500]}"
    return response


def dump_platform(services: Services, name: str) -> dict[str, list[str]]:
    """Every row that belongs to platform `name`: of each table, the rows whose platform column (any column
    referring to platforms.id) names it, as sorted JSON text (so any change shows up as a difference).
    Served lists queued for the database are written first."""
    services.recommend.log.flush()
    with services.engine.connect() as conn:
        platform_id = find_platform(conn, name)
        out: dict[str, list[str]] = {}
        for table in T.metadata.sorted_tables:
            columns = [c for c in table.columns if any(fk.column is T.platforms.c.id for fk in c.foreign_keys)]
            if table is T.platforms:
                columns = [table.c.id]
            if not columns:
                continue
            query = sa.select(table).where(sa.or_(*(c == platform_id for c in columns)))
            out[table.name] = sorted(json.dumps(dict(r._mapping), sort_keys=True, default=str)
                                     for r in conn.execute(query))
    return out


def b_secrets(shops: Shops) -> set[str]:
    """Strings that must never reach A: the marker and every opaque id B owns (keys' ids included)."""
    with shops.client(shops.b.api_key) as cb:
        key_ids = {k["key_id"] for k in cb.get("/v1/keys").json()}
    return {SECRET_MARKER, *key_ids, *(v for k, v in shops.b_ids.items() if k not in ("user_id", "item_id"))}


def schema_body(app: FastAPI, method: str, path: str, ids: dict[str, str]) -> Any:
    """A body for a route this file has no example for, from its OpenAPI schema: required fields filled,
    strings named like an id parameter get B's id."""
    spec = app.openapi()
    op = spec["paths"].get(path, {}).get(method.lower(), {})
    schema = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
    if schema is None:
        return None

    def resolve(s: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in s:
            s = spec["components"]["schemas"][s["$ref"].rsplit("/", 1)[1]]
        if "anyOf" in s:
            s = next((x for x in s["anyOf"] if x.get("type") != "null"), s["anyOf"][0])
            return resolve(s)
        return s

    def make(s: dict[str, Any], name: str = "") -> Any:
        s = resolve(s)
        if "enum" in s:
            return s["enum"][0]
        kind = s.get("type")
        if kind == "object":
            props = s.get("properties", {})
            return {k: make(v, k) for k, v in props.items() if k in s.get("required", [])}
        if kind == "array":
            return [make(s.get("items", {}), name) for _ in range(max(1, s.get("minItems", 1)))]
        if kind == "string":
            return ids.get(name, "x")
        if kind == "integer":
            return max(1, s.get("minimum", 1))
        if kind == "number":
            return 0.5
        if kind == "boolean":
            return True
        return "x"

    return make(schema)
