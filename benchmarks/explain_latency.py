"""Cost of faithful explanations: one model.score call vs the leave-one-out attribution of a list.

Usage:
  python benchmarks/explain_latency.py [--users 1000] [--items 400] [--queries 200] [--targets 50]

For each model kind used in serving (itemknn, ease, als, transformer; small configs) trained on
synthetic data, for `queries` users: the time of the list's own score call (one query, whole catalog)
and of shoprec.explain.leave_one_out over the newest 20 distinct history items for `targets` listed
items (one batched call: 21 queries; inner-product models score only the target columns).
Then, in the service (in-process, SQLite, itemknn active, k = 10, 50 items ranked and explained per
list): RecommendService.recommend p50/p95, and the part of it spent in the attribution (LeaveOneOut
wrapped with a timer). Prints p50/p95 in milliseconds and writes benchmarks/results/explain_latency.json.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from shoprec.data.synthetic import SyntheticConfig, generate
from shoprec.explain import leave_one_out
from shoprec.models.base import Query, create_model
from shoprec.preprocess.weights import apply_event_weights
from shoprec.ranking import top_k

from _results import RESULTS_DIR, append_run

RESULTS = RESULTS_DIR / "explain_latency.json"
CONFIGS: dict[str, dict[str, Any]] = {
    "itemknn": {},
    "ease": {},
    "als": {"embedding_size": 64, "epochs": 10},
    "transformer": {"epochs": 3, "embedding_size": 64, "n_blocks": 2, "use_text": False, "device": "cpu",
                    "num_threads": 1, "progress": False, "patience": 0},
}


def ms(values: list[float]) -> tuple[float, float]:
    return float(np.percentile(values, 50) * 1e3), float(np.percentile(values, 95) * 1e3)


def in_service(args: argparse.Namespace) -> dict[str, float]:
    """recommend() latency through the service with explanations, and the attribution's share of it."""
    import shoprec.service.recommend as serving
    from shoprec.service.testing import local_services, synthetic_platform

    spent: list[float] = []
    original = serving.LeaveOneOut

    class Timed(original):  # type: ignore[misc, valid-type]
        """The leave-one-out batch (prepared once per list; it also gives the list's own scores) and the
        attribution of the placed items: the explanation's cost inside recommend()."""

        def __init__(self, *a: Any, **kw: Any) -> None:
            t = time.perf_counter()
            super().__init__(*a, **kw)
            spent.append(time.perf_counter() - t)

        def attribution(self, *a: Any, **kw: Any) -> Any:
            t = time.perf_counter()
            try:
                return super().attribution(*a, **kw)
            finally:
                spent[-1] += time.perf_counter() - t

    with tempfile.TemporaryDirectory() as tmp:
        services = local_services(Path(tmp), model_poll_s=60.0)
        try:
            shop = synthetic_platform(services, "bench", users=args.users, items=args.items, seed=args.seed)
            users = shop.user_ids[:args.queries]
            for u in users:  # warm the caches
                services.recommend.recommend("bench", u, k=10)
            serving.LeaveOneOut = Timed  # type: ignore[misc]
            total = []
            for u in users:
                t = time.perf_counter()
                services.recommend.recommend("bench", u, k=10)
                total.append(time.perf_counter() - t)
        finally:
            serving.LeaveOneOut = original  # type: ignore[misc]
            services.close()
    (r50, r95), (a50, _) = ms(total), ms(spent)
    return {"recommend_p50_ms": r50, "recommend_p95_ms": r95, "attribution_p50_ms": a50}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--items", type=int, default=400)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--targets", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    raw, catalog = generate(SyntheticConfig(n_users=args.users, n_items=args.items, seed=args.seed)).to_interactions()
    train = apply_event_weights(raw, drop_zero=True)
    rng = np.random.default_rng(args.seed)
    users = rng.choice(np.unique(train.user), size=min(args.queries, len(np.unique(train.user))), replace=False)
    histories = {int(u): train.item[train.user == u][-50:].astype(np.int32) for u in users}
    rows = []
    for name, params in CONFIGS.items():
        model = create_model(name, params).fit(train, catalog)
        score_s, explain_s, lengths = [], [], []
        for u, hist in histories.items():
            query = Query(user=u, history=hist)
            t = time.perf_counter()
            scores = model.score([query])
            score_s.append(time.perf_counter() - t)
            idx, _ = top_k(scores, args.targets, exclude=[hist])
            t = time.perf_counter()
            leave_one_out(model, query, idx[0])
            explain_s.append(time.perf_counter() - t)
            lengths.append(len(set(hist.tolist())))
        (s50, s95), (e50, e95) = ms(score_s), ms(explain_s)
        rows.append({"model": name, "score_p50_ms": s50, "score_p95_ms": s95, "explain_p50_ms": e50,
                     "explain_p95_ms": e95, "mean_distinct_history": float(np.mean(lengths))})
    print(f"{'model':<12} {'score p50':>9} {'p95':>7} {'explain p50':>11} {'p95':>7}   (ms; {args.targets} targets, "
          f"history capped at 20 distinct items)")
    for r in rows:
        print(f"{r['model']:<12} {r['score_p50_ms']:>9.2f} {r['score_p95_ms']:>7.2f} {r['explain_p50_ms']:>11.2f} "
              f"{r['explain_p95_ms']:>7.2f}")
    service = in_service(args)
    print(f"service recommend() p50 {service['recommend_p50_ms']:.2f} ms, p95 {service['recommend_p95_ms']:.2f} ms; "
          f"of which attribution p50 {service['attribution_p50_ms']:.2f} ms ({args.items} items, itemknn)")
    append_run(RESULTS, {"rows": rows, "service": service, "n_items": int(train.n_items),
                         "load_average_at_end": [round(x, 2) for x in os.getloadavg()]}, vars(args))


if __name__ == "__main__":
    main()
