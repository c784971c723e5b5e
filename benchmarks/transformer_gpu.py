"""One prepared GPU run: train a list of transformer configs on Amazon Beauty and report each.

Protocol as benchmarks/transformer_beauty.py (strict leave-one-out, full ranking, early stopping on
validation NDCG@10 only; test metrics are computed once, after training). Every config trains on the
GPU (bf16 autocast) until early stopping or its time limit; the whole run stays inside
--total-seconds (configs that no longer fit are skipped and listed as such).

The model is small, so one config leaves most of an H100 idle: configs marked "solo" run first, one
at a time (their epoch times are the clean speed figures), then the others run --parallel at a time
in separate processes sharing the GPU (their timings are marked parallel and are not speed figures).
Results go to <out>/results.json (one run appended in benchmarks/_results.py's shape, updated as configs
finish, so a killed run keeps what finished) and a table on stderr.

    python benchmarks/transformer_gpu.py --data /path/to/amazon-beauty --out results/gpu \\
        [--configs grid.json] [--total-seconds 360] [--config-seconds 120] [--parallel 4]

--configs: a JSON list of {"name": ..., "params": {TransformerConfig overrides}, "solo": bool};
default: GRID below.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import os
import platform
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from transformer_beauty import LooData, leave_one_out, read_beauty, run

from _results import append_run

# Each entry changes one thing from "default" unless its name says otherwise.
GRID: list[dict[str, Any]] = [
    {"name": "default", "params": {}, "solo": True},
    {"name": "plain-sasrec", "params": {  # the ANCHORS plain SASRec row: ids only, CE, dropout 0.5
        "use_attributes": False, "exclude_seen_in_loss": False, "id_dropout": 0.0, "ffn_size": 64,
        "n_heads": 1, "attention_dropout": 0.5, "learning_rate": 1e-3, "warmup_epochs": 0.0,
        "min_lr_ratio": 1.0, "epochs": 200, "patience": 5}},
    {"name": "rotary", "params": {"positions": "rotary"}},
    {"name": "no-attributes", "params": {"use_attributes": False}},
    {"name": "no-seen-mask", "params": {"exclude_seen_in_loss": False}},
    {"name": "content-attention", "params": {"content_attention": True}},
    {"name": "attribute-loss-0.5", "params": {"attribute_loss": 0.5}},
    {"name": "ema-0.999", "params": {"ema": 0.999}},
    {"name": "label-smoothing-0.1", "params": {"label_smoothing": 0.1}},
    {"name": "epochs-30", "params": {"epochs": 30}},
    {"name": "no-id-dropout", "params": {"id_dropout": 0.0}},
    {"name": "weight-decay-0.05", "params": {"weight_decay": 0.05}},
    {"name": "all-of-rotary-ca-al-ema", "params": {"positions": "rotary", "content_attention": True,
                                                   "attribute_loss": 0.5, "ema": 0.999}},
    {"name": "default-seed-1", "params": {"seed": 1}},
    {"name": "d128", "params": {"embedding_size": 128, "ffn_size": 512}},
    {"name": "3-blocks-drop-path", "params": {"n_blocks": 3, "stochastic_depth": 0.1}},
]
RESERVE_SECONDS = 30.0  # test scoring and the last validation after a config's time limit

_DATA: LooData | None = None  # per worker process


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True,
                    help="directory with Beauty.txt and Beauty_item2attributes.json")
    ap.add_argument("--out", type=Path, required=True, help="output directory (results.json)")
    ap.add_argument("--configs", type=Path, default=None, help="JSON list of {name, params, solo}; default: GRID")
    ap.add_argument("--total-seconds", type=float, default=360.0, help="budget for the whole run")
    ap.add_argument("--config-seconds", type=float, default=120.0, help="training-time limit per config")
    ap.add_argument("--parallel", type=int, default=4, help="configs sharing the GPU at a time after the solo ones")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--users", type=int, default=0, help="random subset of users, for a smoke test (0 = all)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(asctime)s %(message)s")
    deadline = time.time() + args.total_seconds
    grid = json.loads(args.configs.read_text()) if args.configs else GRID
    cuda = args.device.startswith("cuda") and torch.cuda.is_available()
    card = torch.cuda.get_device_name() if cuda else platform.processor() or "cpu"
    args.out.mkdir(parents=True, exist_ok=True)
    results: list[dict[str, Any]] = []
    setup = (str(args.data), args.users, args.device)
    _load(*setup)
    written = False

    def save() -> None:  # the first save appends this run to results.json, later ones update it
        nonlocal written
        _write(args.out, results, card, args, first=not written)
        written = True

    for entry in (e for e in grid if e.get("solo")):
        results.append(_run_one(entry, deadline, args.config_seconds, parallel=1))
        save()
    rest = [e for e in grid if not e.get("solo")]
    if rest:
        ctx = mp.get_context("spawn")  # CUDA in child processes needs spawn
        with ProcessPoolExecutor(max_workers=args.parallel, mp_context=ctx, initializer=_load,
                                 initargs=(*setup, args.parallel)) as pool:
            pending: set[Future[dict[str, Any]]] = {
                pool.submit(_run_one, e, deadline, args.config_seconds, args.parallel) for e in rest}
            while pending:
                done, pending = wait(pending, timeout=max(deadline - time.time() + 60, 1), return_when=FIRST_COMPLETED)
                if not done:  # a worker hangs past the deadline: keep what finished
                    results += [{"name": "?", "error": "did not finish before the deadline"} for _ in pending]
                    break
                for fut in done:
                    results.append(_safe_result(fut))
                    save()
    save()
    _table(results)


def _load(data: str, users: int, device: str, parallel: int = 1) -> None:
    """Read the dataset once per process; share the CPU cores between parallel workers."""
    global _DATA
    if parallel > 1:
        torch.set_num_threads(max(1, (os.cpu_count() or 2) // parallel))
    _DATA = leave_one_out(*read_beauty(Path(data), users))
    os.environ["SHOPREC_GPU_BENCH_DEVICE"] = device


def _run_one(entry: dict[str, Any], deadline: float, config_seconds: float, parallel: int) -> dict[str, Any]:
    """Train and test one config inside what is left of the budget."""
    assert _DATA is not None
    name = entry["name"]
    left = deadline - time.time()
    if left < RESERVE_SECONDS + 15:
        return {"name": name, "skipped": f"no time left ({left:.0f} s)"}
    device = os.environ["SHOPREC_GPU_BENCH_DEVICE"]
    params = {"device": device, "progress": False, **entry.get("params", {}),
              "max_seconds": min(config_seconds, left - RESERVE_SECONDS)}
    cuda = device.startswith("cuda") and torch.cuda.is_available()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    try:
        res = run(_DATA, params)
    except Exception as exc:  # one failing config must not lose the others
        return {"name": name, "error": f"{type(exc).__name__}: {exc}"}
    res.update({
        "name": name, "parallel": parallel, "card": torch.cuda.get_device_name() if cuda else "cpu",
        "peak_gpu_memory_gb": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
        "time_to_best_epoch_seconds": res["train_seconds_to_best_epoch"],
        "stopped_by_time_limit": sum(e["seconds"] + e.get("eval_seconds", 0.0) for e in res["log"])
        >= res["config"]["max_seconds"]})
    return res


def _safe_result(fut: Future[dict[str, Any]]) -> dict[str, Any]:
    try:
        return fut.result()
    except Exception as exc:  # a crashed worker process
        return {"name": "?", "error": f"{type(exc).__name__}: {exc}"}


def _write(out: Path, results: list[dict[str, Any]], card: str, args: argparse.Namespace, first: bool) -> None:
    """Append this run to <out>/results.json (`first`), else update the entry it appended before."""
    config = {"card": card, "parallel": args.parallel, "total_seconds_budget": args.total_seconds,
              "config_seconds": args.config_seconds, "users": args.users, "device": args.device,
              "protocol": "Beauty leave-one-out, full ranking over 12,101 items, history items excluded (strict); "
                          "best epoch chosen on validation NDCG@10, test scored once"}
    append_run(out / "results.json", {"results": results}, config, replace_last=not first)


def _table(results: list[dict[str, Any]]) -> None:
    head = (f"{'config':<26} {'val N@10':>8} {'N@10':>7} {'HR@10':>7} {'N@20':>7} {'HR@20':>7} "
            f"{'best ep':>7} {'s/epoch':>7} {'to best s':>9} {'GPU GB':>6} par")
    print(head, file=sys.stderr)
    for r in results:
        if "test" not in r:
            print(f"{r['name']:<26} {r.get('skipped') or r.get('error')}", file=sys.stderr)
            continue
        t = r["test"]
        mem = r["peak_gpu_memory_gb"]
        print(f"{r['name']:<26} {r['val_NDCG@10'] or 0:8.4f} {t['NDCG@10']:7.4f} {t['HR@10']:7.4f} "
              f"{t['NDCG@20']:7.4f} {t['HR@20']:7.4f} {r['best_epoch']:7d} {r['epoch_seconds']:7.2f} "
              f"{r['time_to_best_epoch_seconds']:9.1f} {mem if mem is not None else float('nan'):6.2f} "
              f"{r['parallel']:3d}{' time-limit' if r['stopped_by_time_limit'] else ''}", file=sys.stderr)


if __name__ == "__main__":
    main()
