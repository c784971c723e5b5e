"""Pre-trained across shops, carried over to a new one (issue 22): a transformer pre-trained on a SOURCE shop
(`shoprec pretrain`) evaluated on a TARGET shop it never saw, zero-shot (`evaluate --init-from DIR
--zero-shot`: nothing trained on the target, items scored through their text) and fine-tuned (`--init-from
DIR`), against the same transformer trained from scratch on the target, with popularity, item-kNN and EASE
trained on the target beside them. The target keeps 100%, 20% or 5% of its users (sampled with --seed: the
small-shop case). Protocol: strict leave-one-out of `shoprec evaluate --protocol loo` (last event test,
second-to-last validation for early stopping, full ranking, seen items excluded).

    python benchmarks/pretrain_transfer.py \
        --source s3rec:../shared/data/amazon-beauty/Beauty.txt \
        --target amazon-json:../shared/data/amazon-scientific --fractions 1,0.2,0.05

The pre-trained model is written to --workdir (reused when it is there: --pretrained DIR). Each row is
printed when done; the run's entry in benchmarks/results/pretrain_transfer.json is written after every row (so a
long run keeps what it measured) and marked complete at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from shoprec.data import Interactions
from shoprec.evaluation import EvalConfig, run_protocol
from shoprec.evaluation.offline import load_dataset
from shoprec.models.factory import ModelFactory
from shoprec.models.transformer.pretrain import Shop, save_pretrained, shop_names
from shoprec.service.pretrain import pretrain_shops
from shoprec.service.transfer import check_inherited, pretrained_source

from _results import RESULTS_DIR, append_run

RESULTS = RESULTS_DIR / "pretrain_transfer.json"
# the transformer runs on the target (scratch and fine-tuned alike): one member, validation every epoch so the
# best epoch is exact; everything else is the default configuration
TARGET_PARAMS: dict[str, Any] = {"ensemble": 1, "eval_every": 1, "patience": 3, "progress": False}
BASELINES = ("popular", "itemknn", "ease")


def subsample(data: Interactions, fraction: float, seed: int) -> Interactions:
    """The events of `fraction` of the users (sampled with `seed`); all of them at 1."""
    if fraction >= 1:
        return data
    users = np.unique(data.user)
    keep = np.random.default_rng(seed).choice(users, max(2, round(len(users) * fraction)), replace=False)
    return data.subset(np.isin(data.user, keep))


def row(name: str, fraction: float, result: Any, started: float) -> dict[str, Any]:
    model = result.model
    log = [e for e in result.training_log if not e.get("member")]
    val = [e["val_NDCG@10"] for e in log if "val_NDCG@10" in e]
    return {"model": name, "users": fraction, "NDCG@10": round(result.metrics["NDCG@10"], 4),
            "val_NDCG@10": round(max(val), 4) if val else None,
            "HR@10": round(result.metrics["HR@10"], 4), "NDCG@20": round(result.metrics["NDCG@20"], 4),
            "best_epoch": getattr(model, "best_epoch", None), "epochs_run": len(log),
            "text_affinity": getattr(model, "text_affinity", None),
            "text_affinity_search": getattr(model, "text_affinity_search", None) or None,  # validation NDCG by weight
            # fine-tuned: the validation NDCG of the fine-tuned model and of its start, and which one the fit kept
            "start_validation": getattr(model, "initialised_from", {}).get("validation"),
            "n_users_evaluated": result.n_users_evaluated, "fit_seconds": round(result.fit_seconds, 1),
            "wall_seconds": round(time.perf_counter() - started, 1)}


def pretrained_dir(args: argparse.Namespace, params: dict[str, Any]) -> tuple[Path, dict[str, Any]]:
    """The pre-trained model: --pretrained DIR as it is, else pre-trained on the sources into --workdir."""
    if args.pretrained:
        return Path(args.pretrained), json.loads((Path(args.pretrained) / "pretrain.json").read_text())
    pairs = [s.split(":", 1) for s in args.source]
    names = shop_names([p for _, p in pairs])
    shops = [Shop(n, (d := load_dataset(f, p)).interactions, d.catalog) for n, (f, p) in zip(names, pairs, strict=True)]
    result = pretrain_shops(shops, params, seed=args.seed, progress=print, sources={"data": args.source})
    out = Path(args.workdir) / "pretrained"
    save_pretrained(result.model, out, result.facts)
    return out, result.facts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", action="append", default=[], help="FORMAT:PATH of a pre-training shop (repeat)")
    parser.add_argument("--target", required=True, help="FORMAT:PATH of the target shop")
    parser.add_argument("--fractions", default="1,0.2,0.05", help="shares of the target's users, comma-separated")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=1,
                        help="samples of users (seeds seed, seed + 1, ...) for each share below 1: a 5%% sample "
                             "is a few hundred test users, too few for one run to tell models apart")
    parser.add_argument("--workdir", default="/tmp/pretrain_transfer")
    parser.add_argument("--pretrained", default=None, help="a pre-trained directory to reuse (skips pre-training)")
    parser.add_argument("--pretrain-params", default="{}", help="JSON: pre-training parameters")
    parser.add_argument("--params", default="{}", help="JSON: overrides of TARGET_PARAMS for the target's runs")
    parser.add_argument("--models", default="zero-shot,fine-tuned,scratch," + ",".join(BASELINES))
    args = parser.parse_args()
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    wanted = args.models.split(",")
    started = time.perf_counter()
    source_dir, facts = pretrained_dir(args, json.loads(args.pretrain_params))
    print(f"pre-trained: {facts.get('shops')} best epoch {facts.get('best_epoch')} "
          f"val NDCG@10 {facts.get('val_NDCG@10')} in {facts.get('fit_seconds')} s", flush=True)
    source = pretrained_source(str(source_dir))
    fmt, path = args.target.split(":", 1)
    target = load_dataset(fmt, path)
    base = check_inherited(source, {**TARGET_PARAMS, **json.loads(args.params)})  # --params' seed, if any, wins

    def makers(seed: int) -> dict[str, ModelFactory]:
        params = {"seed": seed, **base}
        return {"zero-shot": ModelFactory("transformer", params, start=source.start(zero_shot=True)),
                "fine-tuned": ModelFactory("transformer", params, start=source.start()),
                "scratch": ModelFactory("transformer", params),
                **{b: ModelFactory(b, seed=seed) for b in BASELINES}}

    rows: list[dict[str, Any]] = []
    saved = [False]

    def save(rows: list[dict[str, Any]], partial: bool) -> None:
        total = round(time.perf_counter() - started, 1)
        append_run(RESULTS, {"rows": rows, "summary": summary(rows), "pretrain": facts, "total_seconds": total,
                             "complete": not partial,
                             "load_average_at_end": [round(x, 2) for x in os.getloadavg()]},
                   {"benchmark": "pretrain_transfer", "args": vars(args), "target_params": {"seed": args.seed, **base}},
                   replace_last=saved[0])
        saved[0] = True

    print(f"{'users':>6} {'seed':>4} {'model':<11} {'NDCG@10':>8} {'HR@10':>7} {'val':>7} {'best ep':>7} "
          f"{'epochs':>6} {'fit s':>7}", flush=True)
    for fraction in [float(f) for f in args.fractions.split(",")]:
        for seed in range(args.seed, args.seed + (args.repeats if fraction < 1 else 1)):
            data = subsample(target.interactions, fraction, seed)  # another sample of users per seed
            made = makers(seed)
            for name in [m for m in made if m in wanted]:
                t0 = time.perf_counter()
                result = run_protocol(data, target.catalog, made[name], EvalConfig(protocol="loo", seed=seed))
                rows.append({**row(name, fraction, result, t0), "seed": seed})
                r = rows[-1]
                print(f"{fraction:>6.0%} {seed:>4} {name:<11} {r['NDCG@10']:>8.4f} {r['HR@10']:>7.4f} "
                      f"{r['val_NDCG@10'] or '':>7} {r['best_epoch'] or '':>7} {r['epochs_run'] or '':>6} "
                      f"{r['fit_seconds']:>7.1f}", flush=True)
                save(rows, partial=True)  # the rows so far, replaced as each row comes (a long run keeps its part)
    save(rows, partial=False)
    print_summary(summary(rows))
    print(f"\ntotal {round(time.perf_counter() - started, 1)} s")


def summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per share of users and model over its seeds (user samples): mean and standard error of test NDCG@10, mean
    validation NDCG@10 and best epoch; and, for the fine-tuned model, the ratio to scratch of the means."""
    out = []
    keys = dict.fromkeys((r["users"], r["model"]) for r in rows)
    for users, model in keys:
        mine = [r for r in rows if (r["users"], r["model"]) == (users, model)]
        ndcg = np.array([r["NDCG@10"] for r in mine])
        vals = [r["val_NDCG@10"] for r in mine if r.get("val_NDCG@10") is not None]
        epochs = [r["best_epoch"] for r in mine if r.get("best_epoch")]
        out.append({"users": users, "model": model, "seeds": len(mine), "NDCG@10": round(float(ndcg.mean()), 4),
                    "NDCG@10_se": round(float(ndcg.std(ddof=1) / np.sqrt(len(ndcg))), 4) if len(ndcg) > 1 else None,
                    "HR@10": round(float(np.mean([r["HR@10"] for r in mine])), 4),
                    "val_NDCG@10": round(float(np.mean(vals)), 4) if vals else None,
                    "best_epoch": round(float(np.mean(epochs)), 1) if epochs else None})
    means = {(s["users"], s["model"]): s for s in out}
    for s in out:
        base = means.get((s["users"], "scratch"))
        if s["model"] != "scratch" and base and base["NDCG@10"]:
            s["vs_scratch"] = round(s["NDCG@10"] / base["NDCG@10"], 3)
            if s["val_NDCG@10"] and base["val_NDCG@10"]:
                s["val_vs_scratch"] = round(s["val_NDCG@10"] / base["val_NDCG@10"], 3)
    return out


def print_summary(rows: list[dict[str, Any]]) -> None:
    print(f"\n{'users':>6} {'model':<11} {'seeds':>5} {'NDCG@10':>8} {'+-se':>7} {'HR@10':>7} {'val':>7} "
          f"{'best ep':>7} {'x scratch':>9}")
    for s in rows:
        print(f"{s['users']:>6.0%} {s['model']:<11} {s['seeds']:>5} {s['NDCG@10']:>8.4f} {s['NDCG@10_se'] or '':>7} "
              f"{s['HR@10']:>7.4f} {s['val_NDCG@10'] or '':>7} {s['best_epoch'] or '':>7} "
              f"{s.get('vs_scratch', ''):>9}")


if __name__ == "__main__":
    main()
