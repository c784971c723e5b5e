"""A/B simulation: synthetic users with known tastes against two variants, through the real service layer.

Usage:
  python benchmarks/ab_simulation.py [--users 300] [--items 120] [--rounds 3] [--k 10] [--seed 0]

A synthetic shop (shoprec.data.synthetic: every person has a known category-taste distribution) is
ingested into a fresh SQLite database (in-process services, as in production minus HTTP). Two models
are trained: itemknn (personal) and popular (the same list for everyone). An experiment splits the users
50/50 ("control" = popular, "treatment" = itemknn); a second, A/A experiment (popular vs popular) is run
afterwards on the same users as a false-positive check.

Each round, every user asks for k recommendations; each shown item is clicked with the user's TRUE
probability p = min(0.8, 0.02 + 0.6 * taste[user, category(item)]), and a click becomes a purchase with
probability 0.3. Clicks are sent as events (half with the list's recommendation_id in their context,
half without: credited through the 30-minute window), so the service attributes them itself. The
verdict is read from GET /v1/experiments/{id}/results (TestClient over the same services): the
winner is the variant with the higher CTR when its p-value vs control is below 0.05. The truth is the
mean click probability of the items each variant actually showed (known only to the simulator).
Prints a table and writes benchmarks/results/ab_simulation.json.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from fastapi.testclient import TestClient

from shoprec.api import create_app
from shoprec.data.records import EventRecord
from shoprec.data.synthetic import SyntheticConfig, generate
from shoprec.ingest.pipeline import ingest
from shoprec.service import Services
from shoprec.service.testing import local_services
from shoprec.types import EventType

from _results import RESULTS_DIR, append_run

RESULTS = RESULTS_DIR / "ab_simulation.json"
P_PURCHASE = 0.3


class Truth:
    """The simulator's knowledge: click probability of (user, item) from the user's category taste."""

    def __init__(self, users: list[str], person_ids: list[str], taste: np.ndarray, items: list[str],
                 item_category: np.ndarray) -> None:
        person = {p: i for i, p in enumerate(person_ids)}
        self.taste = {u: taste[person[u]] for u in users}
        self.category = {item: int(c) for item, c in zip(items, item_category, strict=True)}

    def p_click(self, user: str, item: str) -> float:
        return float(min(0.8, 0.02 + 0.6 * self.taste[user][self.category[item]]))


def run_experiment(services: Services, client: TestClient, truth: Truth, users: list[str], variants: list[dict],
                   name: str, rounds: int, k: int, rng: np.random.Generator) -> dict[str, Any]:
    exp = client.post("/v1/experiments", json={"name": name, "variants": variants})
    exp.raise_for_status()
    exp_id = exp.json()["experiment_id"]
    expected: dict[str, list[float]] = {}
    t0 = time.perf_counter()
    for _ in range(rounds):
        for n, user in enumerate(users):
            answer = services.recommend.recommend("sim", user, k=k).to_json()
            events = []
            for item in (i["item_id"] for i in answer["items"]):
                p = truth.p_click(user, item)
                expected.setdefault(answer["variant"], []).append(p)
                if rng.random() >= p:
                    continue
                context = {"recommendation_id": answer["recommendation_id"]} if n % 2 == 0 else None
                events.append(EventRecord(user_id=user, item_id=item, event_type=EventType.CLICK,
                                          timestamp=time.time(), context=context))
                if rng.random() < P_PURCHASE:
                    events.append(EventRecord(user_id=user, item_id=item, event_type=EventType.PURCHASE,
                                              timestamp=time.time() + 1, context=context))
            if events:
                services.data.add_events("sim", events)
    seconds = time.perf_counter() - t0
    results = client.get(f"/v1/experiments/{exp_id}/results").json()
    client.post(f"/v1/experiments/{exp_id}/stop").raise_for_status()
    return summarise(name, results, expected, seconds)


def summarise(name: str, results: dict[str, Any], expected: dict[str, list[float]], seconds: float) -> dict[str, Any]:
    rows = []
    for v in results["variants"]:
        vs = v.get("vs_control", {})
        rows.append({"variant": v["name"], "users": v["users"], "impressions": v["impressions"], "clicks": v["clicks"],
                     "purchases": v["purchases"], "ctr": v["ctr"]["value"], "ctr_ci95": v["ctr"]["ci95"],
                     "conversion": v["conversion"]["value"], "conversion_ci95": v["conversion"]["ci95"],
                     "ctr_p_value": vs.get("ctr_p_value"), "conversion_p_value": vs.get("conversion_p_value"),
                     "true_ctr": float(np.mean(expected.get(v["name"], [0.0])))})
    control, treatment = rows[0], rows[1]
    p = treatment["ctr_p_value"]
    if p is not None and p < 0.05:
        found = treatment["variant"] if treatment["ctr"] > control["ctr"] else control["variant"]
    else:
        found = "no significant difference"
    true_gap = treatment["true_ctr"] - control["true_ctr"]
    truly_better = treatment["variant"] if true_gap > 0 else control["variant"]
    return {"experiment": name, "variants": rows, "found": found, "truly_better": truly_better,
            "true_ctr_gap": true_gap, "seconds": round(seconds, 1)}


def print_table(summary: dict[str, Any]) -> None:
    print(f"\n{summary['experiment']}  ({summary['seconds']} s)")
    print(f"{'variant':<10} {'users':>5} {'impr.':>6} {'clicks':>6} {'buys':>5} {'CTR [95% CI]':>24} "
          f"{'conv. [95% CI]':>24} {'p (CTR)':>9} {'true CTR':>8}")
    for r in summary["variants"]:
        ctr = f"{r['ctr']:.4f} [{r['ctr_ci95'][0]:.4f}, {r['ctr_ci95'][1]:.4f}]"
        conv = f"{r['conversion']:.4f} [{r['conversion_ci95'][0]:.4f}, {r['conversion_ci95'][1]:.4f}]"
        p = "-" if r["ctr_p_value"] is None else f"{r['ctr_p_value']:.2g}"
        print(f"{r['variant']:<10} {r['users']:>5} {r['impressions']:>6} {r['clicks']:>6} {r['purchases']:>5} "
              f"{ctr:>24} {conv:>24} {p:>9} {r['true_ctr']:>8.4f}")
    print(f"found: {summary['found']}; truly better: {summary['truly_better']} "
          f"(true CTR gap {summary['true_ctr_gap']:+.4f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--items", type=int, default=120)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()
    synthetic = generate(SyntheticConfig(n_users=args.users, n_items=args.items, seed=args.seed))
    shop = synthetic.platform()
    users = [u.user_id for u in shop.users]
    truth = Truth(users, synthetic.person_ids, synthetic.taste, [i.item_id for i in shop.items], shop.item_category)
    with tempfile.TemporaryDirectory() as tmp:
        services = local_services(Path(tmp), model_poll_s=1.0)
        try:
            key = services.platforms.create("sim")
            ingest(services.engine, "sim", shop.records())
            knn = services.store.train("sim", "itemknn", activate=True, evaluate=False).model_id
            pop = services.store.train("sim", "popular", evaluate=False).model_id
            app = create_app(services.settings, services.config, services=services)
            with TestClient(app, headers={"X-API-Key": key}) as client:
                ab = run_experiment(services, client, truth, users, [
                    {"name": "popular", "model_id": pop, "share": 0.5},
                    {"name": "itemknn", "model_id": knn, "share": 0.5}], "A/B: popular vs itemknn",
                    args.rounds, args.k, rng)
                aa = run_experiment(services, client, truth, users, [
                    {"name": "pop-a", "model_id": pop, "share": 0.5},
                    {"name": "pop-b", "model_id": pop, "share": 0.5}], "A/A: popular vs popular",
                    args.rounds, args.k, rng)
        finally:
            services.close()
    for summary in (ab, aa):
        print_table(summary)
    total = round(time.perf_counter() - started, 1)
    append_run(RESULTS, {"ab": ab, "aa": aa, "total_seconds": total,
                         "load_average_at_end": [round(x, 2) for x in os.getloadavg()]}, vars(args))
    print(f"\ntotal {total} s")


if __name__ == "__main__":
    main()
