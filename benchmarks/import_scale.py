"""Bulk-import scale benchmark: events/s into SQLite, PostgreSQL and MariaDB, peak RSS, then the snapshot.

Inputs: synthetic events-csv files of N events (`--events 1000000,3000000`; written once under `--workdir`,
deterministic: seed 0, users N/20, items N/100 + 1,000, 75% views, timestamps increasing) and/or the real
Online Retail file (`--online-retail`, the record path: that format builds items from the lines). Each
(input, backend) runs in a fresh worker process (its own peak RSS) on a scratch database, through
`shoprec.service.file_import.ingest_file`, the function `shoprec import` calls; `--code DIR` runs another
checkout's src (e.g. the code before this change: there `ingest(read_records(...))`, what its CLI called).

    python benchmarks/import_scale.py --events 1000000 --online-retail --backends sqlite,postgresql,mysql \
        [--reimport] [--code /path/to/other/src] [--label before]

Prints a table (events/s = events stored / import wall s; CPU s is this process only, "reader s" its reader
process's (a large file is parsed in a child process: shoprec.ingest.ahead); "server s": the CPU
seconds of the PostgreSQL backends that served the import, read from /proc where the server runs on this
machine) and appends to benchmarks/results/import_scale.json with the load average before and after.
Targets: >= 100,000 events/s into PostgreSQL, >= 50,000 into SQLite, snapshot of 10M events <= 30 s.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _results import RESULTS_DIR, append_run

ROOT = Path(__file__).resolve().parents[1]
RESULTS = RESULTS_DIR / "import_scale.json"
TARGETS = {"postgresql": 100_000.0, "sqlite": 50_000.0}
SNAPSHOT_TARGET_S_10M = 30.0


def synthetic_events(path: Path, n: int, seed: int = 0) -> Path:
    """A deterministic events-csv file of `n` events (written once; reused when present)."""
    if path.exists():
        return path
    rng = random.Random(seed)
    users, items = max(1, n // 20), n // 100 + 1000
    types = ["view"] * 6 + ["cart", "purchase"]
    tmp = path.with_suffix(".part")
    with tmp.open("w") as f:
        f.write("user_id,item_id,event_type,timestamp,value\n")
        t = 1_600_000_000
        for _ in range(n):
            t += rng.randint(0, 3)
            kind = rng.choice(types)
            f.write(f"u{rng.randrange(users)},i{rng.randrange(items)},{kind},{t},{'' if kind == 'view' else 1}\n")
    tmp.rename(path)
    return path


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _reader() -> dict[str, float]:
    """CPU seconds and peak RSS of the import's child processes (a large file's reader process,
    shoprec.ingest.ahead.read_apart), which this process's own figures leave out; empty when it had none."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    if not usage.ru_maxrss:
        return {}
    return {"reader_cpu_s": usage.ru_utime + usage.ru_stime, "reader_rss_mb": usage.ru_maxrss / 1024.0}


