"""Latency of the list types (trending, buy it again, frequently bought together, new arrivals) in process, on
Beauty (~22k users, ~12k items, ~200k purchase events in SQLite) with an active itemknn model.

Usage:
  python benchmarks/list_types.py --workdir DIR [--requests 200] [--new-items 200]

The workdir keeps the database between runs (Beauty is loaded and itemknn trained on the first run). Every
item but `--new-items` random ones is dated 100 days before the newest event (items.created_at), so new
arrivals rank a realistic set of new items; every category is repurchasable, so buy it again takes its full
path. Trending is anchored at the newest event (`now`), window 7d: "cold" is a request that counts (the
per-worker cache cleared first), "warm" one that reuses the counts (TRENDING_TTL_S). Each figure is the median
and p99 of `--requests` calls of the ListService method (no HTTP) with random users / carts of 1-3 bought items.
Prints a table and appends to benchmarks/results/list_types.json.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _results import RESULTS_DIR, append_run

RESULTS = RESULTS_DIR / "list_types.json"
PLATFORM = "bench-beauty"


def prepare(workdir: Path) -> None:
    """Beauty in the workdir's database with an active itemknn model (once)."""
    from shoprec.datasets import read_records
    from shoprec.ingest.pipeline import ingest
    from shoprec.service.testing import local_services
    from shoprec.settings import Settings
    from shoprec.storage import list_platforms

    services = local_services(workdir)
    with services.engine.connect() as conn:
        loaded = PLATFORM in list_platforms(conn)
    if not loaded:
        print("loading Beauty", file=sys.stderr)
        ingest(services.engine, PLATFORM, read_records("s3rec", Settings.from_env().data_dir / "amazon-beauty"
                                                       / "Beauty.txt"))
    if services.store.active(PLATFORM) is None:
        print("training itemknn", file=sys.stderr)
        services.store.train(PLATFORM, "itemknn", activate=True, evaluate=False)
    services.close()


def timed(calls: list[Callable[[], Any]]) -> dict[str, float]:
    out = []
    for call in calls:
        t0 = time.perf_counter()
        call()
        out.append((time.perf_counter() - t0) * 1000)
    out.sort()
    p99 = out[min(len(out) - 1, int(len(out) * 0.99))]
    return {"p50_ms": round(statistics.median(out), 2), "p99_ms": round(p99, 2), "n": len(out)}


def main() -> None:
    import sqlalchemy as sa

    from shoprec.service.testing import local_services
    from shoprec.storage import PlatformRepo, find_platform
    from shoprec.storage import tables as T

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--new-items", type=int, default=200)
    args = parser.parse_args()
    prepare(args.workdir)
    plain = local_services(args.workdir)
    with plain.engine.connect() as conn:
        key = find_platform(conn, PLATFORM)
        assert key is not None
        rows = PlatformRepo(conn, key).item_rows()
        categories = tuple(sorted({str(r[4]).split(" > ")[0] for r in rows}))
        newest = float(conn.execute(sa.select(sa.func.max(T.events.c.timestamp))
                                    .where(T.events.c.platform_id == key)).scalar() or time.time())
        buyers = [str(u) for (u,) in conn.execute(
            sa.select(T.users.c.external_id).where(T.users.c.platform_id == key).limit(5000))]
    plain.close()
    rng = random.Random(0)
    items = [str(r[1]) for r in rows]
    fresh = set(rng.sample(items, min(args.new_items, len(items))))
    services = local_services(args.workdir, repurchasable=categories)
    with services.engine.begin() as conn:
        t = T.items
        conn.execute(sa.update(t).where(t.c.platform_id == key).values(created_at=newest - 100 * 86400))
        conn.execute(sa.update(t).where(t.c.platform_id == key, t.c.external_id.in_(sorted(fresh)))
                     .values(created_at=newest - 86400))
    lists = services.lists
    services.catalogs.get(PLATFORM)  # the catalog view, as a worker loads it at startup
    services.models.get(PLATFORM)
    n = args.requests
    users = [rng.choice(buyers) for _ in range(n)]
    carts = [rng.sample(items, rng.randint(1, 3)) for _ in range(n)]

    def cold() -> Any:
        lists._counts.clear()
        return lists.trending(PLATFORM, 10, "7d", now=newest)

    figures = {
        "trending_cold": timed([cold] * min(n, 20)),
        "trending_warm": timed([lambda: lists.trending(PLATFORM, 10, "7d", now=newest)] * n),
        "buy_again": timed([lambda u=u: lists.buy_again(PLATFORM, u, 10, now=newest) for u in users]),
        "bought_together": timed([lambda c=c: lists.bought_together(PLATFORM, c, 10) for c in carts]),
        "new_arrivals": timed([lambda u=u: lists.new_arrivals(PLATFORM, u, 10, days=30, now=newest) for u in users]),
        "recommend_same_users": timed([lambda u=u: services.recommend.recommend(PLATFORM, u, 10) for u in users]),
    }
    sample = {"trending": [i.reason.level for i in lists.trending(PLATFORM, 10, "7d", now=newest).items],
              "bought_together": [i.reason.level for i in lists.bought_together(PLATFORM, carts[0], 10).items]}
    services.close()
    print(f"{'list':<22} {'p50 ms':>8} {'p99 ms':>8} {'n':>5}")
    for name, f in figures.items():
        print(f"{name:<22} {f['p50_ms']:>8} {f['p99_ms']:>8} {f['n']:>5}")
    print("levels:", sample)
    append_run(RESULTS, figures, config={"data": "beauty", "model": "itemknn", "items": len(items),
                                         "new_items": len(fresh), "requests": n, "window": "7d",
                                         "levels": sample})


if __name__ == "__main__":
    main()
