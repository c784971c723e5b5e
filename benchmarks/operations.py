"""Operations figures of the production topology, started as plain processes (benchmarks/_cluster.py) on real
PostgreSQL and Redis: two API replicas (`shoprec serve`, separate working directories, models in the database),
one `shoprec worker`, on this one machine.

1. Serving latency on a replica while the worker trains the transformer, beside the same replica idle.
2. Promotion: time from `POST /v1/models/{id}/activate` to both replicas serving that model (reasons name the
   model id), over several promotions, with the failed requests during them.
3. Takeover: time from `kill -9` of the worker running a job to another worker holding the job, against the
   configured lease.

    python benchmarks/operations.py                      # ~6 min on 2 cores; JSON in benchmarks/results/
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from _cluster import Cluster, Load, Proc, percentile
from shoprec.data.synthetic import SyntheticConfig, generate
from shoprec.storage.testing import scratch_database

from _results import RESULTS_DIR, append_run

ADMIN = "operations-benchmark-admin-key-0123456789"
OUT = RESULTS_DIR / "operations.json"


def _wait(check: Any, timeout: float, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise TimeoutError("timed out")


def _events_csv(path: Path, users: int, items: int) -> tuple[list[str], int]:
    shop = next(iter(generate(SyntheticConfig(n_users=users, n_items=items, seed=3)).platforms.values()))
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["user_id", "item_id", "event_type", "timestamp"])
        for e in shop.events:
            out.writerow([e.user_id, e.item_id, str(e.event_type), e.timestamp])
    return sorted({e.user_id for e in shop.events}), len(shop.events)


def _train(api: httpx.Client, body: dict[str, Any], timeout: float = 900) -> dict[str, Any]:
    r = api.post("/v1/models/train", json=body)
    r.raise_for_status()
    job_id = r.json()["job_id"]
    return dict(_wait(lambda: (j := api.get(f"/v1/jobs/{job_id}").json())["status"] in (
        "succeeded", "failed", "cancelled") and j, timeout, every=0.5))


def _latency(load_bases: list[str], key: str, users: list[str], seconds: float, clients: int) -> dict[str, Any]:
    loads = [Load(load_bases, key, users[i::clients]).start() for i in range(clients)]
    time.sleep(seconds)
    samples = [s for load in loads for s in load.stop()]
    ok = [s.seconds * 1000 for s in samples if s.status == 200]
    return {"requests": len(samples), "failed": len(samples) - len(ok), "rps": round(len(samples) / seconds, 1),
            "p50_ms": round(percentile(ok, 50), 2), "p99_ms": round(percentile(ok, 99), 2)}


def latency_while_training(c: Cluster, a: Proc, key: str, users: list[str], seconds: float, clients: int,
                           train: dict[str, Any]) -> dict[str, Any]:
    idle = _latency([a.url], key, users, seconds, clients)
    with httpx.Client(base_url=a.url, headers={"X-API-Key": key}, timeout=30) as api:
        r = api.post("/v1/models/train", json=train)
        r.raise_for_status()
        job_id = r.json()["job_id"]
        _wait(lambda: api.get(f"/v1/jobs/{job_id}").json()["status"] == "running", 120)
        time.sleep(3.0)  # past the job's start-up (imports, reading the data): into the epochs
        busy = _latency([a.url], key, users, seconds, clients)
        still = api.get(f"/v1/jobs/{job_id}").json()["status"] == "running"
        api.post(f"/v1/jobs/{job_id}/cancel")
        _wait(lambda: api.get(f"/v1/jobs/{job_id}").json()["status"] in ("cancelled", "succeeded"), 60)
    return {"idle": idle, "training": busy, "training_ran_throughout": still}


def promotions(a: Proc, b: Proc, key: str, users: list[str], models: list[str], n: int) -> dict[str, Any]:
    load = Load([a.url, b.url], key, users).start()
    took: list[float] = []
    try:
        with httpx.Client(base_url=a.url, headers={"X-API-Key": key}, timeout=60) as api:
            for i in range(n):
                model_id = models[i % len(models)]
                r = api.post(f"/v1/models/{model_id}/activate")
                r.raise_for_status()
                promoted = time.monotonic()
                seen: dict[str, float] = {}

                def both(model_id: str = model_id, promoted: float = promoted, seen: dict[str, float] = seen) -> bool:
                    for s in list(load.samples):
                        if s.t >= promoted and s.model_id == model_id and s.base not in seen:
                            seen[s.base] = s.t
                    return len(seen) == 2

                _wait(both, 60, every=0.02)
                took.append(max(seen.values()) - promoted)
                time.sleep(1.0)
    finally:
        samples = load.stop()
    return {"promotions": n, "median_s": round(statistics.median(took), 3), "p99_s": round(percentile(took, 99), 3),
            "max_s": round(max(took), 3), "requests": len(samples),
            "failed_requests": sum(1 for s in samples if s.status != 200)}


def _job(api: httpx.Client, job_id: str) -> dict[str, Any]:
    return dict(api.get(f"/v1/jobs/{job_id}").json())


def _one_takeover(c: Cluster, api: httpx.Client, worker: Proc, train: dict[str, Any], name: str
                  ) -> tuple[float, Proc]:
    r = api.post("/v1/models/train", json=train)
    r.raise_for_status()
    job_id = r.json()["job_id"]
    _wait(lambda: (j := _job(api, job_id))["status"] == "running" and j["worker"] == worker.name, 120)
    time.sleep(2.0)
    worker.kill9()
    killed = time.monotonic()
    new = c.worker(name)
    _wait(lambda: (j := _job(api, job_id))["worker"] == new.name and j["status"] == "running", 120, every=0.05)
    took = time.monotonic() - killed
    api.post(f"/v1/jobs/{job_id}/cancel")
    _wait(lambda: _job(api, job_id)["status"] in ("cancelled", "succeeded"), 60)
    return took, new


def takeover(c: Cluster, a: Proc, key: str, worker: Proc, train: dict[str, Any], rounds: int,
             lease_s: float) -> tuple[dict[str, Any], Proc]:
    times: list[float] = []
    with httpx.Client(base_url=a.url, headers={"X-API-Key": key}, timeout=30) as api:
        for i in range(rounds):
            took, worker = _one_takeover(c, api, worker, train, f"worker-{i + 2}")
            times.append(took)
    return {"rounds": rounds, "lease_s": lease_s, "median_s": round(statistics.median(times), 2),
            "max_s": round(max(times), 2), "all_s": [round(t, 2) for t in times]}, worker


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--users", type=int, default=3000)
    p.add_argument("--items", type=int, default=1500)
    p.add_argument("--seconds", type=float, default=20.0, help="length of each latency window")
    p.add_argument("--clients", type=int, default=2, help="closed-loop client threads")
    p.add_argument("--promotions", type=int, default=10)
    p.add_argument("--takeovers", type=int, default=3)
    p.add_argument("--lease", type=float, default=10.0)
    p.add_argument("--serve-workers", type=int, default=2)
    args = p.parse_args(argv)
    transformer = {"epochs": 20, "ensemble": 1, "use_text": False}
    with tempfile.TemporaryDirectory() as tmp, scratch_database("postgresql") as url:
        root = Path(tmp)
        config = root / "shoprec.toml"
        config.write_text(f"""
