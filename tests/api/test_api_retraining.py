"""The retraining routes: policy read and write (422 naming the field, write scope), the decision history after a
retrain, and POST /v1/retraining/run queueing a retrain job that a worker runs."""

from __future__ import annotations

from fastapi.testclient import TestClient

from shoprec.service import Services
from shoprec.service.testing import ReadyPlatform


def test_policy_read_and_write(client: TestClient) -> None:
    default = client.get("/v1/retraining/policy")
    assert default.status_code == 200, default.text
    assert (default.json()["source"], default.json()["enabled"]) == ("default", False)
    put = client.put("/v1/retraining/policy", json={"every_hours": 6, "after_events": 1000, "margin": 0.05,
                                                    "action": "experiment", "model": "itemknn",
                                                    "params": {"neighbors": 30}})
    assert put.status_code == 200, put.text
    assert client.get("/v1/retraining/policy").json() == put.json()
    got = put.json()
    assert (got["source"], got["enabled"], got["every_hours"], got["after_events"], got["margin"], got["action"]) == (
        "platform", True, 6.0, 1000, 0.05, "experiment")
    off = client.put("/v1/retraining/policy", json={})
    assert off.json()["enabled"] is False and off.json()["source"] == "platform"
    assert client.delete("/v1/retraining/policy").json()["source"] == "default"


def test_bad_policies_are_422_naming_the_field(client: TestClient) -> None:
    cases = [({"after_events": 0}, "after_events"), ({"every_hours": -1}, "every_hours"),
             ({"margin": 2}, "margin"), ({"metric": "auc"}, "metric"), ({"action": "ship"}, "action"),
             ({"model": "nonsense"}, "model"), ({"params": {"neighbors": 3}}, "params"),
             ({"after_events": "10"}, "after_events"), ({"after_events": 2**63}, "after_events"),
             ({"colour": "red"}, "colour")]
    for body, field in cases:
        r = client.put("/v1/retraining/policy", json=body)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["errors"][0]["field"] == field, (body, r.json())
    assert client.get("/v1/retraining/policy").json()["source"] == "default"  # nothing was written


def test_policy_changes_need_the_write_scope(client: TestClient, services: Services, shop: ReadyPlatform) -> None:
    reader = services.platforms.create_key("shop", ["read"]).key
    headers = {"X-API-Key": reader}
    assert client.get("/v1/retraining/policy", headers=headers).status_code == 200
    assert client.get("/v1/retraining/decisions", headers=headers).status_code == 200
    assert client.put("/v1/retraining/policy", json={"after_events": 5}, headers=headers).status_code == 403
    assert client.post("/v1/retraining/run", headers=headers).status_code == 403


def test_decisions_after_a_retrain(client: TestClient, services: Services, shop: ReadyPlatform) -> None:
    assert client.get("/v1/retraining/decisions").json() == []
    decision = services.retraining.retrain("shop")
    rows = client.get("/v1/retraining/decisions", params={"limit": 5}).json()
    assert len(rows) == 1 and rows[0] == decision.to_json()
    assert rows[0]["candidate_metrics"]["users_evaluated"] > 0 and rows[0]["reason"]
    assert client.get("/v1/retraining/decisions", params={"limit": 0}).status_code == 422


def test_run_queues_a_retrain_job_a_worker_runs(client: TestClient, services: Services) -> None:
    from shoprec.worker.testing import run_queued

    r = client.post("/v1/retraining/run")
    assert r.status_code == 202, r.text
    job = r.json()["job"]
    assert (r.json()["platform"], r.json()["queued"], job["kind"], job["status"]) == ("shop", True, "retrain",
                                                                                     "queued")
    listed = client.get("/v1/jobs", params={"status": "queued"}).json()
    assert [j["job_id"] for j in listed] == [job["job_id"]]
    assert run_queued(services) == 1
    done = client.get(f"/v1/jobs/{job['job_id']}").json()
    assert done["status"] == "succeeded", done
    history = client.get("/v1/retraining/decisions").json()
    assert history and history[0]["cause"] == "manual" and done["result"]["decision"] == history[0]["decision"]
