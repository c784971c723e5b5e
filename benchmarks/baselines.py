"""Baseline table: every available model on the standard datasets, through `shoprec evaluate`'s harness.

- beauty: Amazon Beauty (S3-Rec), leave-one-out, full ranking, seen items excluded (strict);
- ml100k: MovieLens-100K, official u1..u5 folds, rating prediction (models with `predict` only);
- retail: UCI Online Retail, temporal (train before 2011-11-01, later purchases of known customers),
  full ranking, seen items excluded.

Usage:
  python benchmarks/baselines.py [--models popular,ease] [--datasets beauty,retail] [--threads 2]
                                 [--markdown] [--runs-dir DIR] [--fresh]
  python benchmarks/baselines.py --from-json --markdown   # only regenerate the docs table
  python benchmarks/baselines.py --import-runs out.json --markdown   # add `shoprec evaluate --json` runs

Prints the table to stdout (progress to stderr) and writes benchmarks/results/baselines.json; results of
earlier runs for other (dataset, model) pairs are kept unless --fresh. --markdown rewrites the generated
table in docs/benchmarks.md (between the `baselines:begin` / `baselines:end` markers).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shoprec.errors import ConfigError
from shoprec.evaluation.offline import load_dataset, run_evaluation
from shoprec.evaluation.protocols import EvalConfig
from shoprec.evaluation.report import summary, write_json
from shoprec.models.base import MODEL_NAMES, get_model_class
from shoprec.settings import Settings

from _results import append_run, is_run, latest, machine

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "baselines.json"
DOCS = ROOT / "docs" / "benchmarks.md"
BEGIN, END = "<!-- baselines:begin -->", "<!-- baselines:end -->"


@dataclass(frozen=True)
class Bench:
    key: str
    title: str
    fmt: str
    path: str  # relative to the data directory
    protocol: str
    columns: tuple[str, ...]
    rating: bool = False
    cutoff: str | None = None


BENCHES = (
    Bench("beauty", "Amazon Beauty (S3-Rec): leave-one-out, full ranking, seen items excluded",
          "s3rec", "amazon-beauty/Beauty.txt", "loo", ("HR@10", "NDCG@10", "HR@20", "NDCG@20", "MRR", "Coverage@10")),
    Bench("ml100k", "MovieLens-100K: official u1..u5 folds, rating prediction (mean over folds)",
          "movielens-100k", "ml-100k", "official-folds", ("RMSE", "MAE"), rating=True),
    Bench("retail", "Online Retail: temporal (train before 2011-11-01), full ranking, seen items excluded",
          "online-retail", "online-retail/online_retail.csv.gz", "temporal",
          ("HR@10", "Recall@10", "NDCG@10", "MAP@10", "MRR", "Coverage@10"), cutoff="2011-11-01"),
)
# Model parameters per (model, benchmark) when a model's defaults are not what the table should show.
CONFIGS: dict[tuple[str, str], dict[str, Any]] = {}


def available_models() -> list[str]:
    out = []
    for name in MODEL_NAMES:
        try:
            get_model_class(name)
        except (ImportError, KeyError, ConfigError) as exc:
            print(f"model {name}: not available ({type(exc).__name__}: {exc})", file=sys.stderr)
            continue
        out.append(name)
    return out


def is_rating_model(name: str) -> bool:
    return callable(getattr(get_model_class(name), "predict", None))


def run_bench(bench: Bench, models: list[str], data_dir: Path, runs_dir: Path | None,
              seed: int) -> list[dict[str, Any]]:
    """Evaluate each model on one benchmark; a failing model gives an error row, not a crash."""
    names = [m for m in models if is_rating_model(m)] if bench.rating else models
    if not names:
        return []
    path = data_dir / bench.path
    print(f"[{bench.key}] loading {bench.fmt}:{path}", file=sys.stderr)
    dataset = load_dataset(bench.fmt, str(path))
    cfg = EvalConfig(protocol=bench.protocol, cutoff=bench.cutoff, seed=seed)
    rows = []
    for name in names:
        print(f"[{bench.key}] {name} ...", file=sys.stderr)
        row: dict[str, Any] = {"benchmark": bench.key, "model": name, "machine": machine(),
                               "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
        try:
            doc, _ = run_evaluation(dataset, f"{bench.fmt}:{path}", name, dict(CONFIGS.get((name, bench.key), {})),
                                    cfg, progress=True)
        except Exception as exc:  # a broken model must not stop the table
            row.update(status="error", error=f"{type(exc).__name__}: {exc}")
            print(traceback.format_exc(), file=sys.stderr)
        else:
            row.update(status="ok", **{k: v for k, v in summary(doc).items() if k != "training_log"})
            if runs_dir is not None:
                write_json(doc, runs_dir / f"{bench.key}-{name}.json")
            print(f"[{bench.key}] {name}: " + ", ".join(f"{c} {_fmt(doc['metrics'].get(c))}"
                                                      for c in bench.columns), file=sys.stderr)
        rows.append(row)
    return rows


def imported_row(path: Path) -> dict[str, Any]:
    """A table row from a `shoprec evaluate --json` document: the benchmark whose format, file and protocol
    it ran (its config and timings come along; per-user values are left out)."""
    doc = json.loads(path.read_text(encoding="utf-8"))
    fmt, _, file = str(doc.get("dataset", "")).partition(":")
    for bench in BENCHES:
        if bench.fmt == fmt and file.endswith(bench.path) and doc.get("protocol") == bench.protocol:
            return {"benchmark": bench.key, "model": doc["model"], "status": "ok", "imported_from": path.name,
                    "machine": machine(), "date": dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC).isoformat(
                        timespec="seconds"), **{k: v for k, v in summary(doc).items() if k != "training_log"}}
    raise SystemExit(f"{path}: dataset {doc.get('dataset')!r} / protocol {doc.get('protocol')!r} is none of "
                     f"the benchmarks ({', '.join(b.key for b in BENCHES)})")


def merge(old: dict[str, Any] | None, new_runs: list[dict[str, Any]], fresh: bool) -> list[dict[str, Any]]:
    """New rows replace old ones for the same (benchmark, model); others are kept unless `fresh`."""
    done = {(r["benchmark"], r["model"]) for r in new_runs}
    kept = [] if fresh or old is None else [r for r in old.get("runs", []) if (r["benchmark"], r["model"]) not in done]
    order = {b.key: i for i, b in enumerate(BENCHES)}
    rank = {m: i for i, m in enumerate(MODEL_NAMES)}
    return sorted(kept + new_runs, key=lambda r: (order.get(r["benchmark"], 99), rank.get(r["model"], 99)))


def current_table(entry: dict[str, Any] | None) -> dict[str, Any] | None:
    """The table a results-file entry holds: {"updated", "machine", "threads", "note", "runs"}. A run in the
    common shape (benchmarks/_results.py) keeps the merged rows in its figures; older entries are the table."""
    if entry is None or not is_run(entry):
        return entry
    figures, config = entry["figures"], entry.get("config", {})
    return {"updated": entry["date"], "machine": figures.get("table_machine") or entry["machine"],
            "threads": config.get("threads"), "note": figures.get("note"), "runs": figures.get("runs", [])}


def save_table(path: Path, runs: list[dict[str, Any]], note: str | None, config: dict[str, Any],
               table_machine: dict[str, Any] | None = None) -> dict[str, Any]:
    """Append the merged table to the results file as one run; returns the table (`current_table`)."""
    figures: dict[str, Any] = {"runs": runs, "note": note}
    if table_machine is not None:
        figures["table_machine"] = table_machine
    return current_table(append_run(path, figures, config)) or {}


def markdown(results: dict[str, Any]) -> str:
    """The generated tables (one per benchmark) with the machine they ran on."""
    m = results.get("machine", {})
    cores = m.get("cores", m.get("cpu_count", "?"))
    lines = [f"_Generated by `python benchmarks/baselines.py --markdown` on {results.get('updated', '?')}; "
             f"machine: {m.get('cpu_model') or m.get('processor') or '?'}, {cores} CPUs "
             f"({m.get('platform', '?')}). Default model configs unless listed in the script's CONFIGS; "
             "rating benchmarks: fit s is the sum over folds._", ""]
    if results.get("note"):
        lines += [f"**Note: {results['note']}**", ""]
    for bench in BENCHES:
        runs = [r for r in results.get("runs", []) if r["benchmark"] == bench.key]
        if not runs:
            continue
        lines += [f"#### {bench.title}", "", "| model | " + " | ".join(bench.columns) + " | users | fit s | eval s |",
                  "|---" * (len(bench.columns) + 4) + "|"]
        for r in runs:
            if r["status"] != "ok":
                lines.append(f"| {r['model']} | failed: {r['error'][:80]} |" + " |" * (len(bench.columns) + 2))
                continue
            vals = " | ".join(_fmt(r["metrics"].get(c)) for c in bench.columns)
            lines.append(f"| {r['model']} | {vals} | {r['n_users_evaluated']} | {r['fit_seconds']:.1f} "
                         f"| {r['eval_seconds']:.2f} |")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def write_markdown(table: str, path: Path = DOCS) -> None:
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    block = f"{BEGIN}\n{table}{END}"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        text = text.rstrip() + "\n\n## Baseline table\n\n" + block + "\n"
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path}", file=sys.stderr)


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.4f}"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", help="comma-separated model names (default: every available model)")
    p.add_argument("--datasets", default=",".join(b.key for b in BENCHES), help="comma-separated benchmark keys")
    p.add_argument("--data-dir", type=Path, default=None, help="default: Settings.from_env().data_dir")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--runs-dir", type=Path, default=None, help="also write each run's full JSON (for compare)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="limit torch / BLAS threads")
    p.add_argument("--fresh", action="store_true", help="drop earlier results instead of merging")
    p.add_argument("--note", default=None, help="a remark printed above the tables (e.g. 'smoke run under load')")
    p.add_argument("--markdown", action="store_true", help="rewrite the table in docs/benchmarks.md")
    p.add_argument("--from-json", action="store_true", help="do not run anything; use the existing results")
    p.add_argument("--import-runs", nargs="+", type=Path, default=None, metavar="JSON",
                   help="add `shoprec evaluate --json` results as rows (their dataset and protocol pick the table) "
                        "instead of running those models here")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    old = current_table(latest(args.out))
    if args.import_runs:
        runs = [imported_row(path) for path in args.import_runs]
        results = save_table(args.out, merge(old, runs, False), (old or {}).get("note"),
                             {"threads": (old or {}).get("threads"), "imported": [p.name for p in args.import_runs]},
                             table_machine=(old or {}).get("machine"))
    elif args.from_json:
        if old is None:
            raise SystemExit(f"{args.out} does not exist; run the benchmark first")
        results = old if args.note is None else {**old, "note": args.note}
    else:
        if args.threads:
            _limit_threads(args.threads)
        keys = args.datasets.split(",")
        unknown = set(keys) - {b.key for b in BENCHES}
        if unknown:
            raise SystemExit(f"unknown benchmark {sorted(unknown)[0]!r} (valid: {', '.join(b.key for b in BENCHES)})")
        models = args.models.split(",") if args.models else available_models()
        data_dir = args.data_dir or Settings.from_env().data_dir
        runs = [r for b in BENCHES if b.key in keys for r in run_bench(b, models, data_dir, args.runs_dir, args.seed)]
        results = save_table(args.out, merge(old, runs, args.fresh), args.note,
                             {"threads": args.threads, "datasets": keys, "models": models, "seed": args.seed,
                              "fresh": args.fresh})
    table = markdown(results)
    print(table)
    if args.markdown:
        write_markdown(table)


def _limit_threads(n: int) -> None:
    from threadpoolctl import threadpool_limits

    threadpool_limits(n)
    try:
        import torch

        torch.set_num_threads(n)
    except ImportError:
        pass


if __name__ == "__main__":
    main()
