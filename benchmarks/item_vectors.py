"""The transformer with and without the shop's own item vectors, on the planted shop of
tests/models/test_transformer_vectors.py (shoprec.data.synthetic_vectors): users stay inside one of 4 item
clusters, every title is the same word, only the items' "image" vectors (cluster centroid + noise) tell the
clusters apart; 3 items per cluster never appear in an event (cold items).

Figure: cold-item NDCG@3 and @10 (each user ranks the 12 cold items; the 3 of the user's cluster are the
relevant ones; ties broken at random, so chance is 0.28 / 0.55), mean over seeds, with use_vectors on / off,
at two noise levels of the image vectors.

Usage: python benchmarks/item_vectors.py [--seeds 3] [--out benchmarks/results/item_vectors.json]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from shoprec.data.synthetic_vectors import cold_ndcg, vector_shop
from shoprec.models.base import Query
from shoprec.models.transformer import Transformer

from _results import RESULTS_DIR, append_run

PARAMS: dict[str, Any] = {"ensemble": 1, "patience": 4, "embedding_size": 32, "n_blocks": 1, "n_heads": 2,
                          "ffn_size": 64, "batch_size": 32, "dropout": 0.1, "attention_dropout": 0.0,
                          "device": "cpu", "num_threads": 1, "progress": False, "epochs": 20, "id_dropout": 0.3,
                          "use_attributes": False, "text_encoder": "hashing"}


def run(seeds: int, noises: list[float]) -> list[dict[str, Any]]:
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        for noise in noises:
            for use_vectors in (True, False):
                at3, at10, seconds = [], [], []
                for seed in range(seeds):
                    shop = vector_shop(noise=noise, seed=seed)
                    params = {**PARAMS, "seed": seed, "use_vectors": use_vectors, "text_cache_dir": cache}
                    t0 = time.perf_counter()
                    model = Transformer.from_dict(params).fit(shop.data, shop.catalog)
                    seconds.append(time.perf_counter() - t0)
                    queries = [Query(user=u, history=s) for u, s in enumerate(shop.data.to_sequences())]
                    scores = model.score(queries)
                    at3.append(cold_ndcg(scores, shop, k=3))
                    at10.append(cold_ndcg(scores, shop, k=10))
                rows.append({"noise": noise, "use_vectors": use_vectors, "cold_ndcg@3": float(np.mean(at3)),
                             "cold_ndcg@3_min": float(np.min(at3)), "cold_ndcg@10": float(np.mean(at10)),
                             "fit_seconds": float(np.mean(seconds)), "seeds": seeds})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--noise", type=float, nargs="+", default=[0.3, 1.0])
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "item_vectors.json")
    args = parser.parse_args()
    rows = run(args.seeds, args.noise)
    print(f"{'noise':>6} {'vectors':>8} {'cold NDCG@3':>12} {'(min)':>7} {'cold NDCG@10':>13} {'fit s':>7}")
    for r in rows:
        print(f"{r['noise']:>6} {r['use_vectors']!s:>8} {r['cold_ndcg@3']:>12.4f} {r['cold_ndcg@3_min']:>7.4f} "
              f"{r['cold_ndcg@10']:>13.4f} {r['fit_seconds']:>7.1f}")
    append_run(args.out, {"rows": rows}, {"params": PARAMS, "seeds": args.seeds, "noise": args.noise})


if __name__ == "__main__":
    main()
