"""Per-list cost of a saved model's scores and leave-one-out explanations, as serving computes them.

    python benchmarks/explain_model.py --model DIR [--dataset beauty] [--queries 300] [--repeats 3] [--label L]

For `queries` users of the dataset (their training history under strict leave-one-out, the newest 50 events):
`LeaveOneOut(model, query)` (the list's query and its leave-one-out rows over the newest 20 distinct history
items, `shoprec.explain.attribution`), then its `scores()` (the whole catalog) and `attribution(top 10)`, what a
served list with reasons computes (the service adds routing, history, rules and the log write). Medians over the
queries of the best of `repeats` passes, one thread. Run it with PYTHONPATH=<other checkout>/src to time other
code on the same model. Prints a table and appends to benchmarks/results/explain_model.json.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from large_model_text import DATASETS

from _results import RESULTS_DIR, append_run

RESULTS = RESULTS_DIR / "explain_model.json"


def main(argv: list[str] | None = None) -> None:
    import torch

    from shoprec.data.splits import leave_one_out
    from shoprec.datasets import load
    from shoprec.explain.attribution import LeaveOneOut
    from shoprec.models import load_model
    from shoprec.models.base import Query
    from shoprec.settings import Settings

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--dataset", choices=sorted(DATASETS), default="beauty")
    p.add_argument("--data-dir", type=Path, default=Settings.from_env().data_dir)
    p.add_argument("--queries", type=int, default=300)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--label", default="")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    fmt, rel = DATASETS[args.dataset]
    data = load(fmt, args.data_dir / rel)
    train = leave_one_out(data.interactions).train
    model = load_model(args.model)
    order, starts = train.sequence_rows()
    users = np.random.default_rng(0).choice(train.n_users, size=min(args.queries, train.n_users), replace=False)
    queries = [Query(history=train.item[order[starts[u]:starts[u + 1]]][-50:]) for u in users]
    parts: dict[str, list[float]] = {"encode": [], "scores": [], "attribution": [], "list": []}
    for q in queries:
        best = {k: np.inf for k in parts}
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            loo = LeaveOneOut(model, q)
            t1 = time.perf_counter()
            scores = loo.scores()
            t2 = time.perf_counter()
            loo.attribution(np.argsort(-scores)[:10])
            t3 = time.perf_counter()
            for k, v in (("encode", t1 - t0), ("scores", t2 - t1), ("attribution", t3 - t2), ("list", t3 - t0)):
                best[k] = min(best[k], v)
        for k in parts:
            parts[k].append(best[k] * 1000)
    figures = {k: {"p50_ms": round(float(np.median(v)), 3), "p95_ms": round(float(np.percentile(v, 95)), 3)}
               for k, v in parts.items()}
    figures["load_average"] = round(os.getloadavg()[0], 2)
    print(f"{args.label or 'run'}: {len(queries)} queries, model {args.model}")
    print("| part | p50 ms | p95 ms |\n|---|---|---|")
    for k in parts:
        print(f"| {k} | {figures[k]['p50_ms']:.3f} | {figures[k]['p95_ms']:.3f} |")
    config: dict[str, Any] = {"model": str(args.model), "dataset": args.dataset, "queries": len(queries),
                              "repeats": args.repeats, "label": args.label,
                              "pythonpath": os.environ.get("PYTHONPATH") or None}
    append_run(RESULTS, figures, config)


if __name__ == "__main__":
    main()
