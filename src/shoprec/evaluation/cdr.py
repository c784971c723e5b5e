"""Pieces of the `cdr-cold` protocol (run by protocols.evaluate_cdr_cold): cross-domain recommendation to
users who are cold in the target domain.

A dataset with domains (CDRIB: folders X_Y and Y_X) and a target "X_Y": the users of domain X's valid /
test files have no domain-X events in training. For each of them, the query is their domain-Y training
history (time order); the model ranks ALL domain-X items (every item of another domain is excluded, and so
are the user's own domain-X training items); relevant = their distinct test (or valid) items.

- training "joint": domain X train + domain Y train (the cold users' Y history included), one model over
  the shared id maps. "target-only": domain X train alone, and the query carries neither the user nor the
  Y history (the model knows nothing of a cold user), so most models cannot score it and the user gets
  the popularity of domain X (the output says how many users fell back).
- metrics: the engine's per-user HR / Recall / NDCG / MAP / Precision @k (NDCG's ideal DCG over
  min(|relevant|, k)), plus `HR@k_pairs` = hits in the top k / relevant (user, item) pairs, over all users.
  Coverage@k is measured over domain-X items only.
- the validation users (valid split) reach `fit` as a RankingValidation (one query per valid pair) when
  the test users are evaluated with joint training; `split="valid"` evaluates the validation users instead (for tuning).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import scipy.sparse as sp

from shoprec.data import Interactions
from shoprec.errors import ConfigError
from shoprec.evaluation.engine import RankingTask, history_queries, user_rows
from shoprec.models.base import Query, RankingValidation

CDR_TRAINING = ("joint", "target-only")
CDR_SPLITS = ("test", "valid")


def parse_target(target: str | None, domains: Mapping[str, Any]) -> tuple[str, str]:
    """'X_Y' -> (target domain X, source domain Y). X alone names X when there are two domains, and so does a
    CDRIB folder name whose parts after X include the other domain ("cell_phone_electronics": the domains
    are named "cell" and "electronics" after their folders' first parts)."""
    names = list(domains)
    if not target:
        raise ConfigError(f"protocol 'cdr-cold' needs --target X_Y (domains: {', '.join(names)})")
    for x in names:
        if target != x and not target.startswith(x + "_"):
            continue
        y = target[len(x) + 1:]
        if y in domains and y != x:
            return x, y
        other = [n for n in names if n != x]
        if len(other) == 1 and (not y or other[0] in y.split("_")):
            return x, other[0]
    raise ConfigError(f"--target {target!r}: not a pair of this dataset's domains "
                      f"(valid: {', '.join(domain_pairs(domains))})")


def domain_items(n_items: int, *parts: Interactions) -> np.ndarray:
    """Boolean mask of the items that occur in any of `parts` (one domain's splits)."""
    mask = np.zeros(n_items, dtype=bool)
    for part in parts:
        mask[part.item] = True
    return mask


def cold_task(source: Interactions | None, targets: Interactions, target_train: Interactions,
              in_target: np.ndarray, exclude_seen: bool) -> RankingTask:
    """Queries from the users' source-domain history (anonymous and empty when `source` is None: the
    model knows nothing of them); items outside the target domain are always excluded."""
    users = np.unique(targets.user).astype(np.int64)
    queries = history_queries(source, users) if source is not None else [Query() for _ in users]
    other = np.flatnonzero(~in_target).astype(np.int32)  # the same excluded columns in every row
    indptr = np.arange(len(users) + 1, dtype=np.int64) * len(other)
    exclude = sp.csr_matrix((np.ones(len(users) * len(other), dtype=np.float32), np.tile(other, len(users)), indptr),
                            shape=(len(users), len(in_target)))
    if exclude_seen:
        exclude = ((exclude + user_rows(target_train, users)) > 0).astype(np.float32).tocsr()
    return RankingTask(users=users, queries=queries, relevant=user_rows(targets, users),
                       exclude=exclude)


def pair_validation(task: RankingTask, k: int, batch_size: int) -> RankingValidation:
    """One validation query per relevant (user, item) pair of `task`, with the task's exclusions; users
    without any history are left out (no model could answer them)."""
    rel = task.relevant.tocsr()
    rows, items = rel.nonzero()
    keep = np.array([len(task.queries[r].history) > 0 for r in rows], dtype=bool)
    rows, items = rows[keep], items[keep]
    excl = task.exclude.tocsr() if task.exclude is not None else None
    per_row = [excl.indices[excl.indptr[r]:excl.indptr[r + 1]] for r in range(len(task))] if excl is not None else []
    return RankingValidation(queries=[task.queries[r] for r in rows], targets=items.astype(np.int64),
                             exclude=[per_row[r] for r in rows] if per_row else None, k=k, batch_size=batch_size)


def pair_hit_rates(per_user: dict[str, np.ndarray], n_relevant: np.ndarray, ks: tuple[int, ...]) -> dict[str, float]:
    """HR@k over (user, item) pairs: hits in the top k summed over users / relevant pairs."""
    total = float(n_relevant.sum())
    return {f"HR@{k}_pairs": float((per_user[f"Recall@{k}"] * n_relevant).sum() / total) if total else 0.0
            for k in ks}


def count_empty(queries: list[Query]) -> int:
    """How many queries have no history at all."""
    return sum(1 for q in queries if len(q.history) == 0)


def cdr_notes(x: str, y: str, split: str, training: str, n_users: int, n_x: int, fallback: int,
              no_history: int) -> list[str]:
    """What a cdr-cold run did, for the result's notes."""
    how = (f"joint training: {x} train + {y} train (the cold users' {y} history included)" if training == "joint"
           else f"target-only training: {x} train alone; the cold users' {y} history is not used")
    out = [f"cdr-cold: {n_users} {split} users of {x} with no {x} history in training; query = their "
           f"{y} training history; full ranking over all {n_x} {x} items (other domains' items excluded)",
           how,
           "HR@k_pairs: hits in the top k / relevant (user, item) pairs; Coverage@k over domain-"
           f"{x} items"]
    if fallback:
        out.append(f"{fallback} of {n_users} users could not be scored by the model and got the "
                   f"popularity of {x} (fallback)")
    if no_history:
        out.append(f"{no_history} users have no {y} training history")
    return out


def domain_pairs(domains: Mapping[str, Any]) -> list[str]:
    """Every target "X_Y" of a dataset's domains, in domain order."""
    names = list(domains)
    return [f"{a}_{b}" for a in names for b in names if a != b]
