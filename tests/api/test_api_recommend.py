"""Recommendations, similar items, sessions, feedback, models, jobs, hot swap, health and metrics over HTTP."""

from __future__ import annotations

import threading
import time

import pytest
from fastapi.testclient import TestClient

from shoprec.api import create_app
from shoprec.api.schemas import RecommendationOut, RecommendedItem
from shoprec.service import Services
from shoprec.service.testing import TEST_ADMIN_KEY, ReadyPlatform
from shoprec.worker.testing import run_queued


def _ids(resp) -> list[str]:
    assert resp.status_code == 200, resp.text
    return [i["item_id"] for i in resp.json()["items"]]


def test_recommendations_shape_filters_and_paging(client: TestClient, shop: ReadyPlatform) -> None:
    user = shop.user_ids[0]
    resp = client.get(f"/v1/users/{user}/recommendations", params={"k": 5})
    body = resp.json()
    assert set(body) >= {"recommendation_id", "model", "items"} and body["model"] == "itemknn"
    assert len(body["items"]) == 5 and body["items"][0]["reason"]["level"] == "personal"
    page2 = client.get(f"/v1/users/{user}/recommendations",
                       params={"k": 5, "offset": 5, "recommendation_id": body["recommendation_id"]})
    assert not set(_ids(page2)) & set(_ids(resp))
    banned = _ids(resp)[:2]
    again = client.get(f"/v1/users/{user}/recommendations", params={"k": 10, "exclude": ",".join(banned)})
    assert not set(_ids(again)) & set(banned)
    price = client.get(f"/v1/users/{user}/recommendations", params={"k": 10, "max_price": 20})
    prices = {i.item_id: i.price for i in shop.data.items}
    assert all(prices[i] is not None and prices[i] <= 20 for i in _ids(price))


def test_every_list_answer_is_exactly_the_documented_schema(client: TestClient, shop: ReadyPlatform) -> None:
    """The list routes send the service's answer as it is: it must be RecommendationOut, field for field."""
    user, item = shop.user_ids[0], shop.item_ids[0]
    answers = [client.get(f"/v1/users/{user}/recommendations", params={"k": 3}),
               client.get("/v1/users/nobody/recommendations", params={"k": 3}),
               client.get(f"/v1/items/{item}/similar", params={"k": 3}),
               client.post("/v1/sessions/recommendations", json={"history": [{"item_id": item, "type": "view"}],
                                                                  "k": 3})]
    for resp in answers:
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert set(body) == set(RecommendationOut.model_fields), body
        assert all(set(i) == set(RecommendedItem.model_fields) for i in body["items"]) and len(body["items"]) == 3
        assert RecommendationOut.model_validate(body).model_dump(mode="json") == body


def test_unknown_user_gets_a_cold_start_list_and_bad_params_a_4xx(client: TestClient) -> None:
    resp = client.get("/v1/users/nobody/recommendations")
    assert len(_ids(resp)) == 10 and resp.json()["items"][0]["reason"]["level"] == "popular"
    for params in ({"k": 0}, {"k": 1000}, {"k": "ten"}, {"min_price": "nan"}, {"min_price": 5, "max_price": 1},
                   {"offset": -1}):
        r = client.get("/v1/users/nobody/recommendations", params=params)
        assert 400 <= r.status_code < 500, (params, r.text)
    r = client.get("/v1/users/nobody/recommendations", params={"recommendation_id": "f" * 32, "offset": 10})
    assert r.status_code == 404


def test_an_event_changes_the_next_list_at_once(client: TestClient, shop: ReadyPlatform) -> None:
    before = _ids(client.get("/v1/users/fresh/recommendations"))
    assert client.post("/v1/events", json=[{"user_id": "fresh", "item_id": shop.item_ids[9], "type": "view"}]
                       ).status_code == 200
    after = client.get("/v1/users/fresh/recommendations").json()
    assert [i["item_id"] for i in after["items"]] != before
    assert after["items"][0]["reason"] == {**after["items"][0]["reason"], "level": "session",
                                           "because_of": [shop.item_ids[9]]}


