"""MovieLens-100K rating prediction on the official folds u1..u5: RMSE / MAE of `mf` and `ncf`.

Protocol: for each fold k, train on uk.base and predict every rating of uk.test (943 users, 1,682
items; a test user or item absent from uk.base is predicted from what is known: the global mean plus
the known side's bias). The test files are never used for any choice. Models that need a validation
set for early stopping (ncf) choose their epoch count on a seeded 10% hold-out of uk.base and are then
refitted on all of uk.base for that many epochs; mf (Gibbs sampling, posterior averaging) does not
overfit with more sweeps and is fitted on uk.base directly with its defaults.

    python benchmarks/ml100k_ratings.py [--models mf,ncf] [--folds 1,2,3,4,5] [--mf '{"epochs": 200}']

Prints a table (stdout) and writes benchmarks/results/ml100k_ratings.json (entries of models not run
this time are kept from the existing file, so models can be run separately). Progress goes to stderr.
The files are parsed here directly (TSV: user, item, rating, unix time).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from shoprec.data import IdMap, Interactions
from shoprec.models import RatingValidation, create_model
from shoprec.settings import Settings

from _results import RESULTS_DIR, append_run

RESULTS = RESULTS_DIR / "ml100k_ratings.json"
NEEDS_EPOCH_CHOICE = {"ncf"}  # models whose epochs are chosen on a hold-out of the base file, then refitted
HOLDOUT = 0.1


def read_fold(folder: Path, k: int) -> tuple[Interactions, RatingValidation]:
    """(train from uk.base, test pairs from uk.test as indices into train's id maps, -1 when unknown)."""
    base = np.loadtxt(folder / f"u{k}.base", dtype=np.int64)
    test = np.loadtxt(folder / f"u{k}.test", dtype=np.int64)
    train = Interactions.from_ids(base[:, 0].astype(str), base[:, 1].astype(str), value=base[:, 2],
                                  timestamp=base[:, 3], users=IdMap(), items=IdMap())
    pairs = RatingValidation(train.users.lookup(test[:, 0].astype(str)), train.items.lookup(test[:, 1].astype(str)),
                             test[:, 2].astype(np.float64))
    return train, pairs


def holdout(train: Interactions, seed: int) -> tuple[Interactions, RatingValidation]:
    """A seeded 10% of the ratings as a validation set; the rest to fit on."""
    mask = np.random.default_rng(seed).random(len(train)) < HOLDOUT
    val = RatingValidation(train.user[mask].astype(np.int64), train.item[mask].astype(np.int64),
                           train.value[mask].astype(np.float64))
    return train.subset(~mask), val


def run_fold(name: str, params: dict[str, Any], train: Interactions, test: RatingValidation,
             seed: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    chosen = None
    if name in NEEDS_EPOCH_CHOICE:
        fit_part, val = holdout(train, seed)
        probe = create_model(name, params).fit(fit_part, validation=val)
        chosen = int(probe.best_epoch)
        params = {**params, "epochs": chosen}
    model = create_model(name, params).fit(train)
    seconds = time.perf_counter() - t0
    scores = test.evaluate(model)
    return {"RMSE": scores["RMSE"], "MAE": scores["MAE"], "seconds": round(seconds, 1), "epochs": chosen}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Settings.from_env().data_dir / "ml-100k")
    parser.add_argument("--models", default="mf,ncf")
    parser.add_argument("--folds", default="1,2,3,4,5")
    parser.add_argument("--mf", default="{}", help="JSON parameters for mf")
    parser.add_argument("--ncf", default='{"device": "cpu"}', help="JSON parameters for ncf")
    parser.add_argument("--threads", type=int, default=1, help="torch and BLAS threads")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--note", default="", help="free text stored with the results (e.g. 'machine under load')")
    args = parser.parse_args(argv)
    if not (args.data / "u1.base").exists():
        sys.exit(f"ML-100K not found at {args.data} (set SHOPREC_DATA_DIR or --data)")
    torch.set_num_threads(args.threads)
    with threadpool_limits(limits=args.threads):
        run(args)


def run(args: argparse.Namespace) -> None:
    folds = [int(f) for f in args.folds.split(",")]
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    params = {m: json.loads(getattr(args, m, "{}") or "{}") for m in models}
    results: dict[str, Any] = {}
    for name in models:
        per_fold = []
        for k in folds:
            train, test = read_fold(args.data, k)
            row = {"fold": f"u{k}", **run_fold(name, params[name], train, test, seed=k)}
            per_fold.append(row)
            print(f"{name} u{k}: RMSE {row['RMSE']:.4f} MAE {row['MAE']:.4f} ({row['seconds']} s)", file=sys.stderr)
        results[name] = {"params": params[name], "folds": per_fold,
                         "mean": {m: float(np.mean([r[m] for r in per_fold])) for m in ("RMSE", "MAE")}}
    print(table(results, folds))
    append_run(args.output, {"results": results}, {
        "benchmark": "ml100k_ratings", "protocol": "official folds uk.base -> uk.test, RMSE/MAE over all test ratings; "
        "ncf epochs chosen on a seeded 10% hold-out of uk.base then refitted on uk.base",
        "models": models, "folds": folds, "threads": args.threads, "note": args.note})


def table(results: dict[str, Any], folds: list[int]) -> str:
    head = "| model | metric | " + " | ".join(f"u{k}" for k in folds) + " | mean |"
    lines = [head, "|" + "---|" * (len(folds) + 3)]
    for name, res in results.items():
        for metric in ("RMSE", "MAE"):
            cells = " | ".join(f"{r[metric]:.4f}" for r in res["folds"])
            lines.append(f"| {name} | {metric} | {cells} | {res['mean'][metric]:.4f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
