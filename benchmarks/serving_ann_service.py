"""A 1M-item catalog through the whole online path: ANN candidates + exact re-scoring + filters + ranking +
explanations, in process (no HTTP), against the same service scoring every item exactly.

Usage:
  python benchmarks/serving_ann_service.py [--items 1000000] [--users 100000] [--queries 500] [--workdir DIR]

Data: items in 2,000 clusters (category = cluster), each user views 8 items of one cluster; loaded into a
SQLite database through the ingest pipeline (reused from --workdir when present), ALS (64 factors) trained
and activated through the model store. Then two services over that database: the default one (catalogs above
SHOPREC_ANN_THRESHOLD = 200,000 items take candidates from the faiss index) and one with the threshold above
the catalog size (exact). For random known users: `recommend(k=20)` latency (one at a time, one thread),
recall@20 of the served list against the exact service's list, and the same with a category filter (every
item must be in the category). Prints a table and writes benchmarks/results/serving_ann_service.json.
"""

from __future__ import annotations

import os

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import argparse  # noqa: E402
import random  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from _results import RESULTS_DIR, append_run  # noqa: E402

RESULTS = RESULTS_DIR / "serving_ann_service.json"
PLATFORM = "big"


def records(n_items: int, n_users: int, seed: int) -> Iterator[Any]:
    from shoprec.data.records import EventRecord, ItemRecord
    from shoprec.types import EventType

    rng = np.random.default_rng(seed)
    clusters = 2000
    for i in range(n_items):
        yield ItemRecord(item_id=f"i{i}", title=f"item {i}", category=f"c{i % clusters}",
                         price=float(1 + i % 97))
    t0 = 1.7e9
    for u in range(n_users):
        c = int(rng.integers(clusters))
        for j, k in enumerate(rng.integers(0, n_items // clusters, 8)):
            yield EventRecord(user_id=f"u{u}", item_id=f"i{int(k) * clusters + c}", event_type=EventType.VIEW,
                              timestamp=t0 + u + j * 0.001)


def prepare(workdir: Path, args: argparse.Namespace) -> None:
    from shoprec.ingest.pipeline import ingest
    from shoprec.service.testing import local_services

    services = local_services(workdir)
    try:
        from shoprec.storage import list_platforms

        with services.engine.connect() as conn:
            known = PLATFORM in list(list_platforms(conn))
        if not known or services.store.active(PLATFORM) is None:
            print(f"loading {args.items:,} items and {args.users * 8:,} events into {workdir}", file=sys.stderr)
            t = time.perf_counter()
            if not known:
                services.platforms.create(PLATFORM)
            ingest(services.engine, PLATFORM, records(args.items, args.users, args.seed), cleaning=False)
            print(f"loaded in {time.perf_counter() - t:.0f} s; training als", file=sys.stderr)
            services.store.train(PLATFORM, "als", {"embedding_size": 64, "epochs": 10}, activate=True, evaluate=False)
    finally:
        services.close()


def timed(services: Any, users: list[str], k: int, filters: Any = None) -> tuple[list[list[str]], list[float]]:
    lists, ms = [], []
    for u in users:
        t = time.perf_counter()
        answer = services.recommend.recommend(PLATFORM, u, k, filters=filters)
        ms.append((time.perf_counter() - t) * 1000)
        lists.append(answer.item_ids)
    return lists, ms


def main() -> None:
    from shoprec.service import Filters
    from shoprec.service.testing import local_services

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="shoprec-ann-"))
    prepare(workdir, args)
    rng = random.Random(args.seed)
    users = [f"u{rng.randrange(args.users)}" for _ in range(args.queries)]
    rows: dict[str, Any] = {}
    exact_lists: dict[str, list[list[str]]] = {}
    for mode, config in (("exact", {"ann_threshold": 10**9}), ("ann", {})):
        services = local_services(workdir, model_poll_s=3600.0, **config)
        try:
            t = time.perf_counter()
            services.models.load_all()
            load_s = time.perf_counter() - t
            served = services.models.get(PLATFORM)
            assert served is not None and (served.ann is not None) == (mode == "ann")
            timed(services, users[:20], args.k)  # warm-up (catalog view, masks)
            for case, filters in (("all items", None), ("category filter", "category")):
                if filters == "category":
                    cats = [services.users.get(PLATFORM, u).history[-1] for u in users]
                    view = services.catalogs.get(PLATFORM)
                    lists, ms = [], []
                    for u, item in zip(users, cats, strict=True):
                        category = str(view.category[view.items.get(item)])
                        got, took = timed(services, [u], args.k, Filters(category=category))
                        assert all(str(view.category[view.items.get(i)]) == category for i in got[0])
                        lists += got
                        ms += took
                else:
                    lists, ms = timed(services, users, args.k)
                key = f"{mode}, {case}"
                if mode == "exact":
                    exact_lists[case] = lists
                recall = float(np.mean([len(set(a) & set(b)) / max(len(b), 1)
                                        for a, b in zip(lists, exact_lists[case], strict=True)]))
                rows[key] = {"p50_ms": round(float(np.percentile(ms, 50)), 2),
                             "p99_ms": round(float(np.percentile(ms, 99)), 2),
                             f"recall@{args.k}_vs_exact": round(recall, 4), "model_load_s": round(load_s, 1)}
        finally:
            services.close()
    print(f"{'path':<28}{'p50 ms':>9}{'p99 ms':>9}{'recall@' + str(args.k):>11}")
    for key, r in rows.items():
        print(f"{key:<28}{r['p50_ms']:>9}{r['p99_ms']:>9}{r[f'recall@{args.k}_vs_exact']:>11}")
    append_run(RESULTS, {"rows": rows, "load_average_at_end": [round(x, 2) for x in os.getloadavg()]},
               {"items": args.items, "users": args.users, "queries": args.queries, "k": args.k, "seed": args.seed,
                "model": "als, 64 factors", "threads": 1})


if __name__ == "__main__":
    main()
