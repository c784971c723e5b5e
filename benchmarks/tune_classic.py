"""Validation-based tuning of the classic models (itemknn, ease, als, bpr) on Amazon Beauty.

Protocol (leave-one-out, strict, full ranking over all items):
- train: every user's sequence without its last two items (Beauty.txt, S3-Rec version);
- validation: history = the train sequence, target = the second-to-last item;
- test: history = the train sequence + the validation item, target = the last item;
- the query's history items are excluded from the ranking (the target never is).
Configs are chosen on validation NDCG@10 only; the test split is scored once, for the chosen config,
by the same fitted model (no refit on train + validation).

Usage: python benchmarks/tune_classic.py [--models ease,als] [--quick] [--out PATH]
       python benchmarks/tune_classic.py --defaults   # score the shipped default configs
Prints a table to stdout, progress to stderr, writes benchmarks/results/classic_tuning.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import os
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shoprec.data import IdMap, Interactions
from shoprec.models import Query, Recommender, create_model, get_model_class
from shoprec.ranking import target_ranks
from shoprec.settings import Settings

from _results import RESULTS_DIR, append_run, latest_figures

RESULTS = RESULTS_DIR / "classic_tuning.json"
CONFIG = {"dataset": "amazon-beauty (S3-Rec)", "protocol": "leave-one-out, full ranking, strict (history excluded), "
          "tuned on validation NDCG@10, test scored once"}

# Grids: `fit` parameters need a refit per value; `score` parameters only change scoring, so one
# fitted model is evaluated for each of their values.
GRIDS: dict[str, dict[str, dict[str, list[Any]]]] = {
    "itemknn": {
        "fit": {"neighbors": [100, 1000], "shrink": [10.0, 20.0, 50.0, 100.0], "weighting": ["none", "tfidf"]},
        "score": {"history_decay": [0.8, 0.6, 0.5, 0.4]},
    },
    "ease": {
        "fit": {"regularization": [25.0, 50.0, 100.0, 200.0]},
        "score": {"history_decay": [1.0, 0.8, 0.6, 0.5, 0.4]},
    },
    "als": {
        "fit": {"embedding_size": [64, 128], "regularization": [1.0, 10.0], "alpha": [40.0, 80.0, 160.0],
                "epochs": [10]},
        "score": {"history_decay": [0.5, 0.3, 0.2, 0.1]},
    },
    "bpr": {
        "fit": {"embedding_size": [64, 128], "learning_rate": [0.05, 0.1], "regularization": [0.01],
                "epochs": [300, 600]},
        "score": {"history_decay": [0.5, 0.3, 0.2, 0.1]},
    },
}
QUICK: dict[str, dict[str, dict[str, list[Any]]]] = {
    name: {"fit": {}, "score": {"history_decay": [1.0, 0.7]}} for name in GRIDS
}


# ------------------------------------------------------------------------------- data
@dataclass
class Split:
    """Queries, targets and exclusions (the query histories) of one evaluation split."""

    queries: list[Query]
    targets: np.ndarray

    @property
    def exclude(self) -> list[np.ndarray]:
        return [q.history for q in self.queries]


def load_beauty(data_dir: Path) -> tuple[Interactions, Split, Split]:
    """(train interactions, validation split, test split) from Beauty.txt."""
    path = data_dir / "amazon-beauty" / "Beauty.txt"
    users, items = IdMap(), IdMap()
    sequences: list[np.ndarray] = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            parts = line.split()
            if len(parts) < 4:  # user + at least one train, one validation and one test item
                continue
            users.add(parts[0])
            sequences.append(items.add_many(parts[1:]))
    train_seqs = [s[:-2] for s in sequences]
    user = np.repeat(np.arange(len(sequences), dtype=np.int32), [len(s) for s in train_seqs])
    item = np.concatenate(train_seqs)
    timestamp = np.concatenate([np.arange(len(s), dtype=np.int64) for s in train_seqs])
    train = Interactions(user=user, item=item, users=users, items=items, timestamp=timestamp)
    valid = Split([Query(u, s[:-2]) for u, s in enumerate(sequences)], np.array([s[-2] for s in sequences]))
    test = Split([Query(u, s[:-1]) for u, s in enumerate(sequences)], np.array([s[-1] for s in sequences]))
    return train, valid, test


# ------------------------------------------------------------------------------- metrics
def evaluate(model: Recommender, split: Split, ks: Sequence[int] = (10, 20), batch: int = 2048) -> dict[str, float]:
    """HR@k and NDCG@k through the shared ranking path (ranking.target_ranks), strict exclusions."""
    ranks = []
    for start in range(0, len(split.queries), batch):
        stop = start + batch
        scores = model.score(split.queries[start:stop])
        ranks.append(target_ranks(scores, split.targets[start:stop], exclude=split.exclude[start:stop]))
    r = np.concatenate(ranks)
    out: dict[str, float] = {}
    for k in ks:
        hit = r < k
        out[f"HR@{k}"] = round(float(hit.mean()), 5)
        out[f"NDCG@{k}"] = round(float(np.where(hit, 1.0 / np.log2(r + 2.0), 0.0).mean()), 5)
    return out


# ------------------------------------------------------------------------------- search
def combos(grid: Mapping[str, list[Any]]) -> Iterator[dict[str, Any]]:
    keys = list(grid)
    for values in itertools.product(*(grid[k] for k in keys)):
        yield dict(zip(keys, values, strict=True))


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def tune(name: str, grid: Mapping[str, Mapping[str, list[Any]]], train: Interactions, valid: Split,
         test: Split) -> dict[str, Any]:
    """Grid search on validation NDCG@10, then the chosen config's test metrics."""
    trials: list[dict[str, Any]] = []
    best: tuple[float, dict[str, Any], Recommender | None] = (-1.0, {}, None)
    for fit_params in combos(grid["fit"]):
        model = create_model(name, fit_params).fit(train)
        log(f"{name} {fit_params}: fit {model.fit_seconds:.1f} s")
        base = model.config
        for score_params in combos(grid["score"]):
            model.config = dataclasses.replace(base, **score_params)  # scoring-only parameters
            t0 = time.perf_counter()
            metrics = evaluate(model, valid)
            params = {**fit_params, **score_params}
            trials.append({"params": params, "validation": metrics, "fit_seconds": round(model.fit_seconds, 2),
                           "score_seconds": round(time.perf_counter() - t0, 2)})
            log(f"  {score_params}: validation {metrics}")
            if metrics["NDCG@10"] > best[0]:
                best = (metrics["NDCG@10"], params, model)
        del model
    _, params, chosen = best
    assert chosen is not None
    chosen.config = dataclasses.replace(chosen.config, **{k: params[k] for k in grid["score"]})
    return {"best_params": params, "best_config": dataclasses.asdict(chosen.config),
            "validation": evaluate(chosen, valid), "test": evaluate(chosen, test),
            "fit_seconds": round(chosen.fit_seconds, 2), "load_average": [round(x, 2) for x in os.getloadavg()],
            "trials": trials}


