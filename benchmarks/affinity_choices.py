"""What the transformer's after-training choices give on the same trained networks: the text affinity, the
transition affinity and the popularity correction, each fixed or chosen on the validation targets as fit chooses
them (`Transformer.finish`), and the test figures of each choice.

    python benchmarks/affinity_choices.py --dataset beauty --model-dir DIR [--config JSON] \\
        --choose '{"text_affinity": 0, "transition_affinity": 0}' \\
        --choose '{"text_affinity": null, "transition_affinity": null}'

The first run fits the default transformer (with `--config` over it) on the protocol's training part, with its
validation targets, and saves it to DIR (`--model-dir`); later runs load it. Then, for every `--choose`, the
saved networks get those parameters and `finish` chooses what they leave null, and the test split is scored
through the evaluation engine. Protocols: `beauty` and `scientific` strict leave-one-out (`--protocol loo`),
`online-retail` temporal at 2011-11-01 with each user's last training event as validation target (as `shoprec
evaluate` runs them). A fit here is the fit `shoprec evaluate` makes: the choices are made after training, so
one fit answers every choice without a training run each. Prints a table and appends to
benchmarks/results/affinity_choices.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any, cast

from _results import RESULTS_DIR, append_run

RESULTS = RESULTS_DIR / "affinity_choices.json"
DATASETS = {"beauty": ("s3rec", "amazon-beauty/Beauty.txt"), "scientific": ("amazon-json", "amazon-scientific"),
            "online-retail": ("online-retail", "online-retail/online_retail.csv.gz")}
METRICS = ("HR@10", "NDCG@10", "HR@20", "NDCG@20", "Recall@10")


def protocol(dataset: str, data_dir: Path) -> tuple[Any, Any, Any, Any, Any]:
    """(catalog, training part, validation, test task, the training data the item statistics count)."""
    from shoprec.data.splits import leave_one_out
    from shoprec.datasets import load
    from shoprec.evaluation.engine import make_task
    from shoprec.evaluation.protocols import EvalConfig, ranking_validation, temporal_holdout

    fmt, rel = DATASETS[dataset]
    data = load(fmt, data_dir / rel)
    if dataset == "online-retail":
        cfg = EvalConfig(protocol="temporal", cutoff="2011-11-01", ks=(10, 20))
        split, test = temporal_holdout(data.interactions, "2011-11-01")
        inner = leave_one_out(split.train, validation=False)
        return (data.catalog, inner.train, ranking_validation(inner.train, inner.test, cfg),
                make_task(split.train, test, exclude_seen=True), split.train)
    cfg = EvalConfig(protocol="loo", ks=(10, 20))
    split = leave_one_out(data.interactions)
    assert split.valid is not None
    return (data.catalog, split.train, ranking_validation(split.train, split.valid, cfg),
            make_task(split.train.concat(split.valid), split.test, exclude_seen=True), split.train)


def main(argv: list[str] | None = None) -> None:
    from shoprec.evaluation.engine import ItemStats, evaluate_ranking
    from shoprec.models import load_model
    from shoprec.models.factory import ModelFactory
    from shoprec.models.transformer import Transformer
    from shoprec.settings import Settings

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", choices=sorted(DATASETS), required=True)
    p.add_argument("--model-dir", type=Path, required=True)
    p.add_argument("--config", default="{}", help="transformer parameters of the fit (JSON)")
    p.add_argument("--choose", action="append", default=[], help="after-training parameters to try (JSON)")
    p.add_argument("--data-dir", type=Path, default=Settings.from_env().data_dir)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save", type=Path, default=None, help="save the model of the last --choose here")
    args = p.parse_args(argv)
    catalog, train, validation, task, counted = protocol(args.dataset, args.data_dir)
    fit: dict[str, Any] = {}
    if (args.model_dir / "meta.json").exists():
        model = cast(Transformer, load_model(args.model_dir))
    else:
        make = ModelFactory("transformer", {"progress": False, **json.loads(args.config)}, seed=args.seed)
        load_before = os.getloadavg()[0]
        model = cast(Transformer, make.fit(train, catalog, validation=validation))
        fit = {"config": make.config, "fit_seconds": model.fit_seconds, "best_epochs": model.best_epochs,
               "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)]}
        model.save(args.model_dir)
    assert model.fitted is not None
    members = list(model.fitted.members)
    stats = ItemStats.from_train(counted)
    rows, base = [], model.config
    for choose in args.choose or ["{}"]:
        params = json.loads(choose)
        model.config = dataclasses.replace(base, **params)  # each choice over the fitted config, not the last one
        model.transitions = None  # built again from `train` where needed
        t0 = time.perf_counter()
        model.finish(members, train, validation)
        choose_seconds = time.perf_counter() - t0
        metrics = evaluate_ranking(model, task, (10, 20), stats).metrics
        rows.append({"choose": params, **{k: getattr(model, k) for k in (
            "text_affinity", "transition_affinity", "affinity_z", "popularity_correction", "text_affinity_search",
            "transition_affinity_search", "popularity_search")},
            "val_NDCG@10": max(model.popularity_search.values()) if model.popularity_search else None,
            **{m: metrics[m] for m in METRICS}, "choose_seconds": round(choose_seconds, 1)})
    print(f"{args.dataset}, {len(task)} test users, model {args.model_dir}")
    print("| choose | text | transition | z | popularity | val NDCG@10 | HR@10 | NDCG@10 | HR@20 | NDCG@20 |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        val = f"{r['val_NDCG@10']:.4f}" if r["val_NDCG@10"] is not None else ""
        z = f"{r['affinity_z']:.2f}" if r["affinity_z"] is not None else ""
        print(f"| {json.dumps(r['choose'])} | {r['text_affinity']:g} | {r['transition_affinity']:g} | {z} | "
              f"{r['popularity_correction']:g} | {val} | {r['HR@10']:.4f} | {r['NDCG@10']:.4f} | "
              f"{r['HR@20']:.4f} | {r['NDCG@20']:.4f} |")
    if args.save is not None:
        model.save(args.save)
    append_run(RESULTS, {"dataset": args.dataset, "model_dir": str(args.model_dir), "users": len(task),
                         "fit": fit, "rows": rows})


if __name__ == "__main__":
    main()
