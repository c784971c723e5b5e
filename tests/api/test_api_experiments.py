"""The experiments and explanation routes: happy paths, 4xx naming the field, and platform isolation."""

from __future__ import annotations

from fastapi.testclient import TestClient

from shoprec.service import Services
from shoprec.service.testing import ReadyPlatform, synthetic_platform


def _body(services: Services, shop: ReadyPlatform) -> dict:
    popular = services.store.train("shop", "popular", evaluate=False).model_id
    return {"name": "knn vs pop", "variants": [
        {"name": "knn", "model_id": shop.trained.model_id, "share": 0.5},
        {"name": "pop", "model_id": popular, "share": 0.5}]}


def test_experiment_lifecycle(client: TestClient, services: Services, shop: ReadyPlatform) -> None:
    created = client.post("/v1/experiments", json=_body(services, shop))
    assert created.status_code == 201, created.text
    exp = created.json()
    assert exp["status"] == "running" and [v["name"] for v in exp["variants"]] == ["knn", "pop"]
    assert [e["experiment_id"] for e in client.get("/v1/experiments").json()] == [exp["experiment_id"]]
    assert client.get(f"/v1/experiments/{exp['experiment_id']}").json()["name"] == "knn vs pop"
    rec = client.get(f"/v1/users/{shop.user_ids[0]}/recommendations", params={"k": 4}).json()
    assert rec["experiment"] == exp["experiment_id"] and rec["variant"] in ("knn", "pop")
    fb = client.post("/v1/feedback", json={"recommendation_id": rec["recommendation_id"],
                                           "item_id": rec["items"][1]["item_id"], "type": "click"})
    assert fb.status_code == 200, fb.text
    results = client.get(f"/v1/experiments/{exp['experiment_id']}/results").json()
    mine = next(v for v in results["variants"] if v["name"] == rec["variant"])
    assert (mine["impressions"], mine["clicks"], mine["clicks_by_position"]) == (4, 1, {"1": 1})
    assert set(mine["ctr"]) == {"value", "ci95"} and "vs_control" in results["variants"][1]
    stopped = client.post(f"/v1/experiments/{exp['experiment_id']}/stop")
    assert stopped.json()["status"] == "stopped"
    assert client.get(f"/v1/users/{shop.user_ids[0]}/recommendations").json()["experiment"] is None


def test_bad_experiments_are_422_naming_the_field(client: TestClient, services: Services,
                                                  shop: ReadyPlatform) -> None:
    body = _body(services, shop)
    cases = [
        ({**body, "variants": [{**body["variants"][0], "share": 0.9}, body["variants"][1]]}, "variants.share"),
        ({**body, "variants": [body["variants"][0], {**body["variants"][1], "model_id": "x"}]},
         "variants.1.model_id"),
        ({**body, "variants": body["variants"][:1]}, "variants"),
        ({**body, "variants": [{**body["variants"][0], "share": -1}, body["variants"][1]]}, "variants.share"),
        ({**body, "end": 1.0}, "end"),
        ({**body, "colour": "red"}, "colour"),
        ({**body, "name": ""}, "name"),
        ({**body, "name": " \t\u0085\u3000"}, "name"),  # spaces only (in str.strip()'s sense): as the schema says
    ]
    for bad, field in cases:
        resp = client.post("/v1/experiments", json=bad)
        assert resp.status_code == 422, (field, resp.text)
        assert field in {e["field"] for e in resp.json()["errors"]}, (field, resp.json())
    assert client.get("/v1/experiments").json() == []


def test_another_platforms_key_gets_404(client: TestClient, services: Services, shop: ReadyPlatform) -> None:
    exp = client.post("/v1/experiments", json=_body(services, shop)).json()
    other = synthetic_platform(services, "other", users=20, items=15, model=None)
    headers = {"X-API-Key": other.api_key}
    for method, path in [("get", ""), ("post", "/stop"), ("get", "/results")]:
        resp = client.request(method, f"/v1/experiments/{exp['experiment_id']}{path}", headers=headers)
        assert resp.status_code == 404, (path, resp.text)
    assert client.get("/v1/experiments", headers=headers).json() == []
    assert client.get(f"/v1/experiments/{exp['experiment_id']}").status_code == 200


def test_explain_route(client: TestClient, shop: ReadyPlatform) -> None:
    user = shop.user_ids[0]
    top = client.get(f"/v1/users/{user}/recommendations", params={"k": 1}).json()["items"][0]
    resp = client.get(f"/v1/users/{user}/recommendations/explain", params={"item_id": top["item_id"]})
    assert resp.status_code == 200, resp.text
    assert resp.json()["reason"] == top["reason"]
    assert client.get(f"/v1/users/{user}/recommendations/explain", params={"item_id": "nope"}).status_code == 404
    assert client.get(f"/v1/users/{user}/recommendations/explain").status_code == 422
    cold = client.get("/v1/users/newbie/recommendations/explain", params={"item_id": shop.item_ids[0]}).json()
    assert cold["reason"]["type"] == "fallback_popular"
