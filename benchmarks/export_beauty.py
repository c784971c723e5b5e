"""Batch export on Beauty: every user's top-k with the default transformer, time and peak memory.

    python benchmarks/export_beauty.py [--workdir DIR] [--epochs 1] [--k 20] [--threads 2]

Steps: import Amazon Beauty (S3-Rec sequences, ../shared/data/amazon-beauty) into a SQLite database through the
ingest pipeline, train the default transformer (`--epochs`: fewer than the default 20 for the timing: the export
scores the same network whatever its training length), activate it, then run `shoprec export-recommendations`
in a child process (its wall time, CPU time and peak RSS from wait4, and the machine's load average before
and after) once to Parquet and once to CSV. A workdir
that already holds the platform and an active model is reused (--workdir). Prints a table and appends the run
to benchmarks/results/export_beauty.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _results import RESULTS_DIR, append_run

ROOT = Path(__file__).resolve().parents[1]
RESULTS = RESULTS_DIR / "export_beauty.json"
PLATFORM = "beauty"


def prepare(workdir: Path, epochs: int, data_dir: Path) -> dict[str, Any]:
    """The database with Beauty and an active transformer (reused when present); facts about it."""
    from shoprec.datasets import read_records
    from shoprec.ingest.pipeline import ingest
    from shoprec.service.testing import local_services
    from shoprec.storage import list_platforms

    services = local_services(workdir)
    facts: dict[str, Any] = {}
    try:
        with services.engine.connect() as conn:
            known = PLATFORM in list_platforms(conn)
        if not known:
            t0 = time.perf_counter()
            ingest(services.engine, PLATFORM, read_records("s3rec", data_dir / "amazon-beauty" / "Beauty.txt"))
            facts["import_seconds"] = round(time.perf_counter() - t0, 1)
        if services.store.active(PLATFORM) is None:
            print(f"training the default transformer for {epochs} epoch(s)", file=sys.stderr)
            trained = services.store.train(PLATFORM, "transformer", {"epochs": epochs}, activate=True,
                                           evaluate=False, progress=lambda m: print(m, file=sys.stderr))
            facts["fit_seconds"] = trained.fit_seconds
        facts["model_id"] = services.store.active(PLATFORM)[0]  # type: ignore[index]
    finally:
        services.close()
    return facts


def run_export(workdir: Path, k: int, out: Path, threads: int) -> dict[str, Any]:
    """`shoprec export-recommendations` in a child process: its JSON, wall seconds and peak RSS (MiB)."""
    env = {**os.environ, "SHOPREC_DATABASE_URL": f"sqlite:///{workdir / 'shoprec.db'}",
           "SHOPREC_MODEL_DIR": str(workdir / "models"), "SHOPREC_CACHE_DIR": str(workdir / "cache"),
           "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    cmd = [sys.executable, "-c", "from shoprec.cli.main import main; main()", "export-recommendations",
           "-p", PLATFORM, "--k", str(k), "--out", str(out), "--fresh", "--quiet"]
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stderr is not None
    stdout, stderr = proc.stdout.read(), proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"export failed ({proc.returncode}): {stderr}")
    result = json.loads(stdout)
    return {"wall_seconds": round(wall, 2), "export_seconds": result["seconds"], "users": result["users"],
            "rows": result["rows"], "users_per_second": round(result["users"] / result["seconds"], 1),
            "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
            "peak_rss_mib": round(usage.ru_maxrss / 1024, 1), "bytes": out.stat().st_size,
            "load_average_1min": [round(load_before, 1), round(os.getloadavg()[0], 1)]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "shoprec-export-beauty")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    if not (args.data / "amazon-beauty" / "Beauty.txt").exists():
        raise SystemExit(f"no Beauty data under {args.data} (amazon-beauty/Beauty.txt)")
    facts = prepare(args.workdir, args.epochs, args.data)
    figures: dict[str, Any] = {"setup": facts}
    for fmt in ("parquet", "csv"):
        figures[fmt] = run_export(args.workdir, args.k, args.workdir / f"top{args.k}.{fmt}", args.threads)
    print(f"{'format':8} {'users':>7} {'rows':>9} {'export s':>9} {'wall s':>7} {'cpu s':>6} {'users/s':>8} "
          f"{'peak MiB':>9} {'load':>11}")
    for fmt in ("parquet", "csv"):
        f = figures[fmt]
        print(f"{fmt:8} {f['users']:>7,} {f['rows']:>9,} {f['export_seconds']:>9.1f} {f['wall_seconds']:>7.1f} "
              f"{f['cpu_seconds']:>6.1f} {f['users_per_second']:>8,.0f} {f['peak_rss_mib']:>9,.0f} "
              f"{f['load_average_1min'][0]:>5.1f}->{f['load_average_1min'][1]:<5.1f}")
    append_run(RESULTS, figures, {"k": args.k, "epochs": args.epochs, "threads": args.threads,
                                  "model": "transformer (defaults, epochs overridden)"})


if __name__ == "__main__":
    main()
