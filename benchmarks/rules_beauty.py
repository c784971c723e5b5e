"""Business rules on Amazon Beauty: what the rules cost a served list, and what a category cap / MMR diversity do
to intra-list diversity and NDCG@10.

Usage:
  python benchmarks/rules_beauty.py [--epochs 4] [--users 400] [--workdir DIR]

Steps: load Beauty (S3-Rec files; 22,363 users, 12,101 items) into a SQLite database through the ingest
pipeline, each item's category derived from its item2attributes ids (Beauty has no category names: the item's
two globally most frequent attribute ids, as the path "aX > aY"; the most frequent ids are the broad
categories, e.g. makeup / skin care); train the transformer (default config, `--epochs` epochs: a short run, as
the 2 shared cores make the full 60-epoch run ~45 min) on the leave-one-out history (train + valid).

1. Diversity (offline, the same Plan as serving via shoprec.evaluation.engine.rank_batch_with_rules): for every
   user, the top 10 (seen items excluded) without rules, with max_per_category 3 / 2 / 1 and with an MMR
   diversity weight (the transformer's item vectors when it has them); NDCG@10 and HR@10 of the test item,
   intra-list diversity by category (share of item pairs of different categories) and the co-occurrence
   diversity of shoprec.evaluation (Diversity@10: 1 - mean pairwise cosine of training co-occurrence).
2. Rules cost (online, in-process through RecommendService.recommend, the route's whole path without HTTP):
   the model is registered and activated on the platform; `--users` random users (`--rounds` times), each
   asked for k=10 with and without three rules (a filter, a boost, a pin) and a category cap (max_per_category
   2), the two in random order per user after a warm-up pass (then the garbage collector is frozen, as `shoprec
   serve` does once its models load); p50 / p99 of each and the p99 difference.
Prints tables and writes benchmarks/results/rules_beauty.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from _results import RESULTS_DIR, append_run

RESULTS = RESULTS_DIR / "rules_beauty.json"
K = 10


def derived_categories(path: Path) -> dict[str, str]:
    """item id -> "aX > aY": its two attribute ids that are most frequent over the catalog (broad, then finer)."""
    attrs: dict[str, list[int]] = json.loads(path.read_text())
    counts = Counter(a for ids in attrs.values() for a in set(ids))
    out = {}
    for item, ids in attrs.items():
        top = sorted(set(ids), key=lambda a: (-counts[a], a))[:2]
        out[item] = " > ".join(f"a{a}" for a in top)
    return out


def records(data_dir: Path) -> Iterator[Any]:
    from shoprec.data.records import ItemRecord
    from shoprec.datasets import read_records

    categories = derived_categories(data_dir / "Beauty_item2attributes.json")
    for rec in read_records("s3rec", data_dir / "Beauty.txt"):
        if isinstance(rec, ItemRecord):
            rec.category = categories.get(rec.item_id, "")
        yield rec


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------ 1. diversity (offline)
def diversity_table(model: Any, history: Any, test: Any, train: Any, catalog: Any) -> dict[str, dict[str, float]]:
    from shoprec.evaluation import metrics as M
    from shoprec.evaluation.engine import ItemStats, make_task, rank_batch, rank_batch_with_rules
    from shoprec.models.vectors import vector_scorer
    from shoprec.rules import ItemTable, Rules

    task = make_task(history, test, exclude_seen=True)
    stats = ItemStats.from_train(train)
    table = ItemTable.from_catalog(catalog)
    found = vector_scorer(model)
    vectors = (lambda idx: found[1][idx]) if found is not None else None
    configs = {"no rules": None, "max_per_category 3": Rules.parse(max_per_category=3),
               "max_per_category 2": Rules.parse(max_per_category=2),
               "max_per_category 1": Rules.parse(max_per_category=1), "diversity 0.3 (MMR)": Rules.parse(diversity=0.3)}
    tops = {name: np.full((len(task), K), -1, dtype=np.int32) for name in configs}
    ranks = {name: np.full(len(task), np.inf) for name in configs}
    seconds = dict.fromkeys(configs, 0.0)
    batch = 512
    for start in range(0, len(task), batch):
        sel = slice(start, start + batch)
        scores = model.score(task.queries[sel])
        excl = task.exclude[sel] if task.exclude is not None else None
        for name, rules in configs.items():
            t0 = time.perf_counter()
            if rules is None:
                tops[name][sel], ranks[name][sel] = rank_batch(scores, task.relevant[sel], excl, K, model.name)
            else:
                tops[name][sel], ranks[name][sel] = rank_batch_with_rules(scores, task.relevant[sel], excl, K, rules,
                                                                          table, vectors)
            seconds[name] += time.perf_counter() - t0
        say(f"  scored {min(start + batch, len(task)):,}/{len(task):,} users")
    codes = table.category_codes
    out = {}
    for name in configs:
        top = tops[name]
        cats = np.where(top >= 0, codes[np.maximum(top, 0)], -1)
        same = (cats[:, :, None] == cats[:, None, :]).sum(axis=(1, 2)) - K  # ordered pairs, self excluded
        ild = 1.0 - same / (K * (K - 1))
        co = M.intra_list_diversities(top, stats.similarity, (K,))[K] if stats.similarity is not None else None
        r = ranks[name]
        out[name] = {"NDCG@10": float(np.where(r < K, 1.0 / np.log2(np.minimum(r, K) + 2), 0.0).mean()),
                     "HR@10": float((r < K).mean()), "ILD_category@10": float(ild.mean()),
                     "Diversity@10": float(np.nanmean(co)) if co is not None else None,
                     "distinct_categories@10": float(np.mean([len(set(row[row >= 0])) for row in cats])),
                     "ranking_seconds": round(seconds[name], 2)}
    return out


# ------------------------------------------------------------------------------ 2. rules cost (online)
def latency(services: Any, platform: str, users: list[str], catalog: Any, n_users: int, seed: int, rounds: int = 1
            ) -> dict[str, Any]:
    from shoprec.rules import Rules
    from shoprec.service import Filters

    paths = Counter(c for c in catalog.category if c)
    (first, _), (second, _) = paths.most_common(2)
    pin_item = catalog.items.external(0)
    rules = Rules.parse(filter=f'category != "{first}"', boost=[f'category == "{second}": 0.2'], pin=f"{pin_item}:3",
                        max_per_category=2)
    rng = random.Random(seed)
    sample = rng.sample(users, n_users)
    plain, ruled = Filters(), Filters(rules=rules)
    for u in sample:  # warm-up: user states cached, model loaded, masks cached
        services.recommend.recommend(platform, u, K, filters=plain)
        services.recommend.recommend(platform, u, K, filters=ruled)
    gc.collect()  # what startup built leaves the collector's full passes, as in a `shoprec serve` process
    gc.freeze()  # (shoprec.api.app: after the models and catalog views load)
    times: dict[str, list[float]] = {"plain": [], "rules": []}
    for _ in range(rounds):
        for u in sample:
            order = [("plain", plain), ("rules", ruled)]
            rng.shuffle(order)
            for name, f in order:
                t0 = time.perf_counter()
                services.recommend.recommend(platform, u, K, filters=f)
                times[name].append((time.perf_counter() - t0) * 1000)
    out: dict[str, Any] = {"rules": rules.to_json(), "n_users": n_users, "rounds": rounds,
                           "int8_scan": services.models.get(platform).scan is not None}
    out["same_as_full_scoring"] = same_lists(services, platform, sample[:100], ruled)
    for name, ts in times.items():
        out[name] = {"p50_ms": round(float(np.percentile(ts, 50)), 3), "p99_ms": round(float(np.percentile(ts, 99)), 3),
                     "mean_ms": round(float(np.mean(ts)), 3)}
    out["p99_difference_ms"] = round(out["rules"]["p99_ms"] - out["plain"]["p99_ms"], 3)
    out["p50_difference_ms"] = round(out["rules"]["p50_ms"] - out["plain"]["p50_ms"], 3)
    return out


def same_lists(services: Any, platform: str, users: list[str], filters: Any) -> str | None:
    """With the int8 scan on: how many of `users`' lists with the rules are the lists full scoring gives (the same
    database and model, served with the scan off)."""
    from shoprec.service.testing import local_services

    if services.models.get(platform).scan is None:
        return None
    directory = Path(str(services.settings.database_url).removeprefix("sqlite:///")).parent
    full = local_services(directory, scan="off")
    try:
        same = sum(services.recommend.recommend(platform, u, K, filters=filters).item_ids
                   == full.recommend.recommend(platform, u, K, filters=filters).item_ids for u in users)
    finally:
        full.close()
    return f"{same}/{len(users)}"


def step_cost(services: Any, platform: str, model: Any, history: Any, rules: Any, n_users: int, seed: int,
              repeats: int = 5) -> dict[str, Any]:
    """The rules' own cost in the ranking step: service.chain.rank_chain of a 50-item list (the stored list's
    depth) from the model's scores of a user plus the popularity fallbacks, with and without the rules (the
    plan bound per list, as a request does), alternating; the model's scoring is done beforehand (the same for
    both). Short timed sections: less exposed to the other jobs on the cores than a whole request."""
    from shoprec.evaluation.engine import history_queries
    from shoprec.explain import Reason
    from shoprec.service.chain import Level, popular_levels, rank_chain

    view = services.catalogs.get(platform)
    served = services.models.get(platform)
    to_catalog = served.index_maps(view)[0]
    rng = random.Random(seed)
    users = np.array(sorted(rng.sample(range(history.n_users), n_users)))
    rows = model.score(history_queries(history, users))
    times: dict[str, list[float]] = {"plain": [], "rules": []}
    blocked = ~view.servable
    for r in range(len(users)):
        scores = np.full(len(view), -np.inf, dtype=np.float32)
        scores[to_catalog[to_catalog >= 0]] = rows[r][to_catalog >= 0]
        for _ in range(repeats):
            for name in rng.sample(["plain", "rules"], 2):
                levels = [Level(Reason("history", "transformer"), scores), *popular_levels(view, None)]
                t0 = time.perf_counter()
                plan = rules.bind(view.rule_table()) if name == "rules" else None
                rank_chain(levels, blocked, 50, view, plan)
                times[name].append((time.perf_counter() - t0) * 1000)
    out: dict[str, Any] = {"n_users": n_users, "repeats": repeats, "depth": 50}
    for name, ts in times.items():
        out[name] = {"p50_ms": round(float(np.percentile(ts, 50)), 3), "p99_ms": round(float(np.percentile(ts, 99)), 3)}
    out["p99_difference_ms"] = round(out["rules"]["p99_ms"] - out["plain"]["p99_ms"], 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--users", type=int, default=400)
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=3,
                        help="rules cost: each user's two lists are timed this many times (a steadier p99)")
    parser.add_argument("--part", choices=["all", "diversity", "cost", "step"], default="all",
                        help="run both parts, or one (a rerun with the same --workdir reuses the data and model)")
    args = parser.parse_args()

    from shoprec.config import config_to_dict
    from shoprec.data.splits import leave_one_out
    from shoprec.ingest.pipeline import ingest
    from shoprec.models.base import load_model
    from shoprec.models.factory import ModelFactory
    from shoprec.preprocess.weights import apply_event_weights
    from shoprec.service.testing import local_services
    from shoprec.settings import Settings
    from shoprec.storage import list_platforms, load_interactions

    data_dir = Settings.from_env().data_dir / "amazon-beauty"
    if not (data_dir / "Beauty.txt").is_file():
        sys.exit(f"Beauty not found at {data_dir} (set SHOPREC_DATA_DIR)")
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="rules-beauty-"))
    services = local_services(workdir)
    platform = "bench-rules"
    t0 = time.perf_counter()
    with services.engine.connect() as conn:
        loaded = platform in list_platforms(conn)
    if not loaded:  # a rerun with the same --workdir reuses the database (and the trained model)
        ingest(services.engine, platform, records(data_dir))
    raw, catalog = load_interactions(services.engine, platform)
    data = apply_event_weights(raw, drop_zero=True)
    split = leave_one_out(data)
    assert split.valid is not None
    history = split.train.concat(split.valid)
    say(f"loaded in {time.perf_counter() - t0:.0f} s; training the transformer for {args.epochs} epochs")
    params = {"epochs": args.epochs, "seed": args.seed}
    t0 = time.perf_counter()
    saved = workdir / f"transformer-{args.epochs}"
    if saved.is_dir():
        model = load_model(saved)
    else:
        model = ModelFactory("transformer", params).fit(history, catalog)
        model.save(saved)
    fit_s = time.perf_counter() - t0
    say(f"trained in {fit_s:.0f} s; ranking every user's list under each rule")
    if args.part == "step":  # the model is the platform's active one already (a run before stored it)
        paths = Counter(c for c in catalog.category if c)
        (first, _), (second, _) = paths.most_common(2)
        from shoprec.rules import Rules

        rules = Rules.parse(filter=f'category != "{first}"', boost=[f'category == "{second}": 0.2'],
                            pin=f"{catalog.items.external(0)}:3", max_per_category=2)
        step = step_cost(services, platform, model, history, rules, args.users, args.seed)
        services.close()
        print(f"\nRules cost in the ranking step (rank_chain, 50-item list, {args.users} users x {step['repeats']})")
        for name in ("plain", "rules"):
            print(f"{name:<10} p50 {step[name]['p50_ms']:.3f} ms  p99 {step[name]['p99_ms']:.3f} ms")
        print(f"p99 difference: {step['p99_difference_ms']:+.3f} ms")
        append_run(RESULTS, {"rules_step_cost": step, "load_average": os.getloadavg()},
                   {"epochs": args.epochs, "users": args.users, "part": "step", "rules": rules.to_json()})
        return
    diversity = diversity_table(model, history, split.test, split.train, catalog) if args.part != "cost" else {}
    if args.part == "diversity":
        services.close()
        _report(args, history, diversity, None, fit_s)
        return

    # the same model served by the platform (registered as `shoprec train` would store it)
    model_id = uuid.uuid4().hex
    services.store._store(platform, services.platforms.platform_id(platform), model_id, model, "transformer",
                          config_to_dict(model.config), {}, True)
    cost = latency(services, platform, history.users.to_list(), catalog, args.users, args.seed, args.rounds)
    services.close()
    _report(args, history, diversity, cost, fit_s)


def _report(args: argparse.Namespace, history: Any, diversity: dict[str, Any], cost: dict[str, Any] | None,
            fit_s: float) -> None:
    if diversity:
        print(f"\nDiversity on Beauty (transformer, {args.epochs} epochs; leave-one-out, seen items excluded, "
              f"{history.n_users:,} users)")
        print(f"{'list':<22}{'NDCG@10':>9}{'HR@10':>8}{'ILD(cat)@10':>13}{'Diversity@10':>14}{'categories':>12}")
        for name, m in diversity.items():
            co = f"{m['Diversity@10']:.4f}" if m["Diversity@10"] is not None else "-"
            print(f"{name:<22}{m['NDCG@10']:>9.4f}{m['HR@10']:>8.4f}{m['ILD_category@10']:>13.4f}{co:>14}"
                  f"{m['distinct_categories@10']:>12.2f}")
    if cost is not None:
        print(f"\nRules cost (in-process RecommendService.recommend, k=10, {args.users} users x {args.rounds})")
        print(f"{'list':<10}{'p50 ms':>9}{'p99 ms':>9}{'mean ms':>9}")
        for name in ("plain", "rules"):
            m = cost[name]
            print(f"{name:<10}{m['p50_ms']:>9.2f}{m['p99_ms']:>9.2f}{m['mean_ms']:>9.2f}")
        print(f"p99 difference: {cost['p99_difference_ms']:+.2f} ms; "
              f"p50 difference: {cost['p50_difference_ms']:+.2f} ms")
        print(f"int8 scan: {'on' if cost['int8_scan'] else 'off'}; lists with the rules equal to full scoring's: "
              f"{cost['same_as_full_scoring'] or '-'}")
    append_run(RESULTS, {"diversity": diversity or None, "rules_cost": cost, "fit_seconds": round(fit_s, 1),
                         "load_average": os.getloadavg()},
               {"epochs": args.epochs, "users": args.users, "seed": args.seed, "model": "transformer",
                "part": args.part, "category": "two most frequent item2attributes ids per item"})


if __name__ == "__main__":
    main()
