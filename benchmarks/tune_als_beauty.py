"""Tuning ALS on Amazon Beauty: a 3x3 grid with 3-fold cross-validation on the training part, then a check
that cross-validation chose well.

Phase 1 (timed, the `shoprec tune` path): test part = each user's last item (leave-one-out, strict:
seen items excluded, full ranking); the grid factors x regularization is scored by NDCG@10 over 3 rolling
last-item folds of the training part; the chosen configuration is tested once by the harness.
Phase 2 (verification only, not part of tuning): every grid point is tested the same way, to compare the
chosen configuration's test NDCG@10 with the best test value on the grid; "within noise" means the gap
is at most 2 standard errors of the per-user paired difference.

Usage: python benchmarks/tune_als_beauty.py [--no-verify] [--out PATH]
Prints a table to stdout, progress to stderr, writes benchmarks/results/tune_als_beauty.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from shoprec.datasets import load
from shoprec.evaluation.protocols import EvalConfig, run_protocol
from shoprec.models.factory import ModelFactory
from shoprec.settings import Settings
from shoprec.tuning import TuneConfig, load_space
from shoprec.tuning.run import TuneData, tune

from _results import RESULTS_DIR, append_run

RESULTS = RESULTS_DIR / "tune_als_beauty.json"
SPACE = {"embedding_size": [32, 64, 128], "regularization": [0.01, 0.1, 1.0]}
METRIC = "NDCG@10"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-verify", action="store_true", help="skip phase 2 (testing every grid point)")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    path = Settings.from_env().data_dir / "amazon-beauty" / "Beauty.txt"
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    t0, cpu0 = time.perf_counter(), time.process_time()
    dataset = load("s3rec", path)
    data = TuneData(dataset.interactions, dataset.catalog, None, f"s3rec:{path}")
    space = load_space("als", SPACE)
    cfg = TuneConfig(search="grid", folds=3, metric=METRIC, seed=0)
    eval_cfg = EvalConfig(protocol="loo", ks=(10, 20), seed=0)
    doc, _ = tune(data, "als", space, cfg, eval_cfg=eval_cfg,
                  callback=lambda s, t: print(f"trial {t.params}: cv {METRIC} {t.value:.5f}", file=sys.stderr))
    tuning_seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - cpu0
    print(f"tuning took {tuning_seconds:.1f} s wall, {cpu_seconds:.1f} s CPU (load + CV grid + test of the chosen "
          "config)", file=sys.stderr)
    result: dict[str, Any] = {
        "load_average_at_start": load_at_start,
        "tuning_seconds": round(tuning_seconds, 1), "tuning_cpu_seconds": round(cpu_seconds, 1),
        "load_average_at_end": os.getloadavg(), "tune": doc,
    }
    if not args.no_verify:
        result["verification"] = verify(data, doc, eval_cfg)
    append_run(Path(args.out), result, {"benchmark": "tune_als_beauty", "space": SPACE, "metric": METRIC,
                                        "search": "grid", "folds": 3, "python": platform.python_version()})
    print_table(result)


def verify(data: TuneData, doc: dict[str, Any], eval_cfg: EvalConfig) -> dict[str, Any]:
    """Test every grid point; compare the chosen one with the best test value (paired per-user NDCG@10)."""
    per_user: dict[str, np.ndarray] = {}
    rows = []
    for trial in doc["trials"]:
        key = json.dumps(trial["params"], sort_keys=True)
        params = {**trial["params"], "seed": 0}
        result = run_protocol(data.interactions, data.catalog, ModelFactory("als", params), eval_cfg)
        per_user[key] = result.per_user[METRIC]
        rows.append({"params": trial["params"], "cv_mean": trial["cv_mean"], "test": result.metrics[METRIC]})
        print(f"verify {trial['params']}: cv {trial['cv_mean']:.5f} test {result.metrics[METRIC]:.5f}", file=sys.stderr)
    chosen = json.dumps(doc["best"]["params"], sort_keys=True)
    best = max(rows, key=lambda r: r["test"])
    diff = per_user[json.dumps(best["params"], sort_keys=True)] - per_user[chosen]
    se = float(np.std(diff, ddof=1) / np.sqrt(len(diff)))
    gap = float(diff.mean())
    cv = np.array([r["cv_mean"] for r in rows])
    test = np.array([r["test"] for r in rows])
    return {"grid": rows, "chosen_test": float(per_user[chosen].mean()), "best_test": best["test"],
            "best_test_params": best["params"], "gap": gap, "gap_se": se, "within_noise": gap <= 2 * se,
            "spearman_cv_test": _spearman(cv, test)}


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def print_table(result: dict[str, Any]) -> None:
    doc = result["tune"]
    ver = result.get("verification")
    tests = {json.dumps(r["params"], sort_keys=True): r["test"] for r in (ver["grid"] if ver else [])}
    print(f"| factors | regularization | CV {METRIC} (mean ± std) | test {METRIC} |")
    print("|---|---|---|---|")
    for t in doc["trials"]:
        test = tests.get(json.dumps(t["params"], sort_keys=True))
        mark = " **chosen**" if t["params"] == doc["best"]["params"] else ""
        size, reg = t["params"]["embedding_size"], t["params"]["regularization"]
        print(f"| {size} | {reg} | {t['cv_mean']:.4f} ± {t['cv_std']:.4f}"
              f"{mark} | {'' if test is None else f'{test:.4f}'} |")
    print(f"tuning time {result['tuning_seconds']} s wall ({result['tuning_cpu_seconds']} s CPU); "
          f"chosen test {doc['test']['metrics'][METRIC]:.4f}")
    if ver:
        print(f"best test on the grid {ver['best_test']:.4f} ({ver['best_test_params']}); gap {ver['gap']:.4f} "
              f"(2 se = {2 * ver['gap_se']:.4f}) -> within noise: {ver['within_noise']}")


if __name__ == "__main__":
    main()
