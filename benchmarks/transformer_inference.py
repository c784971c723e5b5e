"""Transformer inference cost on one CPU core: one user's history (length 1..200) scored over the whole
Beauty catalog (12,101 items), and batched scoring as the evaluation uses it.

    python benchmarks/transformer_inference.py [--model DIR] [--max-len N] [--repeats 1000] [--out FILE]

Without --model, a transformer with the default network is fitted for one epoch on Beauty (its cost per
query is that of a fully trained one: same shapes, same operations); --max-len N fits it with that context
(the default "auto" gives Beauty 50, which reads at most 50 events of a longer history; Online Retail's
"auto" is 200). Each timing is `model.score([query])`
end to end (query arrays, encoder, item products), with torch and BLAS limited to one thread; medians and
p99 over `repeats` random histories. Then serving's leave-one-out batch of one history (the history and the
history without each of its newest 20 distinct items: `LeaveOneOut(model, query)`, which encodes them for
the list and its explanations) with the rows' shared prefixes computed once (the default) and without
(every row encoded whole). Prints a table and writes benchmarks/results/transformer_inference.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = "1"

import numpy as np  # noqa: E402
import torch  # noqa: E402

from _results import RESULTS_DIR, append_run  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = RESULTS_DIR / "transformer_inference.json"


def fitted_model(model_dir: Path | None, max_len: int | None) -> object:
    from shoprec.models import load_model

    if model_dir is not None:
        return load_model(model_dir)
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from shoprec.models.transformer import Transformer
    from shoprec.settings import Settings
    from transformer_beauty import leave_one_out, read_beauty

    data = leave_one_out(*read_beauty(Settings.from_env().data_dir / "amazon-beauty"))
    params = {"epochs": 1, "progress": False, "num_threads": 1, **({"max_len": max_len} if max_len else {})}
    return Transformer.from_dict(params).fit(data.train, data.catalog)


def leave_one_out_rows(model: object, rng: np.random.Generator, n_items: int, repeats: int) -> list[dict]:
    import shoprec.models.transformer.serving as transformer_module  # where scoring looks shared_prefixes up
    from shoprec.explain.attribution import LeaveOneOut
    from shoprec.models.base import Query

    shared = transformer_module.shared_prefixes
    rows = []
    for length in (8, 20, 50, 200):
        queries = [Query(user=None, history=rng.choice(n_items, length, replace=False).astype(np.int32),
                         event_types=np.zeros(length, dtype=np.int64),
                         timestamps=np.sort(rng.integers(0, 10**8, length)).astype(float)) for _ in range(repeats)]
        for label, finder in (("shared prefixes", shared), ("every row whole", lambda *a: None)):
            transformer_module.shared_prefixes = finder  # type: ignore[assignment]
            for q in queries[:5]:
                LeaveOneOut(model, q)  # type: ignore[arg-type]
            times = []
            for q in queries:
                t0 = time.perf_counter()
                LeaveOneOut(model, q)  # type: ignore[arg-type]
                times.append((time.perf_counter() - t0) * 1000)
            rows.append({"case": f"leave-one-out, history {length}, {label}", "p50_ms": float(np.median(times)),
                         "p99_ms": float(np.percentile(times, 99))})
    transformer_module.shared_prefixes = shared
    return rows


def main() -> None:
    from shoprec.models.base import Query

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=None, help="a saved transformer artifact directory")
    ap.add_argument("--max-len", type=int, default=None, help="fit with this max_len (without --model)")
    ap.add_argument("--repeats", type=int, default=1000)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    torch.set_num_threads(1)
    model = fitted_model(args.model, args.max_len)
    rng = np.random.default_rng(0)
    n_items = model.n_items  # type: ignore[attr-defined]
    rows = []
    for length in (1, 10, 50, 100, 200):
        queries = [Query(user=None, history=rng.integers(0, n_items, length).astype(np.int32))
                   for _ in range(args.repeats)]
        for q in queries[:20]:
            model.score([q])  # type: ignore[attr-defined]
        times = []
        for q in queries:
            t0 = time.perf_counter()
            model.score([q])  # type: ignore[attr-defined]
            times.append((time.perf_counter() - t0) * 1000)
        rows.append({"case": f"one query, history {length}", "p50_ms": float(np.median(times)),
                     "p99_ms": float(np.percentile(times, 99))})
    rows += leave_one_out_rows(model, rng, n_items, max(args.repeats // 5, 20))
    batch = [Query(user=None, history=rng.integers(0, n_items, int(rng.integers(3, 51))).astype(np.int32))
             for _ in range(1024)]
    model.score(batch)  # type: ignore[attr-defined]
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        model.score(batch)  # type: ignore[attr-defined]
        times.append((time.perf_counter() - t0) * 1000)
    rows.append({"case": "batch of 1024 queries (history 3..50)", "p50_ms": float(np.median(times)),
                 "per_query_ms": float(np.median(times)) / 1024})
    print(f"model context (max_len): {model.max_len}")  # type: ignore[attr-defined]
    print(f"{'case':<52}{'p50 ms':>10}{'p99 ms':>10}")
    for r in rows:
        print(f"{r['case']:<52}{r['p50_ms']:>10.3f}{r.get('p99_ms', float('nan')):>10.3f}")
    append_run(args.out, {"rows": rows, "load_average_at_end": [round(x, 2) for x in os.getloadavg()]},
               {"model": str(args.model) if args.model else "default network, one epoch on Beauty",
                "max_len": model.max_len,  # type: ignore[attr-defined]
                "n_items": n_items, "threads": 1, "repeats": args.repeats})


if __name__ == "__main__":
    main()