def test_similar_session_and_feedback(client: TestClient, shop: ReadyPlatform) -> None:
    item = shop.item_ids[0]
    assert item not in _ids(client.get(f"/v1/items/{item}/similar", params={"k": 4}))
    assert client.get("/v1/items/ghost/similar").status_code == 404
    sess = client.post("/v1/sessions/recommendations", json={"history": [{"item_id": item, "type": "view"}], "k": 3})
    assert len(_ids(sess)) == 3 and sess.json()["items"][0]["reason"]["level"] == "session"
    user = shop.user_ids[1]
    rec = client.get(f"/v1/users/{user}/recommendations", params={"k": 3}).json()
    top = rec["items"][0]["item_id"]
    fb = client.post("/v1/feedback", json={"recommendation_id": rec["recommendation_id"], "item_id": top,
                                           "type": "dislike"})
    assert fb.status_code == 200 and fb.json()["event_stored"] is True
    assert top not in _ids(client.get(f"/v1/users/{user}/recommendations", params={"k": 20, "include_seen": True}))
    bad = client.post("/v1/feedback", json={"recommendation_id": rec["recommendation_id"], "item_id": top,
                                            "type": "hug"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "type"
    assert client.post("/v1/feedback", json={"recommendation_id": rec["recommendation_id"], "item_id": "zzz",
                                             "type": "click"}).status_code == 422


def test_training_job_models_and_hot_swap_without_failed_requests(client: TestClient, shop: ReadyPlatform,
                                                                  services: Services) -> None:
    job = client.post("/v1/models/train", json={"model": "popular", "params": {}})
    assert job.status_code == 202, job.text
    assert client.get(f"/v1/jobs/{job.json()['job_id']}").json()["status"] == "queued"  # the API never trains
    assert run_queued(services) == 1
    done = client.get(f"/v1/jobs/{job.json()['job_id']}").json()
    assert done["status"] == "succeeded" and "NDCG@10" in done["result"]["metrics"]
    assert client.post("/v1/models/train", json={"model": "nope"}).status_code == 422
    assert client.get("/v1/jobs/0123").status_code == 404
    models = {m["model_id"]: m for m in client.get("/v1/models").json()}
    new_id = done["result"]["model_id"]
    assert models[new_id]["active"] is False and models[shop.trained.model_id]["active"] is True

    statuses: list[int] = []
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            statuses.append(client.get(f"/v1/users/{shop.user_ids[2]}/recommendations").status_code)

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(0.2)
    for model_id in (new_id, shop.trained.model_id, new_id):
        assert client.post(f"/v1/models/{model_id}/activate").status_code == 200
        time.sleep(0.1)
    stop.set()
    for t in threads:
        t.join()
    assert statuses and set(statuses) == {200}
    assert client.get(f"/v1/users/{shop.user_ids[2]}/recommendations").json()["model"] == "popular"
    assert client.post("/v1/models/nope/activate").status_code == 404


def test_health_metrics_and_docs(client: TestClient, shop: ReadyPlatform) -> None:
    assert client.get("/v1/health/live", headers={"X-API-Key": ""}).json() == {"status": "ok"}
    ready = client.get("/v1/health/ready", headers={"X-API-Key": TEST_ADMIN_KEY})  # details: the admin key
    assert ready.status_code == 200 and ready.json()["models"]["shop"] == shop.trained.model_id
    client.get("/v1/users/x/recommendations")
    client.post("/v1/events", json=[{"user_id": "m", "item_id": shop.item_ids[0], "type": "click"}])
    text = client.get("/metrics").text
    assert 'shoprec_request_seconds_bucket{le="0.005",method="GET"' in text
    assert 'shoprec_events_ingested_total{platform="shop"} 1.0' in text
    assert f'shoprec_model_info{{model_id="{shop.trained.model_id}",platform="shop"}} 1.0' in text
    assert client.get("/openapi.json").json()["paths"]["/v1/events"]
    assert client.get("/docs").status_code == 200


def test_startup_loads_each_served_platforms_catalog(services: Services, shop: ReadyPlatform,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The catalog view is read at startup with the model, so a worker's first list does not wait for it."""
    import shoprec.service.catalog as catalog

    loads: list[int] = []
    real = catalog.load_view
    monkeypatch.setattr(catalog, "load_view", lambda engine, key, **kw: loads.append(key) or real(engine, key, **kw))
    app = create_app(services.settings, services.config, services=services)
    with TestClient(app, headers={"X-API-Key": shop.api_key}) as c:
        assert len(loads) == 1
        assert c.get(f"/v1/users/{shop.user_ids[0]}/recommendations?k=3").status_code == 200
        assert len(loads) == 1
