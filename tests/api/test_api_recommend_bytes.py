"""The list routes send orjson bytes built by the service (no per-request pydantic validation), so their
declared `response_model` does not guard them: these tests validate the bytes of real answers against the
pydantic schema and against the app's own OpenAPI schema, case by case."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from shoprec.api.schemas import ExplanationOut, RecommendationOut
from shoprec.explain import Reason
from shoprec.service import Services
from shoprec.service.testing import ReadyPlatform, create_test_experiment

jsonschema_rs = pytest.importorskip("jsonschema_rs")  # installed with schemathesis (dev dependencies)


def _closed(schema: Any) -> Any:
    """`schema` with additionalProperties false on every object that lists its properties (an unknown field fails)."""
    if isinstance(schema, dict):
        out = {k: _closed(v) for k, v in schema.items()}
        if "properties" in out:
            out.setdefault("additionalProperties", False)
        return out
    if isinstance(schema, list):
        return [_closed(v) for v in schema]
    return schema


class OpenAPI:
    def __init__(self, client: TestClient) -> None:
        self.doc = client.get("/openapi.json").json()

    def response_ref(self, method: str, path: str) -> str:
        """The $ref of the 200 answer's JSON schema that the OpenAPI document declares for a route."""
        content = self.doc["paths"][path][method]["responses"]["200"]["content"]["application/json"]
        return str(content["schema"]["$ref"])

    def check(self, ref: str, instance: Any) -> None:
        schema = {"$ref": ref, "components": _closed(copy.deepcopy(self.doc["components"]))}
        jsonschema_rs.validator_for(schema).validate(instance)


def _check_reason(reason: dict[str, Any]) -> None:
    """A reason on the wire is a typed Reason's JSON, key for key and in the same order."""
    typed = Reason.from_json(reason).to_json()
    assert list(typed.items()) == list(reason.items()), reason


def _check_list(api: OpenAPI, method: str, path: str, resp: Response, k: int) -> dict[str, Any]:
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "application/json"
    parsed = RecommendationOut.model_validate_json(resp.content, strict=True)  # the raw bytes, not resp.json()
    assert parsed.model_dump_json().encode() == resp.content  # nothing outside the schema, nothing reshaped
    assert api.response_ref(method, path) == "#/components/schemas/RecommendationOut"
    body: dict[str, Any] = resp.json()
    api.check("#/components/schemas/RecommendationOut", body)
    assert 0 < len(body["items"]) <= k
    for item in body["items"]:
        _check_reason(item["reason"])
    return body


USER_LIST = "/v1/users/{user_id}/recommendations"
SIMILAR = "/v1/items/{item_id}/similar"
SESSION = "/v1/sessions/recommendations"
EXPLAIN = "/v1/users/{user_id}/recommendations/explain"


def _levels(body: dict[str, Any]) -> set[str]:
    return {i["reason"]["level"] for i in body["items"]}


def test_user_lists_bytes_match_the_schemas(client: TestClient, shop: ReadyPlatform) -> None:
    api = OpenAPI(client)
    user = shop.user_ids[0]
    category = next(i.category for i in shop.data.items if i.category)
    known = _check_list(api, "get", USER_LIST, client.get(f"/v1/users/{user}/recommendations", params={"k": 10}), 10)
    assert "personal" in _levels(known) and known["model"] == "itemknn"
    page = _check_list(api, "get", USER_LIST, client.get(f"/v1/users/{user}/recommendations", params={
        "k": 10, "offset": 10, "recommendation_id": known["recommendation_id"]}), 10)
    assert page["offset"] == 10 and page["recommendation_id"] == known["recommendation_id"]
    new = _check_list(api, "get", USER_LIST, client.get("/v1/users/brand-new/recommendations", params={"k": 5}), 5)
    assert _levels(new) == {"popular"}
    filtered = _check_list(api, "get", USER_LIST, client.get(f"/v1/users/{shop.user_ids[1]}/recommendations", params={
        "k": 10, "category": category, "min_price": 1, "max_price": 500, "exclude": ",".join(shop.item_ids[:5]),
        "include_seen": "true"}), 10)
    assert not {i["item_id"] for i in filtered["items"]} & set(shop.item_ids[:5])
    cold_category = _check_list(api, "get", USER_LIST, client.get("/v1/users/nobody/recommendations", params={
        "k": 5, "category": category}), 5)
    assert _levels(cold_category) == {"popular_category"}


def test_similar_session_and_explain_bytes_match_the_schemas(client: TestClient, shop: ReadyPlatform) -> None:
    api = OpenAPI(client)
    item = shop.item_ids[3]
    similar = _check_list(api, "get", SIMILAR, client.get(f"/v1/items/{item}/similar", params={"k": 8}), 8)
    assert "item_to_item" in _levels(similar)
    put = client.put("/v1/items", json=[{"item_id": "fresh-1", "title": shop.data.items[3].title or "Red mug",
                                         "description": shop.data.items[3].description or "a red mug"}])
    assert put.status_code == 200, put.text
    by_text = _check_list(api, "get", SIMILAR, client.get("/v1/items/fresh-1/similar", params={"k": 5}), 5)
    assert by_text["items"]
    session = _check_list(api, "post", SESSION, client.post(SESSION, json={
        "history": [{"item_id": item}, {"item_id": shop.item_ids[7], "type": "purchase"}], "k": 6}), 6)
    assert "session" in _levels(session)
    for user in (shop.user_ids[0], "brand-new"):  # explain the items of the similar list (a history and a cold user)
        for shown in similar["items"][:3]:
            resp = client.get(f"/v1/users/{user}/recommendations/explain", params={"item_id": shown["item_id"]})
            assert resp.status_code == 200, resp.text
            ExplanationOut.model_validate_json(resp.content, strict=True)
            assert api.response_ref("get", EXPLAIN) == "#/components/schemas/ExplanationOut"
            api.check("#/components/schemas/ExplanationOut", resp.json())
            _check_reason(resp.json()["reason"])


def test_experiment_lists_bytes_match_the_schemas(client: TestClient, services: Services, shop: ReadyPlatform
                                                  ) -> None:
    api = OpenAPI(client)
    create_test_experiment(services, "shop")
    for user in shop.user_ids[:4]:
        body = _check_list(api, "get", USER_LIST, client.get(f"/v1/users/{user}/recommendations", params={"k": 5}), 5)
        assert body["experiment"] and body["variant"] in ("control", "treatment")


def test_the_schema_check_catches_a_field_outside_the_schema(client: TestClient) -> None:
    api = OpenAPI(client)
    good = {"recommendation_id": "r", "model": None, "offset": 0, "items": [], "experiment": None, "variant": None}
    api.check("#/components/schemas/RecommendationOut", good)
    with pytest.raises(jsonschema_rs.ValidationError):
        api.check("#/components/schemas/RecommendationOut", {**good, "extra": 1})
    with pytest.raises(jsonschema_rs.ValidationError):
        api.check("#/components/schemas/RecommendationOut", {**good, "items": [{"item_id": "a", "score": "1"}]})
