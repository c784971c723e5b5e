"""The embedded default: `shoprec serve` on SQLite starts one job worker beside the API, so one command trains
too; the worker's job metrics show in the API's /metrics; it dies with the supervisor."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from _cluster import Cluster, alive
from shoprec.data.synthetic import SyntheticConfig, generate

pytestmark = pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs /proc (Linux)")
ADMIN = "embedded-test-admin-key-0123456789abcdef"


def test_serve_on_sqlite_runs_training_jobs_itself(tmp_path: Path) -> None:
    config = tmp_path / "shoprec.toml"
    config.write_text(f'database_url = "sqlite:///{tmp_path / "shop.db"}"\ncache_dir = "cache"\n'
                      f'[serving]\nadmin_key = "{ADMIN}"\nmodel_poll_s = 0.3\n[jobs]\npoll_s = 0.2\n')
    shop = next(iter(generate(SyntheticConfig(n_users=120, n_items=60, seed=1)).platforms.values()))
    with (tmp_path / "events.jsonl").open("w") as f:
        for e in shop.events:
            f.write(json.dumps({"user_id": e.user_id, "item_id": e.item_id, "event_type": str(e.event_type),
                                "timestamp": e.timestamp}) + "\n")
    with Cluster(tmp_path, config) as c:
        key = json.loads(c.cli("platform", "create", "shop", "--json").stdout)["api_key"]
        c.cli("import", str(tmp_path / "events.jsonl"), "--format", "events-jsonl", "--platform", "shop")
        server = c.serve("server", workers=1)
        with httpx.Client(base_url=server.url, headers={"X-API-Key": key}, timeout=30) as api:
            r = api.post("/v1/models/train", json={"model": "itemknn", "activate": True})
            assert r.status_code == 202, r.text
            job_id = r.json()["job_id"]
            deadline = time.monotonic() + 120
            while (job := api.get(f"/v1/jobs/{job_id}").json())["status"] in ("queued", "running"):
                assert time.monotonic() < deadline, f"the embedded worker did not run the job: {server.tail()}"
                time.sleep(0.3)
            assert job["status"] == "succeeded" and job["result"]["active"] is True, job
            metrics = httpx.get(f"{server.url}/metrics", headers={"X-API-Key": ADMIN}).text
            assert 'shoprec_jobs_total{kind="train",status="succeeded"} 1.0' in metrics, metrics[-2000:]
            assert 'shoprec_train_seconds_count{model="itemknn",platform="shop"} 1.0' in metrics
        children = server.kill9()
        assert len(children) >= 2  # the API worker and the job worker (and nothing outlives the supervisor)
        deadline = time.monotonic() + 10
        while any(alive(p) for p in children):
            assert time.monotonic() < deadline, "a child outlived its supervisor"
            time.sleep(0.1)


@pytest.mark.parametrize("command", [["serve", "--port", "18999"], ["worker"]])
@pytest.mark.parametrize(("setting", "message"), [
    ('artifact_store = "nosuchscheme://bucket/models"', "setting artifact_store: "),
    ("[jobs]\nlease_s = -1", "setting jobs.lease_s must be >= 0.1"),
    ("[serving]\nunknown = 1", "unknown setting 'serving.unknown'"),
])
def test_a_bad_deployment_setting_stops_serve_and_worker_with_one_line(tmp_path: Path, command: list[str],
                                                                        setting: str, message: str) -> None:
    config = tmp_path / "shoprec.toml"
    config.write_text(f'database_url = "sqlite:///{tmp_path / "shop.db"}"\n{setting}\n')
    out = Cluster(tmp_path, config).cli(*command, check=False)
    assert out.returncode == 2, out.stderr
    assert message in out.stderr and "Traceback" not in out.stderr, out.stderr
