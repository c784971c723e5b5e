"""Cold items on a real shop: how well the transformer places items it never trained on, through their text.

A seeded 10% of the catalog's items become cold: every event of theirs is dropped except where one is a
user's last event (the strict leave-one-out test target), so no cold item is ever trained on and none is in a
query's history. The model is fit through `shoprec evaluate`'s path (`--protocol loo`: last event test,
second-to-last validation) and two figures are read for the users whose test item is cold:

- `cold NDCG@10` / `cold HR@10`: the test item ranked among the cold items only (the "new arrivals" list:
  can the model tell the right new item from the other new items?); `chance` is the same under a random
  order;
- `full NDCG@10`: the evaluation's own full-ranking figure of those users (the cold item among all items).

Rows: the default transformer, `{"text_whiten": true}` and `{"use_text": false}` (no text: a cold item is
known by its attributes and an untrained id only).

    OMP_NUM_THREADS=1 python benchmarks/cold_items_text.py --datasets scientific --rows default,text_whiten,no-text

Each row is appended to benchmarks/results/cold_items_text.json as soon as it is measured.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from large_model_text import DATASETS

from _results import RESULTS_DIR, append_run

ROWS: dict[str, dict[str, Any]] = {"default": {}, "text_whiten": {"text_whiten": True}, "no-text": {"use_text": False}}
RESULTS = RESULTS_DIR / "cold_items_text.json"
K = 10


def cold_split(data: Any, fraction: float, seed: int) -> tuple[Any, np.ndarray]:
    """`data` with the events of a seeded `fraction` of its items dropped, except users' last events; and the
    boolean mask of those cold items."""
    from shoprec.data.splits import positions_from_end

    inter = data.interactions
    rng = np.random.default_rng(seed)
    cold = np.zeros(inter.n_items, dtype=bool)
    cold[rng.choice(inter.n_items, round(fraction * inter.n_items), replace=False)] = True
    from_end, _ = positions_from_end(inter)
    return dataclasses.replace(data, interactions=inter.subset(~cold[inter.item] | (from_end == 0))), cold


def cold_figures(model: Any, data: Any, cold: np.ndarray, per_user_ndcg: np.ndarray) -> dict[str, Any]:
    """The cold-target users' figures: their test item among the cold items, and their full-ranking NDCG@10
    (`per_user_ndcg`, the evaluation's per-user values, in the order of the sorted test users)."""
    from shoprec.data.splits import leave_one_out
    from shoprec.evaluation.engine import make_task

    split = leave_one_out(data.interactions)
    test = split.test
    order = np.argsort(test.user, kind="stable")
    users, items = test.user[order], test.item[order]
    assert len(users) == len(per_user_ndcg) and (np.diff(users) > 0).all()
    is_cold = cold[items]
    history = split.train.concat(split.valid) if split.valid is not None else split.train
    task = make_task(history, test.subset(order[is_cold]), exclude_seen=True)
    columns = np.flatnonzero(cold)
    position = np.full(len(cold), -1)
    position[columns] = np.arange(len(columns))
    ranks = []
    for start in range(0, len(task), 512):
        scores = model.score(task.queries[start:start + 512])[:, columns]
        target = position[items[is_cold][start:start + 512]]
        own = scores[np.arange(len(target)), target]
        ranks.append((scores > own[:, None]).sum(axis=1))  # ties counted in the item's favour
    rank = np.concatenate(ranks)
    ndcg = np.where(rank < K, 1.0 / np.log2(rank + 2.0), 0.0)
    n = len(columns)
    chance = float(sum(1.0 / np.log2(r + 2.0) for r in range(min(K, n))) / n)
    return {"cold_items": n, "cold_users": int(is_cold.sum()), "users": len(users),
            "cold_NDCG@10": float(ndcg.mean()), "cold_HR@10": float((rank < K).mean()),
            "chance_NDCG@10": chance, "full_NDCG@10_cold_users": float(per_user_ndcg[is_cold].mean()),
            "full_NDCG@10_warm_users": float(per_user_ndcg[~is_cold].mean())}


def run_row(dataset: str, row: str, params: dict[str, Any], fraction: float, seed: int, data_dir: Path
            ) -> dict[str, Any]:
    from shoprec.datasets import load
    from shoprec.evaluation.offline import run_evaluation
    from shoprec.evaluation.protocols import EvalConfig

    fmt, rel = DATASETS[dataset]
    data, cold = cold_split(load(fmt, data_dir / rel), fraction, seed)
    cfg = EvalConfig(protocol="loo", ks=(10,), exclude_seen=True, seed=seed)
    load_before = os.getloadavg()[0]
    doc, model = run_evaluation(data, f"{fmt}:{data_dir / rel}", "transformer", params, cfg)
    figures = cold_figures(model, data, cold, np.asarray(doc["per_user"]["values"]["NDCG@10"]))
    return {"dataset": dataset, "row": row, "params": params, "seed": seed, "cold_fraction": fraction,
            **figures, "NDCG@10": doc["metrics"]["NDCG@10"], "fit_seconds": doc["fit_seconds"],
            "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)]}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", default="scientific", help="comma-separated: " + ", ".join(DATASETS))
    p.add_argument("--rows", default="default,text_whiten,no-text", help="comma-separated: " + ", ".join(ROWS))
    p.add_argument("--fraction", type=float, default=0.1, help="share of the items made cold")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--data-dir", type=Path, default=Path(__file__).resolve().parents[1] / ".." / "shared" / "data")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    print(f"{'dataset':<11} {'row':<12} {'cold NDCG@10':>12} {'cold HR@10':>10} {'chance':>7} "
          f"{'full, cold users':>16} {'full, warm users':>16} {'NDCG@10':>8}")
    import torch

    torch.set_num_threads(args.threads)
    for dataset in args.datasets.split(","):
        for row in args.rows.split(","):
            params = dict(ROWS[row])
            f = run_row(dataset, row, params, args.fraction, args.seed, args.data_dir)
            append_run(RESULTS, f, {"dataset": dataset, "row": row, "seed": args.seed}, argv=sys.argv)
            print(f"{dataset:<11} {row:<12} {f['cold_NDCG@10']:>12.4f} {f['cold_HR@10']:>10.4f} "
                  f"{f['chance_NDCG@10']:>7.4f} {f['full_NDCG@10_cold_users']:>16.4f} "
                  f"{f['full_NDCG@10_warm_users']:>16.4f} {f['NDCG@10']:>8.4f}", flush=True)


if __name__ == "__main__":
    main()