database_url = "{url}"
redis_url = "redis://127.0.0.1:6379/0"
artifact_store = "database"
cache_dir = "cache"

[serving]
admin_key = "{ADMIN}"
redis_prefix = "shoprec-ops-{uuid.uuid4().hex[:8]}:"

[jobs]
lease_s = {args.lease}
""")
        with Cluster(root, config) as c:
            key = json.loads(c.cli("platform", "create", "shop", "--json").stdout)["api_key"]
            users, n_events = _events_csv(root / "events.csv", args.users, args.items)
            c.cli("import", str(root / "events.csv"), "--format", "events-csv", "--platform", "shop")
            a = c.serve("replica-a", workers=args.serve_workers)
            b = c.serve("replica-b", workers=args.serve_workers)
            worker = c.worker("worker-1")
            print(f"cluster up: {n_events:,} events of {len(users):,} users; training the served models",
                  file=sys.stderr)
            with httpx.Client(base_url=a.url, headers={"X-API-Key": key}, timeout=30) as api:
                first = _train(api, {"model": "transformer", "params": transformer, "activate": True})
                second = _train(api, {"model": "itemknn", "params": {}, "activate": False})
            assert first["status"] == "succeeded" and second["status"] == "succeeded", (first, second)
            models = [second["result"]["model_id"], first["result"]["model_id"]]
            _wait(lambda: all(httpx.get(f"{p.url}/v1/health/ready", timeout=5).status_code == 200 for p in (a, b)),
                  120)
            print("latency idle / while the worker trains the transformer", file=sys.stderr)
            latency = latency_while_training(c, a, key, users, args.seconds, args.clients,
                                             {"model": "transformer", "params": {**transformer, "epochs": 200},
                                              "activate": False})
            print("promotions", file=sys.stderr)
            promotion = promotions(a, b, key, users, models, args.promotions)
            print("takeovers", file=sys.stderr)
            taken, worker = takeover(c, a, key, worker, {"model": "transformer", "params": {
                **transformer, "epochs": 200}, "activate": False}, args.takeovers, args.lease)
    figures = {"latency": latency, "promotion": promotion, "takeover": taken}
    config_out = {"users": len(users), "items": args.items, "events": n_events, "served_model": "transformer "
                  + json.dumps(transformer), "serve_workers_per_replica": args.serve_workers,
                  "clients": args.clients, "seconds": args.seconds, "database": "postgresql", "redis": True,
                  "artifact_store": "database"}
    append_run(OUT, figures, config_out)
    print(f"| figure | value |\n|---|---|\n"
          f"| p50 / p99 ms, idle | {latency['idle']['p50_ms']} / {latency['idle']['p99_ms']} "
          f"({latency['idle']['rps']} req/s) |\n"
          f"| p50 / p99 ms, worker training the transformer | {latency['training']['p50_ms']} / "
          f"{latency['training']['p99_ms']} ({latency['training']['rps']} req/s) |\n"
          f"| promotion -> both replicas serving, median / p99 / max s | {promotion['median_s']} / "
          f"{promotion['p99_s']} / {promotion['max_s']} ({promotion['promotions']} promotions) |\n"
          f"| failed requests during promotions | {promotion['failed_requests']} of {promotion['requests']} |\n"
          f"| takeover after kill -9, median / max s (lease {args.lease} s) | {taken['median_s']} / "
          f"{taken['max_s']} |")


if __name__ == "__main__":
    threading.excepthook = lambda a: print(f"thread error: {a.exc_value}", file=sys.stderr)
    main()
