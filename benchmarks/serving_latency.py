"""Serving benchmark on loopback: recommendation latency (server-side and client-side), requests/s and the
delay from POST /v1/events to a changed list, against a real `shoprec serve` with N uvicorn workers.

Usage:
  python benchmarks/serving_latency.py [--data beauty|synthetic] [--model itemknn] [--workers 2]
                                       [--duration 20] [--concurrency 8] [--trials 50] [--redis URL]
                                       [--workdir DIR] [--catalog-write-every S]

Steps: load the data into a SQLite database through the ingest pipeline (Beauty: S3-Rec sequences,
12,101 items; synthetic: the demo generator), train and activate the model (`shoprec train`'s store,
no evaluation), start `shoprec serve`, warm up, then send GET /v1/users/{random known user}/recommendations
?k=10 from `concurrency` keep-alive client threads for `duration` seconds. Server-side latency is the
X-Process-Time-Ms header (the app's middleware: routing, auth, history, model, ranking, log write).
A run in which a worker served no connection (the kernel's hash put all of them on another) is run again.
Then `trials` times: read a user's list, POST one view event, poll the list every 5 ms until it changes.
Prints a table and writes benchmarks/results/serving_latency.json. The load generator shares the CPU
with the server: on a 2-core machine, throughput is a lower bound.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from _results import RESULTS_DIR, append_run

ROOT = Path(__file__).resolve().parents[1]
RESULTS = RESULTS_DIR / "serving_latency.json"
WRK = shutil.which("wrk")  # the load generator when installed (Debian: apt install wrk); else Python threads


# ------------------------------------------------------------------------------ setup
def prepare(workdir: Path, data: str, model: str, params: dict[str, Any], train: bool = True
            ) -> tuple[str, str, list[str], list[str]]:
    """Database with the data and an active model; returns (db url, api key, user ids, item ids)."""
    from shoprec.ingest.pipeline import ingest
    from shoprec.service.testing import local_services
    from shoprec.settings import Settings

    services = local_services(workdir)
    platform_name = f"bench-{data}"
    if platform_name not in _platforms(services):
        print(f"loading {data} into {workdir}", file=sys.stderr)
        records = _records(data)
        ingest(services.engine, platform_name, records)
    if train or services.store.active(platform_name) is None:
        print(f"training {model}", file=sys.stderr)
        services.store.train(platform_name, model, params, activate=True, evaluate=False, progress=_err)
    key = services.platforms.create(platform_name)
    interactions, catalog = _snapshot(services, platform_name)
    services.close()
    url = Settings(database_url=f"sqlite:///{workdir / 'shoprec.db'}").database_url
    return url, key, interactions, catalog


def _err(msg: str) -> None:
    print(msg, file=sys.stderr)


def _platforms(services: Any) -> list[str]:
    from shoprec.storage import list_platforms

    with services.engine.connect() as conn:
        return list(list_platforms(conn))


def _records(data: str) -> Any:
    if data == "beauty":
        from shoprec.datasets import read_records
        from shoprec.settings import Settings

        return read_records("s3rec", Settings.from_env().data_dir / "amazon-beauty" / "Beauty.txt")
    from shoprec.data.synthetic import SyntheticConfig, generate

    return generate(SyntheticConfig(n_users=5000, n_items=3000, seed=0)).platform().records()


def _snapshot(services: Any, platform_name: str) -> tuple[list[str], list[str]]:
    from shoprec.storage import load_interactions

    inter, _ = load_interactions(services.engine, platform_name)
    return inter.users.to_list(), inter.items.to_list()


def served_model(workdir: Path, platform_name: str) -> dict[str, Any]:
    """The platform's active model in the workdir: id, name and its members (an ensemble's)."""
    from shoprec.service.testing import local_services

    services = local_services(workdir)
    try:
        active = services.store.active(platform_name)
    finally:
        services.close()
    if active is None:
        return {}
    model_id, name, path = active
    meta = json.loads((Path(path) / "meta.json").read_text(encoding="utf-8")).get("model_meta", {})
    return {"model_id": model_id, "name": name, "members": meta.get("n_members", 1), "scan": scan_choice(path)}


def scan_choice(path: str) -> dict[str, Any] | None:
    """What the default SHOPREC_SCAN=auto decides on this machine for the model at `path`: the timed pass of
    each path (shoprec.service.scan.timing, one thread, after the run) and whether the scan is kept."""
    from shoprec.api.app import limit_threads
    from shoprec.models import load_model
    from shoprec.models.vectors import vector_scorer
    from shoprec.service.scan import AUTO_MARGIN, Int8Scan, timing

    limit_threads(1)  # as a server worker (SHOPREC_SERVE_THREADS)
    vectors = vector_scorer(load_model(Path(path)))
    scan = Int8Scan.build(vectors[1], "on") if vectors is not None else None
    if vectors is None or scan is None:
        return None
    scan_ms, full_ms = timing(scan, vectors[1])
    return {"scan_ms": round(scan_ms, 3), "float32_ms": round(full_ms, 3),
            "auto_keeps": scan_ms <= AUTO_MARGIN * full_ms}


# ------------------------------------------------------------------------------ server
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(db_url: str, workdir: Path, port: int, workers: int, redis: str | None) -> subprocess.Popen[bytes]:
    env = {**os.environ, "SHOPREC_DATABASE_URL": db_url, "SHOPREC_MODEL_DIR": str(workdir / "models"),
           "SHOPREC_SERVE_THREADS": "1"}
    env.pop("SHOPREC_REDIS_URL", None)
    if redis:
        env["SHOPREC_REDIS_URL"] = redis
    cmd = [sys.executable, "-c", "from shoprec.cli.main import main; main()", "serve", "--port", str(port),
           "--workers", str(workers)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=sys.stderr, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            status, _, _ = request(http.client.HTTPConnection("127.0.0.1", port, timeout=2), "GET",
                                   "/v1/health/ready", None, {})
            if status == 200 and listening(port) >= workers:  # every worker bound (SO_REUSEPORT): none idles
                return proc
        except OSError:
            pass
        time.sleep(0.3)
    stop_server(proc)
    raise RuntimeError("the server did not become ready within 120 s")


def listening(port: int) -> int:
    """Listening sockets on a local port (/proc/net/tcp and tcp6; each worker binds its own with SO_REUSEPORT,
    so load that starts before the last one is bound never reaches it: its connections are kept alive).
    Where /proc/net is unreadable, counts as enough."""
    count, seen = 0, False
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        seen = True
        for line in lines:
            fields = line.split()
            if len(fields) > 3 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                count += 1
    return count if seen else 1 << 30


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGTERM)  # the server and its workers only (their own process group)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def request(conn: http.client.HTTPConnection, method: str, path: str, body: Any, headers: dict[str, str]
            ) -> tuple[int, dict[str, str], bytes]:
    data = None if body is None else json.dumps(body).encode()
    hdrs = dict(headers)
    if data is not None:
        hdrs["Content-Type"] = "application/json"
    conn.request(method, path, body=data, headers=hdrs)
    resp = conn.getresponse()
    payload = resp.read()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, payload


# ------------------------------------------------------------------------------ load
def _group(pgid: int) -> Iterator[tuple[Path, list[str]]]:
    """(/proc/<pid>, fields of its stat after the name) of every process in process group `pgid`."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid:
                yield stat.parent, fields
        except (OSError, IndexError, ValueError):
            continue


