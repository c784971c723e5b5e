"""Batched ranking evaluation: model.score -> exclusions -> ranking.top_k / target_ranks -> per-user metrics.

A `RankingTask` holds one query per evaluated user, the relevant items (one for leave-one-out, a set for
temporal) and the items to exclude (the user's seen items under the strict protocol). Relevant items are
never excluded (the same rule as `ranking.target_ranks` for a single target). Scoring runs in batches
(`batch_size` queries) so memory stays bounded at batch_size x n_items floats.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from shoprec.data import Interactions
from shoprec.errors import DataError
from shoprec.evaluation import metrics as M
from shoprec.models.base import Query, Recommender
from shoprec.ranking import apply_exclusions, target_ranks, top_k
from shoprec.rules import ItemTable, Rules, Vectors, apply_rules

# Diversity needs an item-item similarity matrix; above this many (estimated) non-zeros it is skipped.
MAX_SIMILARITY_NNZ = 50_000_000


@dataclass
class RankingTask:
    """One query per evaluated user; `relevant` and `exclude` are (n_queries, n_items) 0/1 CSR matrices."""

    users: np.ndarray
    queries: list[Query]
    relevant: sp.csr_matrix
    exclude: sp.csr_matrix | None

    def __len__(self) -> int:
        return len(self.queries)


@dataclass
class ItemStats:
    """Training-data facts about items for the beyond-accuracy metrics."""

    n_items: int
    self_information: np.ndarray
    percentile: np.ndarray
    similarity: sp.csr_matrix | None
    notes: list[str] = field(default_factory=list)

    @classmethod
    def from_train(cls, train: Interactions) -> ItemStats:
        x = train.to_csr(binary=True)
        user_counts = np.diff(x.tocsc().indptr)
        n_active = int((np.diff(x.indptr) > 0).sum())
        notes = ["diversity: 1 - mean pairwise cosine of item co-occurrence (binary training user-item columns)"]
        per_user = np.diff(x.indptr).astype(np.float64)
        similarity = None
        if float((per_user**2).sum()) <= MAX_SIMILARITY_NNZ:
            similarity = M.cooccurrence_cosine(x)
        else:
            notes = ["diversity skipped: the item co-occurrence matrix would be too large"]
        return cls(n_items=train.n_items, self_information=M.self_information(user_counts, max(n_active, 1)),
                   percentile=M.popularity_percentile(user_counts), similarity=similarity, notes=notes)


@dataclass
class RankingOutcome:
    per_user: dict[str, np.ndarray]
    metrics: dict[str, float]
    topk: np.ndarray
    n_unscorable: int
    seconds: float


# ------------------------------------------------------------------------------ task building
def history_queries(history: Interactions, users: np.ndarray) -> list[Query]:
    """One Query per user: its events in `history` in time order, with event types and timestamps."""
    order, bounds = history.sequence_rows()
    items, types, times = history.item[order], history.event_type[order], history.timestamp[order]
    out = []
    for u in users.tolist():
        a, b = bounds[u], bounds[u + 1]
        out.append(Query(user=u, history=items[a:b], event_types=types[a:b], timestamps=times[a:b]))
    return out


def user_rows(data: Interactions, users: np.ndarray) -> sp.csr_matrix:
    """(len(users), n_items) 0/1 matrix of the items each listed user has in `data`."""
    x = data.to_csr(binary=True, weighted=False)
    return sp.csr_matrix(x[users], dtype=np.float32)


def make_task(history: Interactions, targets: Interactions, *, exclude_seen: bool) -> RankingTask:
    """Users with at least one target event; relevant = their distinct target items; queries from history."""
    users = np.unique(targets.user).astype(np.int64)
    return RankingTask(
        users=users,
        queries=history_queries(history, users),
        relevant=user_rows(targets, users),
        exclude=user_rows(history, users) if exclude_seen else None,
    )


# ------------------------------------------------------------------------------ evaluation
def evaluate_ranking(
    model: Recommender,
    task: RankingTask,
    ks: tuple[int, ...],
    stats: ItemStats,
    *,
    batch_size: int = 1024,
    progress: bool = False,
    fallback: Recommender | None = None,
    rules: Rules | None = None,
    items: ItemTable | None = None,
    vectors: Vectors | None = None,
) -> RankingOutcome:
    """Score the task's queries in batches and compute per-user accuracy and beyond-accuracy metrics.

    Queries the model cannot score count as misses, or are scored by `fallback` when one is given
    (`n_unscorable` counts them either way). With business `rules` (shoprec.rules; `items`: the model's items
    as an ItemTable, in the model's index order), each list is built by the rules' Plan, as serving builds it,
    and a relevant item's rank is its position in that list (beyond it: a miss); `vectors`: item vectors for
    the diversity rule (model indices -> vectors), else it compares categories."""
    if rules is not None and items is None:
        raise DataError("evaluating with rules needs the items (an ItemTable in the model's item order)")
    t0 = time.perf_counter()
    n, kmax = len(task), max(ks)
    topk = np.full((n, kmax), -1, dtype=np.int32)
    first_rank = np.full(n, np.inf)
    scorable = np.array([model.can_score(q) for q in task.queries], dtype=bool)
    answered = scorable if fallback is None else np.ones(n, dtype=bool)
    rows = np.flatnonzero(answered)
    for start in _progress(range(0, len(rows), batch_size), progress, len(rows), batch_size):
        sel = rows[start:start + batch_size]
        scores = _score_with_fallback(model, fallback, [task.queries[i] for i in sel], scorable[sel])
        excl = task.exclude[sel] if task.exclude is not None else None
        if rules is not None and items is not None:
            topk[sel], first_rank[sel] = rank_batch_with_rules(scores, task.relevant[sel], excl, kmax, rules, items,
                                                                    vectors)
        else:
            topk[sel], first_rank[sel] = rank_batch(scores, task.relevant[sel], excl, kmax, model.name)
    n_rel = np.diff(task.relevant.indptr)
    hits = _hits(topk, task.relevant)
    per_user = M.accuracy_metrics(hits, n_rel, first_rank, ks)
    per_user.update(_beyond(topk, ks, stats, answered))
    metrics = {name: _mean(v) for name, v in per_user.items()}
    for k in ks:
        metrics[f"Coverage@{k}"] = M.catalog_coverage(topk, stats.n_items, k)
    return RankingOutcome(per_user=per_user, metrics=metrics, topk=topk, n_unscorable=int((~scorable).sum()),
                          seconds=time.perf_counter() - t0)


def _score_with_fallback(model: Recommender, fallback: Recommender | None, queries: list[Query],
                         scorable: np.ndarray) -> np.ndarray:
    """model.score for the scorable queries, fallback.score for the others (same item space)."""
    if fallback is None or scorable.all():
        return model.score(queries)
    scores = np.empty((len(queries), model.n_items), dtype=np.float32)
    for mask, scorer in ((scorable, model), (~scorable, fallback)):
        if mask.any():
            scores[mask] = scorer.score([q for q, m in zip(queries, mask, strict=True) if m])
    return scores


def rank_batch(scores: np.ndarray, relevant: sp.csr_matrix, exclude: sp.csr_matrix | None, k: int,
               model_name: str = "") -> tuple[np.ndarray, np.ndarray]:
    """(top-k lists, 0-based rank of the best relevant item) for one batch; relevant items stay rankable."""
    scores = np.asarray(scores, dtype=np.float32)
    rel_rows, rel_cols = relevant.nonzero()
    s = scores
    if exclude is not None:
        s = scores.copy()
        apply_exclusions(s, exclude)
        s[rel_rows, rel_cols] = scores[rel_rows, rel_cols]
    try:
        lists, _ = top_k(s, k, copy=False)  # raises on NaN among the rankable scores
    except ValueError:
        bad = np.flatnonzero(np.isnan(s).any(axis=1))
        row = int(bad[0]) if len(bad) else "?"
        raise DataError(f"model {model_name!r} returned NaN scores (batch row {row})") from None
    vals = s[rel_rows, rel_cols]
    # best relevant item per row: highest score, then lowest index (the ranking's tie rule)
    order = np.lexsort((rel_cols, -vals, rel_rows))
    first = np.unique(rel_rows[order], return_index=True)[1]
    best = np.zeros(len(s), dtype=np.int64)
    best[rel_rows[order][first]] = rel_cols[order][first]
    ranks = target_ranks(s, best).astype(np.float64)
    ranks[~np.isfinite(s[np.arange(len(s)), best])] = np.inf  # a -inf item is never recommended
    return lists, ranks


def rank_batch_with_rules(scores: np.ndarray, relevant: sp.csr_matrix, exclude: sp.csr_matrix | None, k: int,
                          rules: Rules, items: ItemTable, vectors: Vectors | None = None
                          ) -> tuple[np.ndarray, np.ndarray]:
    """rank_batch's (top-k lists, 0-based rank of the first relevant item) with the lists built under `rules`
    (shoprec.rules.apply_rules: the serving path's Plan); a relevant item outside the list ranks inf."""
    s = np.asarray(scores, dtype=np.float32).copy()
    if exclude is not None:
        apply_exclusions(s, exclude)
        rel_rows, rel_cols = relevant.nonzero()
        s[rel_rows, rel_cols] = np.asarray(scores, dtype=np.float32)[rel_rows, rel_cols]
    lists, _, _ = apply_rules(s, rules, items, k, vectors=vectors)
    hits = _hits(lists, relevant)
    first = np.where(hits.any(axis=1), hits.argmax(axis=1), np.inf).astype(np.float64)
    return lists, first


def _hits(topk: np.ndarray, relevant: sp.csr_matrix) -> np.ndarray:
    """hits[u, j]: whether topk[u, j] is one of u's relevant items (vectorised via sorted keys)."""
    n_items = relevant.shape[1]
    r, c = relevant.nonzero()
    keys = np.sort(r.astype(np.int64) * n_items + c)
    cand = np.arange(len(topk), dtype=np.int64)[:, None] * n_items + topk
    pos = np.minimum(np.searchsorted(keys, cand), max(len(keys) - 1, 0))
    found = keys[pos] == cand if len(keys) else np.zeros(cand.shape, dtype=bool)
    return found & (topk >= 0)


def _beyond(topk: np.ndarray, ks: tuple[int, ...], stats: ItemStats, scorable: np.ndarray) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    diversity = M.intra_list_diversities(topk, stats.similarity, ks) if stats.similarity is not None else {}
    for k in ks:
        out[f"Novelty@{k}"] = M.list_mean(topk, stats.self_information, k)
        out[f"PopularityPct@{k}"] = M.list_mean(topk, stats.percentile, k)
        if k in diversity:
            out[f"Diversity@{k}"] = diversity[k]
    for v in out.values():
        v[~scorable] = np.nan
    return out


def _mean(values: np.ndarray) -> float:
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if len(finite) else float("nan")


def _progress(batches: range, enabled: bool, total: int, batch_size: int) -> Iterator[int]:
    if not enabled:
        yield from batches
        return
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(file=sys.stderr), transient=True) as bar:
        task = bar.add_task("scoring", total=total)
        for start in batches:
            yield start
            bar.advance(task, min(batch_size, total - start))

