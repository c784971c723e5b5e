"""A hostile body against `shoprec serve` (issue 21): anonymous senders POST a large `[{},{},...]` body to
/v1/events while a client asks for recommendations. Since the key is checked before the body is read
(shoprec.api.auth.AuthFirst), the answer is 401 at once and the worker's memory should barely move.

Figures: the API worker's RSS before, at its highest during and after the attack; normal p50/p99 idle and
under attack; how long the senders waited for their 401s and how many body bytes they got to send.

    python benchmarks/hostile_body.py                       # ~30 s; JSON in benchmarks/results/hostile_body.json
    python benchmarks/hostile_body.py --senders 4 --seconds 15 --body-mb 63

Run it on a quiet machine: it measures latency.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from _cluster import Cluster, Load, children, percentile

from _results import RESULTS_DIR, append_run

ADMIN = "hostile-body-benchmark-admin-key-0123456789"
OUT = RESULTS_DIR / "hostile_body.json"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def attack(port: int, body: bytes, stop: Any, results: Any, idle: bool) -> None:
    """One anonymous sender (a process of its own, as an attacker is another machine: its CPU and its GIL are
    not the measuring client's): the whole body in one go per connection, as fast as the server lets it.
    With `idle`, the sender runs under SCHED_IDLE: on a machine shared with the server it gets only the CPU the
    server and the measuring client leave, as a remote attacker's CPU is not the server's."""
    if idle and hasattr(os, "sched_setscheduler"):
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    head = (f"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    while not stop.is_set():
        start = time.perf_counter()
        sent, status = 0, 0
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
                s.sendall(head)
                view = memoryview(body)
                with contextlib.suppress(OSError):
                    while sent < len(body):
                        sent += s.send(view[sent:sent + (1 << 20)])
                answer = s.recv(4096)
                if answer.startswith(b"HTTP/1.1 "):
                    status = int(answer[9:12])
        except OSError:
            pass
        results.put((status, time.perf_counter() - start, sent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.0, help="idle phase and attack phase, each")
    parser.add_argument("--body-mb", type=float, default=63.0)
    parser.add_argument("--same-priority", action="store_true",
                        help="senders at the server's priority (they then compete with it for these cores)")
    parser.add_argument("--profile", type=Path, default=None,
                        help="also record the API worker with py-spy during the attack (collapsed stacks to FILE)")
    args = parser.parse_args()
    body = b"[" + b",".join([b"{}"] * int(args.body_mb * 1e6 / 3)) + b"]"
    with tempfile.TemporaryDirectory(prefix="shoprec-hostile-") as tmp:
        root = Path(tmp)
        config = root / "shoprec.toml"
        config.write_text(f'database_url = "sqlite:///{root / "shoprec.db"}"\nmodel_dir = "{root / "models"}"\n'
                          f'[serving]\nadmin_key = "{ADMIN}"\n[jobs]\nembedded_worker = false\n')
        with Cluster(root, config) as c:
            key = json.loads(c.cli("platform", "create", "shop", "--json").stdout)["api_key"]
            api = c.serve("api", workers=1)
            events = [{"user_id": f"u{i % 50}", "item_id": f"i{i % 200}", "type": "view"} for i in range(2000)]
            httpx.post(f"{api.url}/v1/events", json=events, headers={"X-API-Key": key}, timeout=60)
            worker = max(children(api.pid), key=rss_mb)  # the API worker (not multiprocessing's helpers)
            users = [f"u{i}" for i in range(50)]
            time.sleep(1.0)
            start_rss = rss_mb(worker)
            idle = Load([api.url], key, users).start()
            time.sleep(args.seconds)
            idle_samples = [s.seconds for s in idle.stop() if s.status == 200]
            ctx = multiprocessing.get_context("fork")
            stop, queue = ctx.Event(), ctx.Queue()
            idle_senders = not args.same_priority
            senders = [ctx.Process(target=attack, args=(api.port, body, stop, queue, idle_senders), daemon=True)
                       for _ in range(args.senders)]
            under = Load([api.url], key, users).start()
            time.sleep(1.0)  # the same normal load alone first: what it adds to memory is not the attack's
            before = rss_mb(worker)
            for t in senders:
                t.start()
            spy = None
            if args.profile is not None:
                spy = subprocess.Popen(["py-spy", "record", "-p", str(worker), "-d", str(int(args.seconds)),
                                        "-f", "raw", "-o", str(args.profile), "-r", "200"],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            peak, deadline = before, time.monotonic() + args.seconds
            while time.monotonic() < deadline:
                peak = max(peak, rss_mb(worker))
                time.sleep(0.1)
            stop.set()
            attacked = under.stop()
            if spy is not None:
                spy.wait(30)
            results = []
            deadline = time.monotonic() + 60
            while any(t.is_alive() for t in senders) or not queue.empty():
                with contextlib.suppress(Exception):
                    results.append(dict(zip(("status", "seconds", "sent"), queue.get(timeout=0.2), strict=True)))
                if time.monotonic() > deadline:
                    break
            after = rss_mb(worker)
    under_ok = [s.seconds for s in attacked if s.status == 200]
    statuses: dict[str, int] = {}
    for r in results:
        statuses[str(r["status"])] = statuses.get(str(r["status"]), 0) + 1
    figures = {
        "worker_rss_mb": {"at_start": round(start_rss, 1),
                          "before": round(before, 1), "peak_during": round(peak, 1), "after": round(after, 1),
                          "moved": round(peak - before, 1)},
        "normal_ms": {"idle_p50": round(statistics.median(idle_samples) * 1000, 2),
                      "idle_p99": round(percentile(idle_samples, 99) * 1000, 2),
                      "attack_p50": round(statistics.median(under_ok) * 1000, 2) if under_ok else None,
                      "attack_p99": round(percentile(under_ok, 99) * 1000, 2) if under_ok else None,
                      "idle_requests": len(idle_samples), "attack_requests": len(attacked),
                      "attack_failed": sum(1 for s in attacked if s.status != 200)},
        "attack": {"bodies": len(results), "statuses": statuses,
                   "answer_p50_ms": round(statistics.median([r["seconds"] for r in results]) * 1000, 1)
                   if results else None,
                   "mean_bytes_sent": round(statistics.mean([r["sent"] for r in results])) if results else None,
                   "bodies_per_s": round(len(results) / args.seconds, 1),
                   "mb_per_s": round(sum(r["sent"] for r in results) / args.seconds / 1e6, 1)},
    }
    config_used = {"senders": args.senders, "seconds": args.seconds, "body_bytes": len(body),
                   "senders_sched_idle": not args.same_priority, "load_average_1m": os.getloadavg()[0]}
    rows = [("worker RSS before / peak / after (MB)", f"{before:.0f} / {peak:.0f} / {after:.0f}"),
            ("normal p99 idle / under attack (ms)",
             f"{figures['normal_ms']['idle_p99']} / {figures['normal_ms']['attack_p99']}"),
            ("hostile bodies answered", json.dumps(statuses)),
            ("attack rate (bodies/s, MB/s sent)",
             f"{figures['attack']['bodies_per_s']}, {figures['attack']['mb_per_s']}"),
            ("sender's wait for its answer, p50 (ms)", str(figures["attack"]["answer_p50_ms"]))]
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    print(json.dumps(figures, indent=1))
    append_run(OUT, figures, config_used)


if __name__ == "__main__":
    sys.exit(main())
