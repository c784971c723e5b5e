"""The transformer on a large synthetic shop (issue 22, Scale): epoch time and peak memory of training with the
sampled softmax (log-uniform negatives with the logQ correction) as events and the catalog grow.

Each size runs in a fresh process (its peak RSS is its own): a synthetic shop of N events by N / 20 users over
M items (Zipf popularity, users walking within taste clusters), built directly as `Interactions` (the arrays a
snapshot gives), then `Transformer.fit` for `--epochs` epochs without validation. Reported: the time to build
the training arrays (sequences, windows) as part of the fit, seconds per epoch, events per second, peak RSS.

    python benchmarks/transformer_scale.py                                   # 1M and 3M events, 1M items
    python benchmarks/transformer_scale.py --events 1000000,10000000 --items 1000000

Another checkout's code (e.g. main's, to measure before / after a change) runs with its src on PYTHONPATH;
`--label` names the run, and the source it ran is recorded (its directory and git commit):

    PYTHONPATH=/path/to/other/checkout/src python benchmarks/transformer_scale.py --label before

Besides wall seconds per epoch the CPU seconds of the process are reported (on a shared machine the wall time
grows with the load, the CPU time much less) and the load average before and after each size.
Prints a table and appends the run to benchmarks/results/transformer_scale.json. Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from _results import RESULTS_DIR, append_run, git_commit

OUT = RESULTS_DIR / "transformer_scale.json"
PARAMS = {"loss": "sampled", "ensemble": 1, "use_text": False, "use_attributes": False, "progress": False}


def synthetic_shop(n_events: int, n_items: int, seed: int = 0) -> Any:
    """Interactions of n_events by n_events // 20 users over n_items: each user walks within one of 1,000
    taste clusters (items i with i % 1000 == cluster), Zipf-popular inside it, at increasing timestamps."""
    from shoprec.data import IdMap, Interactions

    rng = np.random.default_rng(seed)
    n_users = max(1, n_events // 20)
    user = np.sort(rng.integers(0, n_users, n_events)).astype(np.int32)
    clusters = min(1000, n_items)
    taste = rng.integers(0, clusters, n_users)
    per_cluster = max(1, n_items // clusters)
    rank = np.minimum(rng.zipf(1.3, n_events) - 1, per_cluster - 1)
    item = (taste[user] + clusters * rank).astype(np.int64)
    item = np.where(item < n_items, item, taste[user]).astype(np.int32)
    timestamp = (1_600_000_000 + np.arange(n_events, dtype=np.int64))
    users = IdMap(f"u{i}" for i in range(n_users))
    items = IdMap(f"i{i}" for i in range(n_items))
    return Interactions(user=user, item=item, users=users, items=items, timestamp=timestamp)


def one_size(n_events: int, n_items: int, epochs: int, threads: int) -> dict[str, Any]:
    """Runs in its own process: build the shop, fit, report."""
    import torch

    from shoprec.models.transformer import Transformer

    if threads:
        torch.set_num_threads(threads)
    t0 = time.perf_counter()
    data = synthetic_shop(n_events, n_items)
    generate_s = time.perf_counter() - t0
    model = Transformer.from_dict({**PARAMS, "epochs": epochs})
    t1 = time.perf_counter()
    model.fit(data, None)
    fit_s = time.perf_counter() - t1
    epoch_s = [float(e["seconds"]) for e in model.training_log]
    epoch_cpu_s = [float(e["cpu_seconds"]) for e in model.training_log]
    return {"events": n_events, "items": n_items, "users": len(data.users), "epochs": len(epoch_s),
            "generate_s": round(generate_s, 2), "fit_s": round(fit_s, 1),
            "epoch_s_median": round(float(np.median(epoch_s)), 1) if epoch_s else None,
            "epoch_cpu_s_median": round(float(np.median(epoch_cpu_s)), 1) if epoch_cpu_s else None,
            "setup_s": round(fit_s - sum(epoch_s), 1),
            "events_per_s": round(n_events / float(np.median(epoch_s))) if epoch_s else None,
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", default="1000000,3000000", help="comma-separated event counts")
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--label", default="", help="a name for the run (e.g. before / after)")
    parser.add_argument("--child", nargs=2, type=int, metavar=("EVENTS", "ITEMS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(one_size(args.child[0], args.child[1], args.epochs, args.threads)))
        return
    rows = []
    for n in [int(float(x)) for x in args.events.split(",")]:
        load = os.getloadavg()[0]
        done = subprocess.run([sys.executable, __file__, "--child", str(n), str(args.items), "--epochs",
                               str(args.epochs), "--threads", str(args.threads)],
                              capture_output=True, text=True, check=False, cwd=Path(__file__).parent)
        if done.returncode != 0:
            print(done.stderr[-2000:], file=sys.stderr)
            raise SystemExit(f"size {n} failed")
        row = json.loads(done.stdout.strip().splitlines()[-1])
        row["load_average_1m"] = round(load, 2)
        row["load_average_1m_after"] = round(os.getloadavg()[0], 2)
        rows.append(row)
        print(f"{row['events']:>11,} events {row['items']:>9,} items: epoch {row['epoch_s_median']} s "
              f"({row['events_per_s']:,} events/s, {row['epoch_cpu_s_median']} CPU s), setup {row['setup_s']} s, "
              f"peak RSS {row['peak_rss_mb']:,} MB (load {row['load_average_1m']} -> {row['load_average_1m_after']})",
              flush=True)
    append_run(OUT, {"sizes": rows}, {"params": PARAMS, "epochs": args.epochs, "threads": args.threads,
                                      "label": args.label, "source": _source()})


def _source() -> dict[str, Any]:
    """The shoprec code this run measured: its directory and that checkout's git commit."""
    found = subprocess.run([sys.executable, "-c", "import shoprec; print(shoprec.__file__)"], capture_output=True,
                           text=True, check=False, cwd=Path(__file__).parent)
    src = Path(found.stdout.strip()).parent if found.returncode == 0 else None
    return {"shoprec": str(src), "commit": git_commit(src) if src is not None else None}


if __name__ == "__main__":
    main()