def score_defaults(names: Sequence[str], train: Interactions, valid: Split, test: Split, out: Path) -> None:
    """Validation and test metrics of each model's default config, merged into `out` under "defaults"."""
    results = {**(latest_figures(out) or {}), "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}
    results["models"] = dict(results.get("models", {}))
    print(f"{'model':8} {'split':10} {'HR@10':>7} {'NDCG@10':>8} {'HR@20':>7} {'NDCG@20':>8} {'fit s':>7}")
    for name in names:
        model = create_model(name).fit(train)
        entry = {"config": dataclasses.asdict(model.config), "fit_seconds": round(model.fit_seconds, 2),
                 "validation": evaluate(model, valid), "test": evaluate(model, test),
                 "load_average": [round(x, 2) for x in os.getloadavg()]}
        results["models"][name] = {**results["models"].get(name, {}), "defaults": entry}
        append_run(out, results, {**CONFIG, "defaults_of": list(names)}, replace_last=name != names[0])
        for split in ("validation", "test"):
            m = entry[split]
            print(f"{name:8} {split:10} {m['HR@10']:7.4f} {m['NDCG@10']:8.4f} {m['HR@20']:7.4f} "
                  f"{m['NDCG@20']:8.4f} {entry['fit_seconds']:7.1f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="itemknn,ease,als,bpr")
    parser.add_argument("--quick", action="store_true", help="defaults only, two history_decay values")
    parser.add_argument("--defaults", action="store_true",
                        help="only score each model's default config (after tuning) and add it to --out as 'defaults'")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    data_dir = args.data_dir or Settings.from_env().data_dir
    train, valid, test = load_beauty(data_dir)
    log(f"Beauty: {train.n_users} users, {train.n_items} items, {len(train)} train events")
    grids = QUICK if args.quick else GRIDS
    results: dict[str, Any] = {"load_average_at_start": [round(x, 2) for x in os.getloadavg()], "models": {}}
    names = args.models.split(",")
    for name in names:
        get_model_class(name)  # import every model up front
    if args.defaults:
        score_defaults(names, train, valid, test, args.out)
        return
    results["models"] = dict((latest_figures(args.out) or {}).get("models", {}))  # the other models' results
    config = {**CONFIG, "tuned": names, "quick": args.quick}
    for name in names:
        results["models"][name] = tune(name, grids[name], train, valid, test)
        results["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
        append_run(args.out, results, config, replace_last=name != names[0])  # after each model
    print(f"{'model':8} {'split':10} {'HR@10':>7} {'NDCG@10':>8} {'HR@20':>7} {'NDCG@20':>8} {'fit s':>7}  params")
    for name, res in results["models"].items():
        for split in ("validation", "test"):
            m = res[split]
            print(f"{name:8} {split:10} {m['HR@10']:7.4f} {m['NDCG@10']:8.4f} {m['HR@20']:7.4f} "
                  f"{m['NDCG@20']:8.4f} {res['fit_seconds']:7.1f}  {res['best_params']}")
    log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
