"""What `SHOPREC_EXPLAIN_HISTORY` (the newest distinct history items a list's reasons may name) costs and changes.

Usage:
  python benchmarks/explain_history.py --workdir DIR [--caps 20,15,10,5] [--users 1500] [--model transformer]

The workdir is the serving benchmark's (`benchmarks/serving_latency.py --workdir DIR`: Beauty in SQLite and an
active model; prepared here when missing). For a sample of known users, with one thread: each user's list
(`RecommendService.recommend`, k=10) is served at every cap and its reasons are compared with those of the
cap 20 default: how often an item's top cause (`because_of[0]`) and its set of up to three causes stay the
same, over all users and over the users with more distinct items than the cap (the only ones a cap changes).
The cost: each cap serves the same lists in a process of its own (`--rounds` processes per cap, the order of
the caps alternating; the median of their means). Prints a table, writes benchmarks/results/explain_history.json.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _results import RESULTS_DIR, append_run

ROOT = Path(__file__).resolve().parents[1]
RESULTS = RESULTS_DIR / "explain_history.json"
BASE = 20


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--caps", default="20,15,10,5")
    parser.add_argument("--users", type=int, default=1500)
    parser.add_argument("--model", default="transformer")
    parser.add_argument("--rounds", type=int, default=3, help="timing processes per cap")
    parser.add_argument("--only-cap", type=int, default=None, help=argparse.SUPPRESS)  # one timing process
    args = parser.parse_args(argv)
    import serving_latency
    from shoprec.api.app import limit_threads
    from shoprec.service.testing import local_services

    limit_threads(1)
    users = serving_latency.prepare(args.workdir, "beauty", args.model, {}, train=False)[2]
    random.Random(0).shuffle(users)
    users = users[:args.users]
    if args.only_cap is not None:
        print(json.dumps(_time_one(args.workdir, users, args.only_cap)))
        return
    caps = sorted({BASE, *(int(c) for c in args.caps.split(","))}, reverse=True)
    services = {cap: local_services(args.workdir, model_poll_s=3600.0, explain_history=cap) for cap in caps}
    platform_name = "bench-beauty"
    for svc in services.values():
        svc.models.load_all()
    base = services[BASE]
    lists = {cap: {u: svc.recommend.recommend(platform_name, u, 10).to_json()["items"] for u in users}
             for cap, svc in services.items()}
    same: dict[int, dict[str, list[int]]] = {cap: {"all": [0, 0, 0], "long": [0, 0, 0]} for cap in caps}
    for u in users:
        distinct = len(set(base.users.get(platform_name, u).history))
        ref = {i["item_id"]: i["reason"].get("because_of", []) for i in lists[BASE][u]}
        for cap in caps:
            for item in lists[cap][u]:
                if item["item_id"] not in ref:
                    continue  # not compared: the lists are the same (a cap changes reasons only)
                causes, base_causes = item["reason"].get("because_of", []), ref[item["item_id"]]
                for group in ("all", "long") if distinct > cap else ("all",):
                    counts = same[cap][group]
                    counts[0] += 1
                    counts[1] += causes[:1] == base_causes[:1]
                    counts[2] += set(causes) == set(base_causes)
    for svc in services.values():
        svc.close()
    timed: dict[int, list[dict[str, float]]] = {cap: [] for cap in caps}
    for r in range(args.rounds):  # one process per cap and round (a process's caches and memory are its own)
        for cap in caps if r % 2 == 0 else caps[::-1]:
            out = subprocess.run([sys.executable, __file__, "--workdir", str(args.workdir), "--users",
                                  str(args.users), "--model", args.model, "--only-cap", str(cap)],
                                 check=True, capture_output=True, text=True).stdout
            timed[cap].append(json.loads(out.strip().splitlines()[-1]))
    rows = []
    for cap in caps:
        row: dict[str, Any] = {"explain_history": cap,
                               "list_ms_mean": round(statistics.median(t["mean_ms"] for t in timed[cap]), 3),
                               "list_ms_median": round(statistics.median(t["median_ms"] for t in timed[cap]), 3),
                               "list_ms_mean_per_process": [t["mean_ms"] for t in timed[cap]]}
        for group in ("all", "long"):
            n, top1, top3 = same[cap][group]
            row[f"{group}_items"] = n
            row[f"{group}_top1_same"] = round(top1 / n, 4) if n else None
            row[f"{group}_causes_same"] = round(top3 / n, 4) if n else None
        rows.append(row)
    print(f"{'cap':>4} {'list ms median/mean':>20} {'top cause same (all / long)':>30} "
          f"{'causes same (all / long)':>27}")
    for r in rows:
        print(f"{r['explain_history']:>4} {r['list_ms_median']:>10.3f} / {r['list_ms_mean']:<8.3f} "
              f"{r['all_top1_same']!s:>15} / {r['long_top1_same']!s:<12} {r['all_causes_same']!s:>12} / "
              f"{r['long_causes_same']!s}")
    append_run(RESULTS, {"rows": rows,
                         "note": "long = users with more distinct history items than the cap; lists served "
                                 "in-process, one thread, k=10 (50 items ranked and explained per list); "
                                 "list_ms_mean: median over the timing processes of each one's mean"},
               {"model": args.model, "users": len(users), "caps": caps, "rounds": args.rounds})


def _time_one(workdir: Path, users: list[str], cap: int) -> dict[str, float]:
    """Mean and median ms of every user's list at one cap, in this process (after 100 warm-up lists)."""
    from shoprec.service.testing import local_services

    svc = local_services(workdir, model_poll_s=3600.0, explain_history=cap)
    svc.models.load_all()
    for u in users[:100]:
        svc.recommend.recommend("bench-beauty", u, 10)
    times = []
    for u in users:
        t = time.perf_counter()
        svc.recommend.recommend("bench-beauty", u, 10)
        times.append(time.perf_counter() - t)
    svc.close()
    return {"cap": cap, "mean_ms": round(1000 * statistics.fmean(times), 3),
            "median_ms": round(1000 * statistics.median(times), 3)}


if __name__ == "__main__":
    main()
