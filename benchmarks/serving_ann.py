"""ANN candidates on a synthetic 1M-item catalog: top-20 latency per query and recall@20 against exact scoring.

Usage:
  python benchmarks/serving_ann.py [--items 1000000] [--dim 64] [--queries 1000] [--nprobe 16,32,64,128]

Item vectors: 5,000 Gaussian cluster centres plus noise (std 0.7 per coordinate), the shape of learned
embeddings; query vectors are drawn the same way. The index is shoprec.service.ann.AnnIndex (MIPS ->
NN augmentation, IVF-Flat, one thread), exactly as the service builds it for catalogs above
SHOPREC_ANN_THRESHOLD; the reference is exact scoring through ranking.top_k. Latency is one query at a
time (index.search for the top 20, then the exact re-score is already done by IVF-Flat). Prints a table
and writes benchmarks/results/serving_ann.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

from shoprec.service.ann import AnnConfig, AnnIndex, exact_top, recall_at

from _results import RESULTS_DIR, append_run

RESULTS = RESULTS_DIR / "serving_ann.json"


def clustered(rng: np.random.Generator, centers: np.ndarray, n: int) -> np.ndarray:
    out = np.empty((n, centers.shape[1]), dtype=np.float32)
    for start in range(0, n, 100_000):
        stop = min(n, start + 100_000)
        out[start:stop] = centers[rng.integers(0, len(centers), stop - start)]
        out[start:stop] += 0.7 * rng.standard_normal((stop - start, centers.shape[1]), dtype=np.float32)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--nprobe", default="16,32,64,128")
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    centers = rng.standard_normal((5000, args.dim)).astype(np.float32)
    items = clustered(rng, centers, args.items)
    queries = clustered(rng, centers, args.queries)
    t0 = time.perf_counter()
    index = AnnIndex(items, AnnConfig(seed=args.seed))
    build_s = time.perf_counter() - t0
    print(f"built IVF index over {args.items:,} items in {build_s:.1f} s (nlist {index.nlist})", file=sys.stderr)
    exact = np.concatenate([exact_top(queries[s:s + 50], items, args.k) for s in range(0, len(queries), 50)])
    exact_ms = []
    for i in range(min(50, len(queries))):
        t = time.perf_counter()
        exact_top(queries[i:i + 1], items, args.k)
        exact_ms.append((time.perf_counter() - t) * 1000)
    rows = []
    for nprobe in (int(x) for x in args.nprobe.split(",")):
        index.index.nprobe = nprobe
        found, lat = [], []
        for i in range(len(queries)):
            t = time.perf_counter()
            idx, _ = index.search(queries[i:i + 1], args.k)
            lat.append((time.perf_counter() - t) * 1000)
            found.append(idx[0])
        rows.append({"nprobe": nprobe, f"recall@{args.k}": round(recall_at(np.array(found), exact), 4),
                     "p50_ms": round(float(np.percentile(lat, 50)), 3),
                     "p99_ms": round(float(np.percentile(lat, 99)), 3)})
    print(f"{'nprobe':>8}{'recall@' + str(args.k):>12}{'p50 ms':>10}{'p99 ms':>10}")
    for r in rows:
        print(f"{r['nprobe']:>8}{r[f'recall@{args.k}']:>12}{r['p50_ms']:>10}{r['p99_ms']:>10}")
    print(f"exact scoring through ranking.top_k: p50 {np.percentile(exact_ms, 50):.1f} ms per query")
    figures = {"nlist": index.nlist, "build_seconds": round(build_s, 1),
               "exact_p50_ms": round(float(np.percentile(exact_ms, 50)), 1), "rows": rows,
               "load_average_at_end": [round(x, 2) for x in os.getloadavg()]}
    append_run(RESULTS, figures, {"items": args.items, "dim": args.dim, "queries": args.queries, "k": args.k,
                                  "seed": args.seed, "faiss_threads": 1})


if __name__ == "__main__":
    main()