def group_rss_mb(pgid: int) -> float:
    """Resident memory of every process in the server's process group (uvicorn and its workers), MiB."""
    total = 0
    for proc, _ in _group(pgid):
        try:
            status = (proc / "status").read_text()
            total += int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS")))
        except (OSError, StopIteration, IndexError, ValueError):
            continue
    return total / 1024


def group_cpu_s(pgid: int) -> dict[int, float]:
    """CPU seconds (user + system) of each process in the server's process group."""
    ticks = os.sysconf("SC_CLK_TCK")
    return {int(proc.name): (int(fields[11]) + int(fields[12])) / ticks for proc, fields in _group(pgid)}


def load(port: int, key: str, users: list[str], duration: float, concurrency: int, seed: int,
         rate: float = 0.0) -> dict[str, Any]:
    """`concurrency` keep-alive clients for `duration` s; with `rate` > 0 they pace themselves to `rate` req/s."""
    server_ms: list[float] = []
    client_ms: list[float] = []
    errors: list[int] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + duration

    def worker(i: int) -> None:
        rng = random.Random(seed + i)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        mine_s, mine_c, mine_e = [], [], []
        interval = concurrency / rate if rate > 0 else 0.0
        next_at = time.monotonic() + rng.random() * interval
        while time.monotonic() < stop_at:
            if interval:
                next_at += interval
                time.sleep(max(0.0, next_at - time.monotonic()))
            user = users[rng.randrange(len(users))]
            t0 = time.perf_counter()
            status, headers, _ = request(conn, "GET", f"/v1/users/{user}/recommendations?k=10", None,
                                         {"X-API-Key": key})
            mine_c.append((time.perf_counter() - t0) * 1000)
            if status != 200:
                mine_e.append(status)
            mine_s.append(float(headers.get("x-process-time-ms", "nan")))
        with lock:
            server_ms.extend(mine_s)
            client_ms.extend(mine_c)
            errors.extend(mine_e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    s, c = np.array(server_ms), np.array(client_ms)
    return {"client": "python threads", "requests": len(c), "errors": len(errors), "seconds": round(elapsed, 2),
            "requests_per_s": round(len(c) / elapsed, 1),
            "server_p50_ms": round(float(np.nanpercentile(s, 50)), 2),
            "server_p99_ms": round(float(np.nanpercentile(s, 99)), 2),
            "client_p50_ms": round(float(np.percentile(c, 50)), 2),
            "client_p99_ms": round(float(np.percentile(c, 99)), 2)}


def load_wrk(port: int, key: str, users: list[str], duration: float, concurrency: int, seed: int,
             rate: float = 0.0) -> dict[str, Any]:
    """The same load from wrk (C, one event-loop thread per core: the client costs a fraction of the Python
    threads' CPU), `concurrency` keep-alive connections; with `rate` > 0 each connection pauses
    concurrency / rate seconds (jittered) between requests. Server times from X-Process-Time-Ms."""
    with tempfile.TemporaryDirectory(prefix="shoprec-wrk-") as tmp:
        users_file, out_file = Path(tmp) / "users.txt", Path(tmp) / "out.txt"
        users_file.write_text("\n".join(users) + "\n", encoding="utf-8")
        env = {**os.environ, "SHOPREC_WRK_USERS": str(users_file), "SHOPREC_WRK_KEY": key,
               "SHOPREC_WRK_OUT": str(out_file), "SHOPREC_WRK_SEED": str(seed),
               "SHOPREC_WRK_DELAY_MS": str(1000.0 * concurrency / rate if rate > 0 else 0)}
        assert WRK is not None, "wrk is not installed"
        cmd = [WRK, "-t1", f"-c{concurrency}", f"-d{max(1, round(duration))}s", "--timeout", "10s",
               "-s", str(ROOT / "benchmarks" / "wrk_recommend.lua"), f"http://127.0.0.1:{port}"]
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
        lines = out_file.read_text(encoding="utf-8").splitlines()
    rows = [line.split() for line in lines if not line.startswith("#")]
    summary = dict(zip(*[iter(lines[-1].lstrip("# ").split())] * 2, strict=True))
    statuses = np.array([int(r[0]) for r in rows])
    s = np.array([float(r[1]) for r in rows])
    elapsed = int(summary["duration_us"]) / 1e6
    return {"client": "wrk", "requests": len(rows), "errors": int((statuses != 200).sum()),
            "seconds": round(elapsed, 2), "requests_per_s": round(len(rows) / elapsed, 1),
            "server_p50_ms": round(float(np.percentile(s, 50)), 2),
            "server_p99_ms": round(float(np.percentile(s, 99)), 2),
            "client_p50_ms": round(int(summary["p50_us"]) / 1000, 2),
            "client_p99_ms": round(int(summary["p99_us"]) / 1000, 2)}


class CatalogWriter:
    """PUT /v1/items with one new item every `every` seconds in a thread (a shop's catalog churn); each write
    changes the catalog version, so every worker reloads its catalog view."""

    def __init__(self, port: int, key: str, every: float) -> None:
        self.port, self.key, self.every = port, key, every
        self.done, self.writes, self.errors = threading.Event(), 0, 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        tag = time.strftime("%Y%m%d%H%M%S")
        while not self.done.wait(self.every):
            item = [{"item_id": f"bench-churn-{tag}-{self.writes}", "title": "Benchmark churn item",
                     "category": "Benchmark churn"}]
            status, _, _ = request(conn, "PUT", "/v1/items", item, {"X-API-Key": self.key})
            self.writes += 1
            self.errors += status != 200

    def stop(self) -> dict[str, float]:
        self.done.set()
        self.thread.join(timeout=15)
        return {"writes": self.writes, "errors": self.errors, "every_s": self.every}


def freshness(port: int, key: str, users: list[str], items: list[str], trials: int, seed: int) -> dict[str, Any]:
    """Delay from POST /v1/events to the first GET whose list differs (new users: cold start -> session)."""
    rng = random.Random(seed)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    delays: list[float] = []
    unchanged = 0
    headers = {"X-API-Key": key}
    for t in range(trials):
        user = f"fresh-{seed}-{t}" if t % 2 else users[rng.randrange(len(users))]
        path = f"/v1/users/{user}/recommendations?k=10"
        before = [i["item_id"] for i in json.loads(request(conn, "GET", path, None, headers)[2])["items"]]
        item = before[0] if before else items[rng.randrange(len(items))]  # viewing the top item removes it
        t0 = time.perf_counter()
        event = [{"user_id": user, "item_id": item, "type": "view"}]
        status, _, body = request(conn, "POST", "/v1/events", event, headers)
        if status != 200:
            raise RuntimeError(f"POST /v1/events answered {status}: {body[:200]!r}")
        while True:
            after = [i["item_id"] for i in json.loads(request(conn, "GET", path, None, headers)[2])["items"]]
            waited = time.perf_counter() - t0
            if after != before:
                delays.append(waited * 1000)
                break
            if waited > 5:
                unchanged += 1
                break
            time.sleep(0.005)
    d = np.array(delays) if delays else np.array([np.nan])
    return {"trials": trials, "unchanged_after_5s": unchanged, "p50_ms": round(float(np.percentile(d, 50)), 1),
            "p99_ms": round(float(np.percentile(d, 99)), 1), "max_ms": round(float(d.max()), 1)}


IDLE_SHARE = 0.25  # a worker busy less than this share of the busiest one served (almost) no connection
MAX_RERUNS = 2


def measured_load(pgid: int, port: int, key: str, users: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """The timed load, with each server process's busy cores and the server's CPU per request. The kernel
    hands each new connection to a worker by a hash of its address (SO_REUSEPORT), so all c connections
    of a run land on one of two workers with probability 2 * 2**-c (c = 8, the default: ~1 run in 128): such a run
    measures one worker, not the server, and is run again (at most MAX_RERUNS times; the discarded runs
    are kept in the result under "discarded_idle_worker")."""
    discarded: list[dict[str, Any]] = []
    while True:
        before, started = group_cpu_s(pgid), time.monotonic()
        writer = CatalogWriter(port, key, args.catalog_write_every) if args.catalog_write_every > 0 else None
        result = args.load(port, key, users, args.duration, args.concurrency, args.seed + 100 * len(discarded))
        after, took = group_cpu_s(pgid), time.monotonic() - started
        if writer is not None:
            result["catalog_writes"] = writer.stop()
        busy = sorted((round((after[p] - before.get(p, 0.0)) / took, 2) for p in after), reverse=True)
        result["busy_cores_per_process"] = [b for b in busy if b > 0.005]  # workers: both near 1 = even load
        spent = sum(after[p] - before.get(p, 0.0) for p in after)  # the server's CPU seconds (all its processes)
        result["server_cpu_ms_per_request"] = round(1000 * spent / max(result["requests"], 1), 3)
        working = [b for b in busy if b >= IDLE_SHARE * busy[0]] if busy else []
        if len(working) >= args.workers or len(discarded) >= MAX_RERUNS:
            if discarded:
                result["discarded_idle_worker"] = discarded
            return result
        print(f"a worker idled (busy cores {busy[:args.workers + 1]}): its connections all went to another; "
              "running the load again", file=sys.stderr)
        discarded.append(result)


def run_soak(pgid: int, port: int, key: str, users: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """Paced load for args.soak seconds in 30 s slices, with the server's memory after each slice."""
    memory = [round(group_rss_mb(pgid), 1)]
    slices = []
    pace = args.rate  # the clients pause between requests without counting the answer's time: correct the
    # pace after each slice so that the achieved rate approaches the target
    for i in range(max(1, int(args.soak // 30))):
        slices.append(args.load(port, key, users, 30.0, args.concurrency, args.seed + 7 * i, rate=pace))
        memory.append(round(group_rss_mb(pgid), 1))
        pace = min(pace * args.rate / max(slices[-1]["requests_per_s"], 1.0), 4 * args.rate)
        print(f"soak {30 * (i + 1)} s: {slices[-1]['requests_per_s']} req/s, {memory[-1]} MiB", file=sys.stderr)
    half = len(memory) // 2
    return {"seconds": 30 * len(slices), "rate_target": args.rate,
            "rss_growth_first_half_mib": round(memory[half] - memory[0], 1),
            "rss_growth_second_half_mib": round(memory[-1] - memory[half], 1),
            "requests_per_s": round(float(np.mean([s["requests_per_s"] for s in slices])), 1),
            "errors": sum(s["errors"] for s in slices), "rss_mib": memory,
            "requests_per_s_per_slice": [s["requests_per_s"] for s in slices],
            "server_p99_ms_per_slice": [s["server_p99_ms"] for s in slices]}


# ------------------------------------------------------------------------------ main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", choices=["beauty", "synthetic"], default="beauty")
    parser.add_argument("--model", default="itemknn")
    parser.add_argument("--config", default="{}", help="model parameters as JSON")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--redis", default=None, help="Redis URL shared by the workers (default: none)")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the database here (reused if present)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--soak", type=float, default=0.0, help="then N seconds at --rate req/s, sampling memory")
    parser.add_argument("--catalog-write-every", type=float, default=0.0,
                        help="during the load, PUT one new item every N seconds (catalog churn; 0 = none)")
    parser.add_argument("--rate", type=float, default=300.0)
    parser.add_argument("--no-train", action="store_true", help="serve the workdir's active model as it is")
    parser.add_argument("--client", choices=["wrk", "python"], default="wrk" if WRK else "python",
                        help="load generator (default: wrk when installed)")
    args = parser.parse_args()
    args.load = load_wrk if args.client == "wrk" else load
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="shoprec-bench-"))
    db_url, key, users, items = prepare(workdir, args.data, args.model, json.loads(args.config), not args.no_train)
    port = free_port()
    proc = start_server(db_url, workdir, port, args.workers, args.redis)
    try:
        args.load(port, key, users, 3.0, args.concurrency, args.seed + 1000)  # warm-up
        result = measured_load(proc.pid, port, key, users, args)
        fresh = freshness(port, key, users, items, args.trials, args.seed)
        soak = run_soak(proc.pid, port, key, users, args) if args.soak > 0 else None
    finally:
        stop_server(proc)
    model = args.model if not args.no_train else "active in workdir"
    config = {"data": args.data, "model": model, "served": served_model(workdir, f"bench-{args.data}"),
              "settings": {k: v for k, v in sorted(os.environ.items())
                           if k.startswith("SHOPREC_") and not any(w in k for w in ("KEY", "SECRET", "URL"))},
              "pythonpath": os.environ.get("PYTHONPATH") or None, "client": args.client,
              "workers": args.workers, "concurrency": args.concurrency, "duration": args.duration,
              "redis": bool(args.redis), "n_items": len(items), "n_users": len(users)}
    figures = {"load": result, "event_to_changed_list": fresh, "soak": soak,
               "note": "client on the same cores as the server; load_average_at_end shows other load",
               "load_average_at_end": [round(x, 2) for x in os.getloadavg()]}
    print(f"{'metric':<34}{'value':>12}")
    for k, v in [*result.items(), *[(f"freshness {k}", v) for k, v in fresh.items()]]:
        print(f"{k:<34}{v!s:>12}")
    append_run(RESULTS, figures, config)


if __name__ == "__main__":
    main()
