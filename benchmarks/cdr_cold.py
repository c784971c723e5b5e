"""Cross-domain cold start (issue 7): popularity, target-only ALS, joint ALS, joint item-kNN and `cross`
on a CDRIB pair, both directions, through the `cdr-cold` protocol of `shoprec evaluate`.

Every model ranks ALL target-domain items for the target domain's test users, who have no target-domain
training events, from their other-domain history (see src/shoprec/evaluation/cdr.py). Joint models train on
both domains' train files; target-only ones on the target domain's alone (cold users then get popularity).

Usage:
  python benchmarks/cdr_cold.py [--data ../shared/data/cdrib-game-video] [--models popular,als-target,...]
                                [--split test|valid] [--out benchmarks/results/cdr_cold.json]

Prints a table (per-user NDCG@10 / Recall@10, HR@10 over test pairs, fit seconds) and writes the JSON.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from shoprec.evaluation.cdr import domain_pairs
from shoprec.evaluation.offline import load_dataset, run_evaluation
from shoprec.evaluation.protocols import EvalConfig

from _results import RESULTS_DIR, append_run

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "cdrib-game-video"
DEFAULT_OUT = RESULTS_DIR / "cdr_cold.json"
JOINT_ALS = {"embedding_size": 128, "regularization": 1.0, "alpha": 10.0, "epochs": 15, "history_decay": 1.0}
# name -> (model, params, training): the joint ALS setting (implicit, 128 factors, reg 1, alpha 10)
RUNS: dict[str, tuple[str, dict[str, Any], str]] = {
    "popular": ("popular", {}, "target-only"),
    "als-target": ("als", JOINT_ALS, "target-only"),
    "als-joint": ("als", JOINT_ALS, "joint"),
    "itemknn-joint": ("itemknn", {"history_decay": 1.0}, "joint"),
    "cross": ("cross", {}, "joint"),
}
COLUMNS = ("NDCG@10", "Recall@10", "HR@10_pairs", "NDCG@20", "Recall@20")


def run(data: Path, names: list[str], split: str) -> list[dict[str, Any]]:
    dataset = load_dataset("cdrib", str(data))
    rows = []
    for target in domain_pairs(dataset.domains):
        for name in names:
            model, params, training = RUNS[name]
            cfg = EvalConfig(protocol="cdr-cold", target=target, training=training, split=split, ks=(10, 20))
            t0 = time.perf_counter()
            doc, _ = run_evaluation(dataset, f"cdrib:{data}", model, params, cfg)
            row = {"target": target, "run": name, "model": model, "training": training, "config": doc["config"],
                   "n_users": doc["n_users_evaluated"], "fit_seconds": doc["fit_seconds"],
                   "seconds": round(time.perf_counter() - t0, 2), "notes": doc["notes"],
                   **{c: doc["metrics"][c] for c in COLUMNS}}
            print(f"  {target} {name}: NDCG@10 {row['NDCG@10']:.4f}", file=sys.stderr, flush=True)
            rows.append(row)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    head = "| target | model | training | users | " + " | ".join(COLUMNS) + " | fit s |"
    lines = [head, "|" + "---|" * (len(COLUMNS) + 5)]
    for r in rows:
        vals = " | ".join(f"{r[c]:.4f}" for c in COLUMNS)
        lines.append(f"| {r['target']} | {r['run']} | {r['training']} | {r['n_users']} | {vals} | "
                     f"{r['fit_seconds']:.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="CDRIB pair directory")
    parser.add_argument("--models", default=",".join(RUNS), help=f"comma-separated, from {', '.join(RUNS)}")
    parser.add_argument("--split", default="test", choices=("test", "valid"), help="users evaluated")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON output")
    args = parser.parse_args()
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    unknown = [n for n in names if n not in RUNS]
    if unknown:
        parser.error(f"unknown model run {unknown[0]!r} (valid: {', '.join(RUNS)})")
    load_before = os.getloadavg()
    rows = run(args.data, names, args.split)
    print(table(rows))
    append_run(args.out, {"rows": rows, "load_average_before": load_before, "load_average_after": os.getloadavg()},
               {"benchmark": "cdr_cold", "data": str(args.data), "split": args.split, "models": names})


if __name__ == "__main__":
    main()