class ServerCpu:
    """CPU seconds of the PostgreSQL server processes (backends) serving an engine's connections, read from
    /proc (the server runs on this machine): the database's own share of an import, which the importing
    process's CPU seconds leave out. None where /proc does not show them (another machine, or MariaDB, whose
    connections are threads of one process)."""

    def __init__(self, engine: Any) -> None:
        import sqlalchemy as sa

        self.pids: list[int] = []
        if engine.dialect.name == "postgresql":
            engine.dispose()  # the import's connections are new ones: each names its backend
            sa.event.listen(engine, "connect", self._connected)

    def _connected(self, dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("SELECT pg_backend_pid()")
        self.pids.append(int(cursor.fetchone()[0]))
        cursor.close()
        dbapi_connection.rollback()

    def seconds(self) -> float | None:
        if not self.pids:
            return None
        total = 0
        for pid in self.pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:  # a backend that ended (its connection was closed): its time is lost
                continue
            total += int(fields[11]) + int(fields[12])  # utime, stime
        return total / os.sysconf("SC_CLK_TCK")


def worker(backend: str, fmt: str, path: Path, reimport: bool) -> dict[str, Any]:
    """One (input, backend) in this process: import, (re-import), snapshot."""
    from shoprec.storage import create_db, load_interactions
    from shoprec.storage.testing import scratch_database

    try:
        from shoprec.service.file_import import ingest_file

        def run(engine: Any) -> Any:
            return ingest_file(engine, "p", fmt, path)
    except ImportError:  # code before the fast path: what its `shoprec import` called
        from shoprec.datasets import read_records
        from shoprec.ingest.pipeline import ingest

        def run(engine: Any) -> Any:
            return ingest(engine, "p", read_records(fmt, path))

    out: dict[str, Any] = {"backend": backend, "input": path.name, "load_before": os.getloadavg()[0]}
    with scratch_database(backend) as url:
        engine = create_db(url)
        server = ServerCpu(engine)
        server_before = server.seconds()
        wall, cpu = time.perf_counter(), time.process_time()
        report = run(engine)
        out.update(import_s=time.perf_counter() - wall, import_cpu_s=time.process_time() - cpu,
                   import_rss_mb=_rss_mb(), read=report.read, accepted=report.accepted,
                   rejected=report.rejected, events=report.stored_total("events"), **_reader())
        server_after = server.seconds()
        if server_after is not None:
            out["import_server_cpu_s"] = server_after - (server_before or 0.0)
        if reimport:
            wall, cpu = time.perf_counter(), time.process_time()
            again = run(engine)
            out.update(reimport_s=time.perf_counter() - wall, reimport_cpu_s=time.process_time() - cpu,
                       reimport_new_events=again.stored_total("events"),
                       reimport_duplicates=again.rejected.get("duplicate", 0))
        wall, cpu = time.perf_counter(), time.process_time()
        inter, _catalog = load_interactions(engine, "p")
        out.update(snapshot_s=time.perf_counter() - wall, snapshot_cpu_s=time.process_time() - cpu,
                   snapshot_events=len(inter), peak_rss_mb=_rss_mb())
        engine.dispose()
    out["load_after"] = os.getloadavg()[0]
    return out


SQL_EVENTS = {
    # n events of users n/20 and items n/100 + 1000 written by the database itself (the import is measured above;
    # this only builds a platform of n events to time the snapshot at sizes an import here would take too long for)
    "sqlite": ("WITH RECURSIVE k(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM k WHERE x < :n - 1) "
               "INSERT INTO events (platform_id, user_id, item_id, event_type, value, timestamp, dedupe_key) "
               "SELECT :p, :u0 + (x * 7919) % :nu, :i0 + (x * 104729) % :ni, "
               "CASE x % 8 WHEN 6 THEN 'cart' WHEN 7 THEN 'purchase' ELSE 'view' END, "
               "CASE WHEN x % 8 >= 6 THEN 1.0 END, 1600000000 + x, printf('%032x', x) FROM k"),
    "postgresql": ("INSERT INTO events (platform_id, user_id, item_id, event_type, value, timestamp, dedupe_key) "
                   "SELECT :p, :u0 + (x * 7919) % :nu, :i0 + (x * 104729) % :ni, "
                   "CASE x % 8 WHEN 6 THEN 'cart' WHEN 7 THEN 'purchase' ELSE 'view' END, "
                   "CASE WHEN x % 8 >= 6 THEN 1.0 END, 1600000000 + x, lpad(to_hex(x), 32, '0') "
                   "FROM generate_series(0::bigint, :n - 1) AS x"),
}


def snapshot_worker(backend: str, n: int) -> dict[str, Any]:
    """Time `load_interactions` on a platform of n events written by SQL (see SQL_EVENTS)."""
    import sqlalchemy as sa

    from shoprec.storage import PlatformRepo, create_db, get_or_create_platform, load_interactions
    from shoprec.storage.testing import scratch_database

    out: dict[str, Any] = {"backend": backend, "snapshot_events": n, "load_before": os.getloadavg()[0]}
    with scratch_database(backend) as url:
        engine = create_db(url)
        wall = time.perf_counter()
        with engine.begin() as conn:
            key = get_or_create_platform(conn, "p")
            repo = PlatformRepo(conn, key)
            nu, ni = max(1, n // 20), n // 100 + 1000
            users = repo.ensure_users([f"u{k}" for k in range(nu)])
            items = repo.ensure_items([f"i{k}" for k in range(ni)])
            conn.execute(sa.text(SQL_EVENTS[backend]), {"n": n, "p": key, "u0": min(users.values()), "nu": nu,
                                                        "i0": min(items.values()), "ni": ni})
        out["build_s"] = time.perf_counter() - wall
        wall, cpu = time.perf_counter(), time.process_time()
        inter, _catalog = load_interactions(engine, "p")
        out.update(snapshot_s=time.perf_counter() - wall, snapshot_cpu_s=time.process_time() - cpu,
                   events=len(inter), users=inter.n_users, items=inter.n_items, peak_rss_mb=_rss_mb())
        engine.dispose()
    out["load_after"] = os.getloadavg()[0]
    return out


def run_one(backend: str, fmt: str, path: Path, args: argparse.Namespace) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(args.code))
    cmd = [sys.executable, __file__, "--worker", backend, "--format", fmt, "--path", str(path)]
    cmd += ["--reimport"] if args.reimport else []
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    if proc.returncode != 0:
        message = (proc.stderr.strip().splitlines() or ["failed"])[-1]
        print(f"{backend} {path.name}: {message}", file=sys.stderr)
        return {"backend": backend, "input": path.name, "error": message}
    result: dict[str, Any] = json.loads(proc.stdout)
    if fmt == "snapshot":
        return result
    result["events_per_s"] = result["events"] / result["import_s"]
    result["events_per_cpu_s"] = result["events"] / result["import_cpu_s"]
    if "import_server_cpu_s" in result:  # PostgreSQL: the server's CPU too
        result["events_per_total_cpu_s"] = result["events"] / (result["import_cpu_s"] + result["import_server_cpu_s"])
    print(json.dumps(result), file=sys.stderr)
    return result


def table(results: list[dict[str, Any]]) -> str:
    head = (f"{'input':<22} {'backend':<10} {'events':>10} {'import s':>9} {'cpu s':>7} {'events/s':>9} "
            f"{'ev/cpu s':>9} {'reader s':>8} {'server s':>8} {'reimport s':>10} {'new':>4} {'snapshot s':>10} "
            f"{'peak MB':>8} {'load':>5}")
    lines = [head, "-" * len(head)]
    for r in results:
        if "error" in r:
            lines.append(f"{r['input']:<22} {r['backend']:<10} error: {r['error']}")
            continue
        re_s = f"{r['reimport_s']:>10.1f} {r['reimport_new_events']:>4}" if "reimport_s" in r else f"{'-':>10} {'-':>4}"
        lines.append(f"{r['input']:<22} {r['backend']:<10} {r['events']:>10,} {r['import_s']:>9.1f} "
                     f"{r['import_cpu_s']:>7.1f} {r['events_per_s']:>9,.0f} {r['events_per_cpu_s']:>9,.0f} "
                     f"{r.get('reader_cpu_s', float('nan')):>8.1f} "
                     f"{r.get('import_server_cpu_s', float('nan')):>8.1f} {re_s} "
                     f"{r['snapshot_s']:>10.2f} {r['peak_rss_mb']:>8.0f} {r['load_before']:>5.1f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="sqlite,postgresql,mysql")
    parser.add_argument("--events", default="", help="Synthetic file sizes, comma-separated (e.g. 1000000).")
    parser.add_argument("--online-retail", action="store_true", help="Also the UCI Online Retail file.")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/shoprec-import-scale"))
    parser.add_argument("--code", type=Path, default=ROOT / "src", help="The src directory to benchmark.")
    parser.add_argument("--label", default="", help="Stored with the run (e.g. before / after).")
    parser.add_argument("--reimport", action="store_true", help="Import twice; the second must add nothing.")
    parser.add_argument("--snapshot-events", default="",
                        help="Only the snapshot: platforms of N events written by SQL, comma-separated (sqlite, "
                             "postgresql).")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--format", default="events-csv", help=argparse.SUPPRESS)
    parser.add_argument("--path", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        if args.format == "snapshot":
            print(json.dumps(snapshot_worker(args.worker, int(str(args.path)))))
        else:
            print(json.dumps(worker(args.worker, args.format, args.path, args.reimport)))
        return
    if args.snapshot_events:
        snapshots = [run_one(b.strip(), "snapshot", Path(n.strip()), args) for n in args.snapshot_events.split(",")
                     for b in args.backends.split(",")]
        for r in snapshots:
            print(f"snapshot {int(r.get('snapshot_events', 0)):>12,} events {r['backend']:<10} "
                  + (f"{r['snapshot_s']:8.1f} s wall {r['snapshot_cpu_s']:8.1f} s CPU {r['peak_rss_mb']:7.0f} MB "
                     f"load {r['load_before']:.1f}" if "error" not in r else r["error"]))
        append_run(RESULTS, {"snapshots": snapshots, "snapshot_target_s_10m": SNAPSHOT_TARGET_S_10M},
                   {"label": args.label, "code": str(args.code), "backends": args.backends,
                    "snapshot_events": args.snapshot_events})
        return
    inputs: list[tuple[str, Path]] = []
    args.workdir.mkdir(parents=True, exist_ok=True)
    for n in (int(x) for x in args.events.split(",") if x.strip()):
        inputs.append(("events-csv", synthetic_events(args.workdir / f"events_{n}.csv", n)))
    if args.online_retail:
        data = Path(os.environ.get("SHOPREC_DATA_DIR", ROOT.parent / "shared" / "data"))
        path = data / "online-retail" / "online_retail.csv.gz"
        if not path.exists():
            sys.exit(f"data file not found: {path} (set SHOPREC_DATA_DIR)")
        inputs.append(("online-retail", path))
    results = [run_one(b.strip(), fmt, path, args) for fmt, path in inputs for b in args.backends.split(",")]
    print(table(results))
    append_run(RESULTS, {"results": results, "targets_events_per_s": TARGETS,
                         "snapshot_target_s_10m": SNAPSHOT_TARGET_S_10M},
               {"label": args.label, "code": str(args.code), "backends": args.backends, "events": args.events,
                "online_retail": args.online_retail, "reimport": args.reimport})


if __name__ == "__main__":
    main()
