"""What a worker's background popularity count costs: counting every event anew against adding the new ones.

Usage:
  python benchmarks/popularity_counts.py --workdir DIR [--platform bench-beauty] [--new 0,100,10000] [--rounds 5]

The workdir is the serving benchmark's (`benchmarks/serving_latency.py --workdir DIR`: Beauty's ~200k events
in SQLite). Its database is copied to a temporary directory first (nothing is written to the workdir). For each
number of new events (stored with `PlatformRepo.add_events`, random known users and items, after a first count),
`shoprec.service.catalog.count_events` is timed both ways: from nothing (the full GROUP BY every worker ran
each minute before) and from the previous counts (the events after the last counted id: what it runs now, with
a full recount hourly); the two results are checked to be equal. Medians of `--rounds`. Prints a table and
appends to benchmarks/results/popularity_counts.json.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _results import RESULTS_DIR, append_run

RESULTS = RESULTS_DIR / "popularity_counts.json"


def main() -> None:
    from shoprec.data.records import EventRecord
    from shoprec.service.catalog import count_events
    from shoprec.storage import PlatformRepo, create_db, get_or_create_platform
    from shoprec.storage.serving import ServingRepo
    from shoprec.types import EventType

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--platform", default="bench-beauty")
    parser.add_argument("--new", default="0,100,10000", help="new events before each incremental count")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    source = args.workdir / "shoprec.db"
    if not source.exists():
        sys.exit(f"no database at {source}: run benchmarks/serving_latency.py --workdir {args.workdir} first")
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="shoprec-pop-") as tmp:
        db = Path(tmp) / "shoprec.db"
        shutil.copy(source, db)
        engine = create_db(f"sqlite:///{db}")
        with engine.begin() as conn:
            key = get_or_create_platform(conn, args.platform)
            repo = PlatformRepo(conn, key)
            users, items = repo.user_id_column()[1], [str(r[1]) for r in repo.item_rows()]
            total = repo.count_events()
        rng = random.Random(0)
        stamp = time.time()
        for new in [int(x) for x in args.new.split(",")]:
            full_s, incremental_s = [], []
            for _ in range(args.rounds):
                with engine.connect() as conn:
                    previous = count_events(ServingRepo(conn, key))
                if new:
                    stamp += 1
                    events = [EventRecord(rng.choice(users), rng.choice(items), EventType.PURCHASE, stamp + i / 1e6)
                              for i in range(new)]
                    with engine.begin() as conn:
                        PlatformRepo(conn, key).add_events(events)
                with engine.connect() as conn:
                    serving = ServingRepo(conn, key)
                    t0 = time.perf_counter()
                    incremental = count_events(serving, previous)
                    t1 = time.perf_counter()
                    full = count_events(serving)
                    t2 = time.perf_counter()
                if incremental.by_item != full.by_item:
                    sys.exit("the incremental count differs from the full count")
                incremental_s.append(t1 - t0)
                full_s.append(t2 - t1)
            with engine.connect() as conn:
                total = PlatformRepo(conn, key).count_events()
            rows.append({"new_events": new, "platform_events": total,
                         "full_ms": round(1000 * statistics.median(full_s), 2),
                         "incremental_ms": round(1000 * statistics.median(incremental_s), 2)})
        engine.dispose()
    print(f"{'new events':>11}{'platform events':>17}{'full count ms':>15}{'incremental ms':>16}")
    for r in rows:
        print(f"{r['new_events']:>11}{r['platform_events']:>17}{r['full_ms']:>15}{r['incremental_ms']:>16}")
    append_run(RESULTS, {"rows": rows}, {"platform": args.platform, "rounds": args.rounds, "backend": "sqlite"})


if __name__ == "__main__":
    main()
