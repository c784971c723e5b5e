"""What item text adds to the transformer on real shops: Beauty (S3-Rec + item text) and Amazon Scientific.

Strict leave-one-out (`--protocol loo`: last item test, second-to-last validation, seen items excluded), full
ranking, through the same path as `shoprec evaluate`. Rows: the default transformer with item text, the
same without (`{"use_text": false}`), EASE, item-kNN and popularity, each with its default config.

    python benchmarks/large_model_text.py --datasets scientific --rows all
    python benchmarks/large_model_text.py --datasets beauty --rows transformer       # one row at a time
    python benchmarks/large_model_text.py --rows transformer --label t-x --config '{"text_whiten": false}'
    python benchmarks/large_model_text.py --table                                    # redraw from the JSON

Each row is appended to benchmarks/results/large_model_text.json as soon as it is measured (one run per row:
dataset, row label, model, config, test metrics, validation NDCG@10 / HR@10 - what settings are chosen on -,
best epochs, fit seconds, the machine's load average); the table shows the newest run of every
(dataset, row). Choose settings on the `val` columns only.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from _results import RESULTS_DIR, append_run, is_run, load_runs

DATASETS = {"beauty": ("s3rec", "amazon-beauty/Beauty.txt"), "scientific": ("amazon-json", "amazon-scientific")}
ROWS: dict[str, tuple[str, dict[str, Any]]] = {
    "transformer": ("transformer", {}),
    "transformer-no-text": ("transformer", {"use_text": False}),
    "ease": ("ease", {}),
    "itemknn": ("itemknn", {}),
    "popular": ("popular", {}),
}
RESULTS = RESULTS_DIR / "large_model_text.json"
METRICS = ("HR@10", "NDCG@10", "HR@20", "NDCG@20")


def validation_figures(model: Any, log: list[dict[str, Any]]) -> dict[str, Any]:
    """Validation figures of a fitted model: the ensemble's best NDCG@10 over the popularity-correction grid
    (what the transformer selects on), the text-affinity search where it made one, and per member the best
    val_NDCG@10 / val_HR@10 of its training log."""
    out: dict[str, Any] = {}
    search = getattr(model, "popularity_search", None) or {}
    if search:
        out["val_NDCG@10"] = max(search.values())
        out["popularity_correction"] = getattr(model, "popularity_correction", None)
    affinity = getattr(model, "text_affinity_search", None) or {}
    if affinity:  # text_affinity chosen on validation (before the popularity correction, which is 0 here)
        out["text_affinity_search"] = affinity
        out["text_affinity"] = getattr(model, "text_affinity", None)
    transition = getattr(model, "transition_affinity_search", None) or {}
    if transition:  # transition_affinity chosen on validation (with the text affinity)
        out["transition_affinity_search"] = transition
        out["transition_affinity"] = getattr(model, "transition_affinity", None)
    members: dict[int, dict[str, Any]] = {}
    for entry in log:
        if "val_NDCG@10" in entry:
            best = members.setdefault(int(entry.get("member", 0)), {"val_NDCG@10": -1.0})
            if entry["val_NDCG@10"] > best["val_NDCG@10"]:
                best.update({"val_NDCG@10": entry["val_NDCG@10"], "val_HR@10": entry.get("val_HR@10"),
                             "epoch": entry.get("epoch")})
    if members:
        out["members"] = [members[k] for k in sorted(members)]
    if hasattr(model, "best_epochs"):
        out["best_epochs"] = list(model.best_epochs)
    return out


def run_row(dataset: str, row: str, model_name: str, params: dict[str, Any], seed: int, data_dir: Path
            ) -> dict[str, Any]:
    from shoprec.datasets import load
    from shoprec.evaluation.offline import run_evaluation
    from shoprec.evaluation.protocols import EvalConfig

    fmt, rel = DATASETS[dataset]
    data = load(fmt, data_dir / rel)
    cfg = EvalConfig(protocol="loo", ks=(10, 20), exclude_seen=True, seed=seed)
    load_before = os.getloadavg()[0]
    doc, model = run_evaluation(data, f"{fmt}:{data_dir / rel}", model_name, params, cfg, progress=False)
    return {"dataset": dataset, "row": row, "model": model_name, "params": params, "seed": seed,
            "users": doc["n_users_evaluated"], **{m: doc["metrics"][m] for m in METRICS},
            "validation": validation_figures(model, doc.get("training_log") or []),
            "fit_seconds": doc["fit_seconds"], "eval_seconds": doc["eval_seconds"],
            "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)]}


def imported_row(path: Path, dataset: str, row: str) -> dict[str, Any]:
    """A row from a `shoprec evaluate --protocol loo --json OUT` document (validation from its training log)."""
    doc = json.loads(path.read_text(encoding="utf-8"))
    if doc.get("protocol") != "loo" or not doc.get("settings", {}).get("exclude_seen", True):
        raise SystemExit(f"{path}: not a strict leave-one-out run")
    members = validation_figures(None, doc.get("training_log") or [])
    return {"dataset": dataset, "row": row, "model": doc["model"], "params": doc.get("config", {}),
            "seed": doc.get("settings", {}).get("seed"), "users": doc["n_users_evaluated"],
            **{m: doc["metrics"][m] for m in METRICS}, "validation": members,
            "fit_seconds": doc["fit_seconds"], "eval_seconds": doc["eval_seconds"], "load_average": [None, None],
            "imported": str(path)}


def table(runs: list[dict[str, Any]]) -> str:
    """Markdown table of the newest run of every (dataset, row), datasets in DATASETS order."""
    newest: dict[tuple[str, str], dict[str, Any]] = {}
    for run in runs:
        if is_run(run) and "row" in run["figures"]:
            fig = run["figures"]
            newest[(fig["dataset"], fig["row"])] = {**fig, "_date": run["date"], "_commit": run.get("commit")}
    lines = ["| dataset | row | HR@10 | NDCG@10 | HR@20 | NDCG@20 | val NDCG@10 | best epochs | fit s | load | date |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    order = list(DATASETS)
    for (ds, row), f in sorted(newest.items(), key=lambda kv: (order.index(kv[0][0]) if kv[0][0] in order else 9,
                                                              -kv[1]["NDCG@10"])):
        val = f["validation"].get("val_NDCG@10")
        if val is None and f["validation"].get("members"):  # imported runs: the mean of the members' best
            val = sum(m["val_NDCG@10"] for m in f["validation"]["members"]) / len(f["validation"]["members"])
        load = "?" if f["load_average"][0] is None else f"{f['load_average'][0]:.1f}-{f['load_average'][1]:.1f}"
        lines.append(f"| {ds} | {row} | {f['HR@10']:.4f} | {f['NDCG@10']:.4f} | {f['HR@20']:.4f} | "
                     f"{f['NDCG@20']:.4f} | {'' if val is None else f'{val:.4f}'} | "
                     f"{f['validation'].get('best_epochs', '')} | {f['fit_seconds']:.0f} | "
                     f"{load} | {f['_date'][:16]} |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", default="scientific,beauty", help="comma-separated: " + ", ".join(DATASETS))
    p.add_argument("--rows", default="all", help="comma-separated: all, " + ", ".join(ROWS))
    p.add_argument("--config", default=None, help="JSON merged into the transformer rows' config (a variant)")
    p.add_argument("--label", default=None, help="row label for a variant (default: the row's name)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", type=Path, default=Path(__file__).resolve().parents[1] / ".." / "shared" / "data")
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.add_argument("--table", action="store_true", help="only print the table from the results file")
    p.add_argument("--import-evaluate", type=Path, default=None, metavar="JSON",
                   help="record a `shoprec evaluate --json` run as row --label of --datasets (one dataset)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,  # one line per training epoch on stderr
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if args.import_evaluate is not None:
        figures = imported_row(args.import_evaluate, args.datasets, args.label or args.rows)
        append_run(RESULTS, figures, {"dataset": args.datasets, "row": figures["row"]}, argv=sys.argv)
    elif not args.table:
        import torch

        torch.set_num_threads(args.threads)
        rows = list(ROWS) if args.rows == "all" else args.rows.split(",")
        extra = json.loads(args.config) if args.config else {}
        for dataset in args.datasets.split(","):
            for row in rows:
                model_name, params = ROWS[row]
                params = {**params, **extra} if model_name == "transformer" else params
                label = args.label or row
                figures = run_row(dataset, label, model_name, params, args.seed, args.data_dir)
                append_run(RESULTS, figures, {"dataset": dataset, "row": label, "params": params}, argv=sys.argv)
                print(f"{dataset} {label}: NDCG@10 {figures['NDCG@10']:.4f} HR@10 {figures['HR@10']:.4f} "
                      f"val {figures['validation'].get('val_NDCG@10')}", file=sys.stderr, flush=True)
    print(table(load_runs(RESULTS)))


if __name__ == "__main__":
    main()
