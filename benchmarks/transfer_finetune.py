"""Fine-tuning transfer of the transformer (issue 7): a small platform's transformer started from a large
platform's (`Transformer.start_from`, what `shoprec train --init-from MODEL_ID` does) against the same
config trained on the small platform alone.

Data: two synthetic shops (shoprec.data.synthetic) with their own items and users, titles made of the same
product words; the large shop A has --users-a users, the small shop B --users-b users sampled per seed.
Events: "first" keeps each user's first event with an item (a next-new-item task), "all" keeps every
event weighted as `shoprec train` weights them. Per seed: a transformer fitted on all of A (the stored
source model), then on B the strict leave-one-out protocol of `shoprec evaluate` (last event test,
second-to-last validation for early stopping, full ranking) for a model from scratch and one fine-tuned.

    python benchmarks/transfer_finetune.py --seeds 5 [--params '{"epochs": 20}']
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from shoprec.data import Interactions, ItemCatalog
from shoprec.data.synthetic import SyntheticConfig, generate
from shoprec.evaluation import EvalConfig, run_protocol
from shoprec.models.transformer import Transformer
from shoprec.preprocess.weights import apply_event_weights

from _results import RESULTS_DIR, append_run

RESULTS = RESULTS_DIR / "transfer_finetune.json"
TINY = {"embedding_size": 32, "n_blocks": 1, "n_heads": 2, "ffn_size": 64, "max_len": 10, "dropout": 0.1,
        "attention_dropout": 0.0, "batch_size": 64, "learning_rate": 5e-3, "epochs": 20, "eval_every": 1,
        "patience": 3, "progress": False, "num_threads": 1, "text_encoder": "hashing", "use_attributes": False}
SOURCE_EPOCHS = 8  # the source is fitted on all of A, without validation


def first_visits(data: Interactions) -> Interactions:
    """Each user's first event with each item (views, carts, purchases of one item count once)."""
    order = data.time_order()
    key = data.user.astype(np.int64) * (len(data.items) + 1) + data.item
    _, first = np.unique(key[order], return_index=True)
    keep = np.zeros(len(data), dtype=bool)
    keep[order[first]] = True
    return data.subset(keep)


def shops(users_a: int, items: int, events: str) -> dict[str, tuple[Interactions, ItemCatalog]]:
    """shop-a and shop-b (all their users) with `events` ("first" or "all") as described above."""
    data = generate(SyntheticConfig(n_users=users_a, n_items=items, n_platforms=2, overlap=0.0,
                                    sessions_per_user=6, seed=1))
    prepare: Callable[[Interactions], Interactions] = (
        first_visits if events == "first" else lambda d: apply_event_weights(d, drop_zero=True))
    return {name: (prepare(d), c) for name, (d, c) in ((n, data.to_interactions(n)) for n in ("shop-a", "shop-b"))}


def compare(data: dict[str, tuple[Interactions, ItemCatalog]], users_b: int, seed: int,
            params: dict[str, Any]) -> dict[str, dict[str, float]]:
    """{"scratch": metrics, "fine-tuned": metrics} on `users_b` users of shop-b (sampled with `seed`)."""
    a, catalog_a = data["shop-a"]
    b, catalog_b = data["shop-b"]
    users = np.random.default_rng(seed).choice(np.unique(b.user), users_b, replace=False)
    small = b.subset(np.isin(b.user, users))
    cfg = {**TINY, **params, "seed": seed}
    source = Transformer.from_dict({**cfg, "epochs": SOURCE_EPOCHS}).fit(a, catalog_a)
    makers: dict[str, Callable[[], Transformer]] = {
        "scratch": lambda: Transformer.from_dict(cfg),
        "fine-tuned": lambda: Transformer.from_dict(cfg).start_from(source, "shop-a")}
    out = {}
    for name, make in makers.items():
        result = run_protocol(small, catalog_b, make, EvalConfig())
        out[name] = {"NDCG@10": result.metrics["NDCG@10"], "HR@10": result.metrics["HR@10"],
                     "fit_seconds": round(result.fit_seconds, 2), "users": result.n_users_evaluated}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--users-a", type=int, default=400)
    parser.add_argument("--users-b", type=int, default=60)
    parser.add_argument("--items", type=int, default=120, help="items per shop")
    parser.add_argument("--events", nargs="+", default=["first", "all"], choices=["first", "all"])
    parser.add_argument("--params", default='{"epochs": 100, "patience": 5}',
                        help="JSON overrides of TINY for both models (default: train to early stopping; the "
                             "unit test uses TINY's 20 epochs)")
    args = parser.parse_args()
    params = json.loads(args.params)
    started = time.perf_counter()
    rows = []
    print(f"{'events':<6} {'seed':>4} {'scratch NDCG@10':>16} {'fine-tuned NDCG@10':>19} {'scratch HR@10':>14} "
          f"{'fine-tuned HR@10':>17}")
    for events in args.events:
        data = shops(args.users_a, args.items, events)
        for seed in range(args.seeds):
            r = compare(data, args.users_b, seed, params)
            rows.append({"events": events, "seed": seed, **r})
            print(f"{events:<6} {seed:>4} {r['scratch']['NDCG@10']:>16.4f} {r['fine-tuned']['NDCG@10']:>19.4f} "
                  f"{r['scratch']['HR@10']:>14.4f} {r['fine-tuned']['HR@10']:>17.4f}")
        mine = [r for r in rows if r["events"] == events]
        means = {f"{m} {k}": float(np.mean([r[m][k] for r in mine])) for m in ("scratch", "fine-tuned")
                 for k in ("NDCG@10", "HR@10")}
        print(f"{events:<6} {'mean':>4} {means['scratch NDCG@10']:>16.4f} {means['fine-tuned NDCG@10']:>19.4f} "
              f"{means['scratch HR@10']:>14.4f} {means['fine-tuned HR@10']:>17.4f}")
        rows.append({"events": events, "seed": "mean", **means})
    total = round(time.perf_counter() - started, 1)
    append_run(RESULTS, {"rows": rows, "total_seconds": total,
                         "load_average_at_end": [round(x, 2) for x in os.getloadavg()]},
               {"benchmark": "transfer_finetune", "args": vars(args), "params": {**TINY, **params},
                "source_epochs": SOURCE_EPOCHS})
    print(f"\ntotal {total} s")


if __name__ == "__main__":
    main()
