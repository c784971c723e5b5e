"""Fixtures for the model tests: a small synthetic dataset with planted answers, and per-model settings
that keep the shared contract tests (tests/models/test_contract.py) fast.

Model owners: add your model's entries to SMALL_CONFIGS (a fast config for the contract run),
BAD_VALUES (a value your config must reject) and, only if your model cannot learn the planted
item-to-item rule, LEARNS.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from shoprec.data import IdMap, Interactions
from shoprec.models import Query

# Per-model config overrides used by every contract test: small epochs / sizes so a fit takes ~1 s.
SMALL_CONFIGS: dict[str, dict[str, Any]] = {
    "itemknn": {},
    "ease": {"regularization": 10.0},
    "als": {"embedding_size": 16, "epochs": 10, "alpha": 10.0, "regularization": 0.1},
    "bpr": {"embedding_size": 16, "epochs": 200, "learning_rate": 0.1, "fold_in_steps": 300},
    "mf": {"epochs": 15},
    "ncf": {"epochs": 30, "device": "cpu", "num_threads": 1, "batch_size": 64, "learning_rate": 0.01,
            "patience": 0},
    "gru4rec": {"epochs": 15, "embedding_size": 32, "batch_size": 32, "learning_rate": 0.01, "dropout": 0.0,
                "device": "cpu", "num_threads": 1, "patience": 0},
    "transformer": {"ensemble": 1, "epochs": 15, "embedding_size": 32, "ffn_size": 64, "n_blocks": 1,
                    "batch_size": 32,
                    "dropout": 0.0, "attention_dropout": 0.0, "use_text": False, "device": "cpu",
                    "num_threads": 1, "progress": False, "eval_every": 1, "patience": 0},
    "cross": {"regularization": 1.0},
}

# (parameter, value) that each model's config must reject with a ConfigError naming the parameter.
# Models without an entry are tried with 0 for the first of GENERIC_POSITIVE they have.
BAD_VALUES: dict[str, tuple[str, Any]] = {
    "popular": ("recent_days", -1.0),
    "itemknn": ("neighbors", 0),
    "ease": ("regularization", -1.0),
    "als": ("embedding_size", 0),
    "bpr": ("learning_rate", 0.0),
    "cross": ("regularization", 0.0),
}
GENERIC_POSITIVE = ("epochs", "embedding_size", "batch_size", "neighbors")

# What "it learns" means per model:
# - "planted" (default): every held-out query ranks its planted item first;
# - "floor": the planted items' mean reciprocal rank is >= FLOOR_MRR (popularity gets 0.29 here), for
#   models that score from the user's learned factor alone and so cannot read the held-out history;
# - "popular": the most frequent item ranks first;  "skip: <reason>": not tested.
LEARNS: dict[str, str] = {"popular": "popular", "mf": "floor", "ncf": "floor"}
FLOOR_MRR = 0.5


@dataclass(frozen=True)
class Planted:
    """Training data with two planted rules and the held-out queries that test them.

    Items form 4 clusters of 10; every user takes 5 items of one cluster. In cluster 0 every user
    takes A then B then C (plus two other cluster-0 items before them), in cluster 1 D, E, F likewise,
    so "A and B -> C" and "D and E -> F" hold for every user who shows them. The planted items are
    equally frequent, so popularity cannot rank both answers first. For three users of each planted
    cluster the last item (C or F) is held out: `queries[k]` (that user, its training history) must
    rank `targets[k]` first once its history is excluded.
    """

    train: Interactions
    queries: list[Query]
    targets: np.ndarray
    most_popular: int  # index of the most frequent training item


def planted_data(seed: int = 0, users_per_cluster: int = 30, held_out: int = 3) -> Planted:
    """Build the planted dataset (deterministic for a seed)."""
    rng = np.random.default_rng(seed)
    items = IdMap(f"i{k}" for k in range(40))
    users = IdMap()
    seqs: list[list[int]] = []
    for cluster in range(4):
        base = 10 * cluster
        for _ in range(users_per_cluster):
            users.add(f"u{len(seqs)}")
            if cluster < 2:  # planted: two other items, then the rule's three items in order
                others = rng.choice(np.arange(base + 3, base + 10), size=2, replace=False)
                seqs.append([*others.tolist(), base, base + 1, base + 2])
            else:
                seqs.append((base + rng.choice(10, size=5, replace=False)).tolist())
    held = [c * users_per_cluster + j for c in (0, 1) for j in range(held_out)]
    for u in held:
        seqs[u] = seqs[u][:-1]
    user = np.repeat(np.arange(len(seqs)), [len(s) for s in seqs])
    item = np.concatenate([np.asarray(s) for s in seqs])
    ts = np.concatenate([1_700_000_000 + 3600 * np.arange(len(s)) for s in seqs])
    train = Interactions(user=user, item=item, users=users, items=items, timestamp=ts)  # no ratings
    queries = [Query(user=u, history=np.asarray(seqs[u], dtype=np.int32)) for u in held]
    targets = np.array([2 if u < users_per_cluster else 12 for u in held])
    counts = np.bincount(item, minlength=len(items))
    return Planted(train, queries, targets, int(np.argmax(counts)))


@dataclass(frozen=True)
class ContractSettings:
    small_configs: dict[str, dict[str, Any]]
    bad_values: dict[str, tuple[str, Any]]
    generic_positive: tuple[str, ...]
    learns: dict[str, str]
    floor_mrr: float


@pytest.fixture(scope="session")
def planted() -> Planted:
    return planted_data()


@pytest.fixture(scope="session")
def contract() -> ContractSettings:
    """The per-model settings above, for tests/models/test_contract.py."""
    return ContractSettings(SMALL_CONFIGS, BAD_VALUES, GENERIC_POSITIVE, LEARNS, FLOOR_MRR)


@pytest.fixture(scope="session")
def beauty(shared_data: Path) -> tuple[ModuleType, Any, Any, Any]:
    """(benchmarks/tune_classic.py as a module, train, validation split, test split) of Amazon Beauty."""
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "tune_classic.py"
    spec = importlib.util.spec_from_file_location("tune_classic", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("tune_classic", module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    train, valid, test = module.load_beauty(shared_data)
    return module, train, valid, test
