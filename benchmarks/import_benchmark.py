"""Import benchmark: the full UCI Online Retail file into SQLite, PostgreSQL and MariaDB, then DB -> Interactions.

Each backend runs in a fresh worker process (so peak RSS is its own) on a scratch database (a temporary
SQLite file, a fresh PostgreSQL schema, a fresh MariaDB database; dropped afterwards), through the same
`read_records` -> `ingest` path as `shoprec import`. Targets: SQLite <= 60 s wall and <= 1 GB peak RSS,
PostgreSQL and MariaDB <= 120 s each, snapshot (load_interactions) <= 10 s.

    python benchmarks/import_benchmark.py [--backends sqlite,postgresql,mysql] [--limit N]
                                          [--batch-size N] [--reimport]

Prints a table (stdout) and writes benchmarks/results/import.json. `--reimport` imports the file a second
time and checks it adds no event (idempotency). Wall times depend on machine load: the JSON records the
load average at the start and end of each run; CPU seconds are less sensitive to it.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _results import RESULTS_DIR, append_run

ROOT = Path(__file__).resolve().parents[1]
RESULTS = RESULTS_DIR / "import.json"
TARGET_S = {"sqlite": 60.0, "postgresql": 120.0, "mysql": 120.0}
SNAPSHOT_TARGET_S = 10.0
RSS_TARGET_MB = 1024.0


def _timed(fn: Any) -> tuple[Any, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def worker(backend: str, path: Path, limit: int | None, batch_size: int, reimport: bool) -> dict[str, Any]:
    """One backend, in this process: import, (re-import), snapshot."""
    from shoprec.datasets import read_records
    from shoprec.ingest.pipeline import ingest
    from shoprec.storage import create_db, load_interactions
    from shoprec.storage.testing import scratch_database

    def records() -> Any:
        recs = read_records("online-retail", path)
        return itertools.islice(recs, limit) if limit else recs

    out: dict[str, Any] = {"backend": backend, "load_before": os.getloadavg()[0]}
    with scratch_database(backend) as url:
        engine = create_db(url)
        report, out["import_s"], out["import_cpu_s"] = _timed(lambda: ingest(engine, "retail", records(),
                                                                           batch_size=batch_size))
        out["import_rss_mb"] = _rss_mb()
        out.update(read=report.read, accepted=report.accepted, rejected=report.rejected,
                   events=report.stored_total("events"))
        if reimport:
            again, out["reimport_s"], _ = _timed(lambda: ingest(engine, "retail", records(), batch_size=batch_size))
            out["reimport_new_events"] = again.stored_total("events")
        (inter, _catalog), out["snapshot_s"], out["snapshot_cpu_s"] = _timed(
            lambda: load_interactions(engine, "retail"))
        out.update(snapshot_events=len(inter), users=inter.n_users, items=inter.n_items, peak_rss_mb=_rss_mb())
        engine.dispose()
    out["load_after"] = os.getloadavg()[0]
    return out


def run_backend(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--worker", backend, "--path", str(args.path), "--batch-size",
           str(args.batch_size)] + (["--limit", str(args.limit)] if args.limit else []) + \
          (["--reimport"] if args.reimport else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        message = (proc.stderr.strip().splitlines() or ["failed"])[-1]
        print(f"{backend}: {message}", file=sys.stderr)
        return {"backend": backend, "error": message}
    result: dict[str, Any] = json.loads(proc.stdout)
    result["ok"] = None if args.limit else (  # targets are for the full file only
        result["import_s"] <= TARGET_S[backend] and result["snapshot_s"] <= SNAPSHOT_TARGET_S
        and (backend != "sqlite" or result["peak_rss_mb"] <= RSS_TARGET_MB))
    return result


def table(results: list[dict[str, Any]]) -> str:
    head = (f"{'backend':<11} {'import s':>9} {'cpu s':>7} {'target':>7} {'rows/s':>8} {'events':>8} "
            f"{'snapshot s':>10} {'peak MB':>8} {'load':>5}  ok")
    lines = [head, "-" * len(head)]
    for r in results:
        if "error" in r:
            lines.append(f"{r['backend']:<11} error: {r['error']}")
            continue
        lines.append(f"{r['backend']:<11} {r['import_s']:>9.1f} {r['import_cpu_s']:>7.1f} "
                     f"{TARGET_S[r['backend']]:>7.0f} {r['read'] / r['import_s']:>8,.0f} {r['events']:>8,} "
                     f"{r['snapshot_s']:>10.2f} {r['peak_rss_mb']:>8.0f} {r['load_before']:>5.1f}  "
                     f"{ {True: 'yes', False: 'no', None: '-'}[r['ok']] }")
    return "\n".join(lines)


def main() -> None:
    from shoprec.settings import Settings

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="sqlite,postgresql,mysql")
    parser.add_argument("--path", type=Path,
                        default=Settings.from_env().data_dir / "online-retail" / "online_retail.csv.gz")
    parser.add_argument("--limit", type=int, default=None, help="Only the first N records (smoke test).")
    parser.add_argument("--batch-size", type=int, default=5000)
    parser.add_argument("--reimport", action="store_true", help="Import twice; the second must add nothing.")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.path, args.limit, args.batch_size, args.reimport)))
        return
    if not args.path.exists():
        sys.exit(f"data file not found: {args.path} (set SHOPREC_DATA_DIR)")
    results = []
    for backend in args.backends.split(","):
        print(f"importing into {backend}...", file=sys.stderr)
        results.append(run_backend(backend.strip(), args))
    print(table(results))
    append_run(RESULTS, {"results": results,
                         "targets": {"import_s": TARGET_S, "snapshot_s": SNAPSHOT_TARGET_S,
                                     "sqlite_peak_rss_mb": RSS_TARGET_MB}},
               {"dataset": str(args.path.name), "limit": args.limit, "batch_size": args.batch_size,
                "backends": args.backends, "reimport": args.reimport, "python": platform.python_version()})


if __name__ == "__main__":
    main()
