"""Transformer on Amazon Beauty (S3-Rec version), strict leave-one-out, full ranking.

Protocol (ANCHORS.md section 1): per user, train on all items but the last two, validate on the
second-to-last (early stopping / tuning), test on the last with the history including the validation
item; rank against all 12,101 items with the user's history items excluded (strict); report HR@10,
NDCG@10, HR@20, NDCG@20 over all users.

    python benchmarks/transformer_beauty.py [--data DIR] [--users N] [--config '{"dropout": 0.4}'] [--threads 2]

Prints a table to stderr and JSON to stdout (and to --out when given). Runs under
`torchrun --nproc_per_node N benchmarks/transformer_beauty.py ...` too (rank 0 reports).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from shoprec.config import config_to_dict
from shoprec.data import IdMap, Interactions, ItemCatalog
from shoprec.models.base import Query, RankingValidation
from shoprec.models.transformer import Transformer
from shoprec.ranking import target_ranks
from shoprec.settings import Settings

from _results import append_run


@dataclass
class LooData:
    """Leave-one-out parts of a sequence dataset, with the queries and exclusions of both targets."""

    train: Interactions
    catalog: ItemCatalog
    validation: RankingValidation
    test_queries: list[Query]
    test_targets: np.ndarray
    test_exclude: list[np.ndarray]


def read_beauty(path: Path, users: int = 0, seed: int = 0) -> tuple[list[list[str]], list[str], ItemCatalog]:
    """(sequences of item ids, user ids, catalog with attribute ids); `users` > 0 keeps a random subset."""
    file = path / "Beauty.txt" if path.is_dir() else path
    lines = [line.split() for line in file.read_text(encoding="utf-8").splitlines() if line.strip()]
    items = IdMap(i for line in lines for i in line[1:])  # every item, even when users are subsampled
    if users and users < len(lines):
        keep = np.sort(np.random.default_rng(seed).choice(len(lines), users, replace=False))
        lines = [lines[i] for i in keep]
    attr_file = file.parent / "Beauty_item2attributes.json"
    attribute_ids = [np.zeros(0, dtype=np.int32) for _ in range(len(items))]
    if attr_file.exists():
        for item, attrs in json.loads(attr_file.read_text(encoding="utf-8")).items():
            idx = items.get(str(item))
            if idx is not None:
                attribute_ids[idx] = np.asarray(attrs, dtype=np.int32)
    catalog = ItemCatalog(items=items, attribute_ids=attribute_ids)
    return [line[1:] for line in lines], [line[0] for line in lines], catalog


def leave_one_out(sequences: list[list[str]], user_ids: list[str], catalog: ItemCatalog) -> LooData:
    """Strict LOO parts of users with at least 3 items."""
    seqs = [(u, s) for u, s in zip(user_ids, sequences, strict=True) if len(s) >= 3]
    users = IdMap(u for u, _ in seqs)
    items = catalog.items
    coded = [items.lookup(s).astype(np.int32) for _, s in seqs]
    train_user = np.concatenate([np.full(len(c) - 2, i, dtype=np.int32) for i, c in enumerate(coded)])
    train_item = np.concatenate([c[:-2] for c in coded])
    train = Interactions(user=train_user, item=train_item, users=users, items=items)
    val_hist = [c[:-2] for c in coded]
    validation = RankingValidation(
        queries=[Query(user=i, history=h) for i, h in enumerate(val_hist)],
        targets=np.array([c[-2] for c in coded], dtype=np.int64), exclude=val_hist, k=10)
    test_hist = [c[:-1] for c in coded]
    return LooData(train=train, catalog=catalog, validation=validation,
                   test_queries=[Query(user=i, history=h) for i, h in enumerate(test_hist)],
                   test_targets=np.array([c[-1] for c in coded], dtype=np.int64), test_exclude=test_hist)


def evaluate(model: Transformer, queries: list[Query], targets: np.ndarray, exclude: list[np.ndarray],
             ks: tuple[int, ...] = (10, 20), batch: int = 1024) -> dict[str, float]:
    """HR@k / NDCG@k (strict: history items excluded, the target never) over all queries."""
    ranks = np.concatenate([
        target_ranks(model.score(queries[s:s + batch]), targets[s:s + batch], exclude=exclude[s:s + batch])
        for s in range(0, len(queries), batch)])
    out = {}
    for k in ks:
        hit = ranks < k
        out[f"HR@{k}"] = float(hit.mean())
        out[f"NDCG@{k}"] = float(np.where(hit, 1.0 / np.log2(ranks + 2.0), 0.0).mean())
    return out


def run(data: LooData, params: dict[str, Any], save: Path | None = None) -> dict[str, Any]:
    """Fit one config with validation early stopping, then score the test targets."""
    model = Transformer.from_dict(params)
    t0 = time.perf_counter()
    model.fit(data.train, data.catalog, validation=data.validation)
    fit_seconds = time.perf_counter() - t0
    best_epochs = model.best_epochs or [model.best_epoch]
    epochs = [e["seconds"] for e in model.training_log]
    to_best = sum(e["seconds"] + e.get("eval_seconds", 0.0) for e in model.training_log
                  if e["epoch"] <= best_epochs[e.get("member", 0)])
    final_val = data.validation.evaluate(model)  # the fitted model as used for test (ensemble, correction)
    test = evaluate(model, data.test_queries, data.test_targets, data.test_exclude)
    if save is not None and int(os.environ.get("RANK", "0")) == 0:
        model.save(save)
    config = {**config_to_dict(model.config), **config_to_dict(model.options)}  # parameters and run-time options
    return {"config": config, "best_epoch": model.best_epoch, "best_epochs": best_epochs,
            "val_NDCG@10": final_val["NDCG@10"], "val_HR@10": final_val["HR@10"],
            "popularity_correction": model.popularity_correction, "popularity_search": model.popularity_search,
            "test": test, "fit_seconds": fit_seconds, "epoch_seconds": float(np.mean(epochs)) if epochs else 0.0,
            "train_seconds_to_best_epoch": to_best, "epochs_run": len(model.training_log),
            "log": model.training_log}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=Settings.from_env().data_dir / "amazon-beauty")
    ap.add_argument("--users", type=int, default=0, help="random subset of users (0 = all)")
    ap.add_argument("--config", default="{}", help="JSON object of TransformerConfig parameters, or a .json file")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None,
                    help="also append the run to this results file (benchmarks/results/transformer_*.json)")
    ap.add_argument("--save", type=Path, default=None, help="save the fitted model (artifact directory) here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    text = Path(args.config).read_text() if args.config.endswith(".json") else args.config
    params = {"seed": args.seed, **json.loads(text)}
    data = leave_one_out(*read_beauty(args.data, args.users, args.seed))
    result = run(data, params, args.save)
    result.update({"dataset": "amazon-beauty", "users": data.train.n_users, "items": data.train.n_items,
                   "protocol": "leave-one-out, full ranking, history items excluded (strict)",
                   "threads": torch.get_num_threads(), "device": "cuda" if torch.cuda.is_available() else "cpu"})
    if int(os.environ.get("RANK", "0")) != 0:
        return
    t = result["test"]
    print(f"best epoch {result['best_epoch']}  val NDCG@10 {result['val_NDCG@10']:.4f}  "
          f"test HR@10 {t['HR@10']:.4f} NDCG@10 {t['NDCG@10']:.4f} HR@20 {t['HR@20']:.4f} NDCG@20 {t['NDCG@20']:.4f}  "
          f"fit {result['fit_seconds']:.0f}s ({result['epoch_seconds']:.1f}s/epoch, "
          f"{result['train_seconds_to_best_epoch']:.0f}s to best)", file=sys.stderr)
    if args.out:
        config = {"dataset": "amazon-beauty", "users": args.users, "seed": args.seed, "params": params}
        append_run(args.out, result, config,
                   argv=None if argv is None else ["benchmarks/transformer_beauty.py", *argv])
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
