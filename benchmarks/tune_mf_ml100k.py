"""Tuned `mf` on MovieLens-100K: nested cross-validation over the official folds u1..u5.

For each official fold u_i: a grid search with K-fold cross-validation on u_i.base ONLY (its test
ratings are never seen while tuning), then the chosen configuration is fitted on u_i.base and its
RMSE measured once on u_i.test. Reported: per-fold choice, CV RMSE and test RMSE, and the mean test
RMSE over u1..u5 (the number to compare with published 5-fold results).

Usage: python benchmarks/tune_mf_ml100k.py [--folds 2] [--space JSON] [--only u1,u2] [--db URL] [--out PATH]
Prints a table to stdout, progress to stderr, writes benchmarks/results/tune_mf_ml100k.json (after every
outer fold, so a partial run leaves its finished folds). With --db, each outer fold's study is stored
there (named ml100k-mf-u1, ...) and a killed run resumes where it stopped. Outer folds can run side by side:
    python benchmarks/tune_mf_ml100k.py --only u1,u2,u3 --out /tmp/a.json &
    python benchmarks/tune_mf_ml100k.py --only u4,u5 --out /tmp/b.json
    python benchmarks/tune_mf_ml100k.py --merge /tmp/a.json /tmp/b.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from shoprec.datasets import load
from shoprec.evaluation.offline import dataset_folds
from shoprec.evaluation.protocols import EvalConfig
from shoprec.settings import Settings
from shoprec.tuning import TuneConfig, load_space, open_storage
from shoprec.tuning.run import TuneData, tune

from _results import RESULTS_DIR, append_run, is_run, latest

RESULTS = RESULTS_DIR / "tune_mf_ml100k.json"
SPACE = {"embedding_size": [10, 20]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", type=int, default=2, help="inner CV folds on each u_i.base")
    parser.add_argument("--space", default=json.dumps(SPACE), help="search space (JSON)")
    parser.add_argument("--only", default="", help="comma-separated outer folds (default: all)")
    parser.add_argument("--db", default=None, help="database URL for resumable studies (default: in memory)")
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads")
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--merge", nargs="+", default=None, metavar="PART",
                        help="only merge the outer-fold rows of these partial result files into --out")
    args = parser.parse_args()
    if args.merge:
        merge(args)
        return
    dataset = load("movielens-100k", Settings.from_env().data_dir / "ml-100k")
    folds = dataset_folds(dataset) or []
    data = TuneData(dataset.interactions, dataset.catalog, folds, "movielens-100k")
    space = load_space("mf", json.loads(args.space))
    cfg = TuneConfig(search="grid", folds=args.folds, metric="RMSE", seed=0)
    storage = open_storage(args.db) if args.db else None
    wanted = [f for f in args.only.split(",") if f] or [f.name for f in folds]
    rows: list[dict[str, Any]] = []
    t_all = time.perf_counter()
    for name in wanted:
        t0 = time.perf_counter()
        print(f"outer fold {name}: grid {space.to_dict()} with {args.folds}-fold CV on {name}.base", file=sys.stderr)
        with threadpool_limits(args.threads):
            doc, _ = tune(data, "mf", space, cfg, eval_cfg=EvalConfig(protocol="official-folds", seed=0),
                          storage=storage, study_name=f"ml100k-mf-{name}" if storage else None, test_fold=name,
                          callback=lambda s, t: print(f"  trial {t.params} cv RMSE {t.value}", file=sys.stderr))
        rows.append({"fold": name, "best_params": doc["best"]["params"], "cv_rmse": doc["best"]["cv_mean"],
                     "cv_std": doc["best"]["cv_std"], "test_rmse": doc["test"]["metrics"]["RMSE"],
                     "test_mae": doc["test"]["metrics"]["MAE"], "trials": doc["trials"],
                     "seconds": round(time.perf_counter() - t0, 1)})
        print(f"  {name}: chose {rows[-1]['best_params']} -> test RMSE {rows[-1]['test_rmse']:.4f}", file=sys.stderr)
        write(args, rows, space.to_dict(), time.perf_counter() - t_all, replace_last=len(rows) > 1)
    print_table(rows)


def write(args: argparse.Namespace, rows: list[dict[str, Any]], space: dict[str, Any], seconds: float,
          replace_last: bool = False) -> None:
    """Append the run to --out; `replace_last`: update the entry this run wrote after its previous fold."""
    figures = {"folds": rows, "mean_test_rmse": float(np.mean([r["test_rmse"] for r in rows])) if rows else None,
               "complete": len(rows) == 5, "seconds": round(seconds, 1),
               "note": "outer folds may run as parallel processes (--only); seconds is then the longest part"}
    config = {"benchmark": "tune_mf_ml100k", "blas_threads": args.threads, "inner_folds": args.folds,
              "protocol": f"nested: grid search with {args.folds}-fold CV on each official u_i.base, "
                          "chosen config fitted on u_i.base, RMSE on u_i.test",
              "space": space, "python": platform.python_version()}
    append_run(Path(args.out), figures, config, replace_last=replace_last)


def merge(args: argparse.Namespace) -> None:
    """Combine partial runs (e.g. u1-u3 and u4-u5 run side by side) into one result file."""
    parts = [_part(Path(p)) for p in args.merge]
    rows = sorted((r for part in parts for r in part["folds"]), key=lambda r: r["fold"])
    args.threads = parts[0]["blas_threads"]
    write(args, rows, parts[0]["space"], max(p["seconds"] for p in parts))
    print_table(rows)


def _part(path: Path) -> dict[str, Any]:
    """folds, seconds, space and blas_threads of a partial result file's newest run (either shape)."""
    entry = latest(path)
    if entry is None:
        raise SystemExit(f"{path}: no run")
    if is_run(entry):
        return {**entry["figures"], "space": entry["config"]["space"],
                "blas_threads": entry["config"]["blas_threads"]}
    return {**entry, "blas_threads": entry["machine"]["blas_threads"]}


def print_table(rows: list[dict[str, Any]]) -> None:
    print("| fold | chosen | CV RMSE | test RMSE | seconds |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['fold']} | {r['best_params']} | {r['cv_rmse']:.4f} | {r['test_rmse']:.4f} | {r['seconds']} |")
    if rows:
        print(f"| mean | | | {np.mean([r['test_rmse'] for r in rows]):.4f} | |")


if __name__ == "__main__":
    main()
