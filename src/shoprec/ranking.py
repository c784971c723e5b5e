"""The one scores -> ranked list path, shared by offline evaluation and online serving.

Ordering rule everywhere: higher score first; equal scores by lower item index. An item whose
score is -inf (excluded, filtered out, not a candidate) is never returned: rows with fewer than
k recommendable items are padded with index -1 and score -inf.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeAlias

import numpy as np
import scipy.sparse as sp

Exclude: TypeAlias = sp.spmatrix | Sequence[np.ndarray] | None


def _as_2d(scores: np.ndarray) -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float32)
    if scores.ndim == 1:
        scores = scores[None, :]
    if scores.ndim != 2:
        raise ValueError(f"scores must be 1-D or 2-D, got shape {scores.shape}")
    return scores


def apply_exclusions(scores: np.ndarray, exclude: Exclude, keep: np.ndarray | None = None) -> np.ndarray:
    """Set excluded (row, item) pairs to -inf in place; `keep[row]` (e.g. a target) is never excluded."""
    if exclude is None:
        return scores
    rows, cols = exclusion_pairs(exclude)
    if len(rows) != 0 and rows.max() >= scores.shape[0]:
        raise ValueError("exclude has more rows than scores")
    saved = scores[np.arange(len(keep)), keep].copy() if keep is not None else None
    scores[rows, cols] = -np.inf
    if keep is not None:
        scores[np.arange(len(keep)), keep] = saved
    return scores


def restrict_to_candidates(scores: np.ndarray, candidates: Sequence[np.ndarray]) -> np.ndarray:
    """Keep only candidate items per row (others become -inf); returns a new array."""
    out = np.full_like(scores, -np.inf)
    for r, cand in enumerate(candidates):
        cand = np.asarray(cand, dtype=np.int64)
        out[r, cand] = scores[r, cand]
    return out


def top_k(
    scores: np.ndarray,
    k: int,
    *,
    exclude: Exclude = None,
    candidates: Sequence[np.ndarray] | None = None,
    copy: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k item indices and scores per row, following the module's ordering rule.

    Returns (indices int32 (n, k), scores float32 (n, k)). `exclude` is a users x items sparse matrix
    or one index array per row; `candidates` restricts each row to the given items.
    """
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")
    s = _as_2d(scores)
    if candidates is not None:
        s = restrict_to_candidates(s, candidates)
    elif copy and exclude is not None:
        s = s.copy()
    s = apply_exclusions(s, exclude)
    kk = min(k, s.shape[1])
    idx, vals = _select_top(s, kk)
    idx[~np.isfinite(vals) & (vals < 0)] = -1
    if kk < k:  # pad when the catalog is smaller than k
        idx = np.pad(idx, ((0, 0), (0, k - kk)), constant_values=-1)
        vals = np.pad(vals, ((0, 0), (0, k - kk)), constant_values=-np.inf)
    return idx, vals


def top_row(scores: np.ndarray, k: int, excluded: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """`top_k` of one row without its padding: (indices int64, scores float32) of at most k items, in the
    module's order, leaving out -inf scores and the `excluded` (bool per item) ones. For a caller that ranks one
    list a few times (the business rules' passes): no 2-D copies, exclusion pairs or padding."""
    s = np.asarray(scores, dtype=np.float32).reshape(-1)
    if np.isnan(s).any():
        raise ValueError("scores must not contain NaN")
    keep = s > -np.inf if excluded is None else (s > -np.inf) & ~excluded
    found = np.flatnonzero(keep)
    if k <= 0 or len(found) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    vals = s[found]
    if len(found) > k:  # every item at or above the k-th value; its ties are cut by index below
        at = np.partition(vals, len(vals) - k)[len(vals) - k]
        above = vals >= at
        found, vals = found[above], vals[above]
    order = np.lexsort((found, -vals))[:k]
    return found[order], vals[order]


def _select_top(s: np.ndarray, kk: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-kk per row under the ordering rule, sorted. Vectorised: the kk-th largest value by
    partition, every item at or above it, and in rows with ties at that value the lowest indices."""
    n, m = s.shape
    if kk < m:
        kth = np.partition(s, m - kk, axis=1)[:, m - kk]
        selected = s >= kth[:, None]
        ties = np.flatnonzero(np.count_nonzero(selected, axis=1) > kk)
        if len(ties):  # keep the items above the kk-th value and the first tied ones (lowest indices)
            sub, at = s[ties], kth[ties, None]
            greater, equal = sub > at, sub == at
            need = kk - np.count_nonzero(greater, axis=1)
            selected[ties] = greater | (equal & (np.cumsum(equal, axis=1, dtype=np.int32) <= need[:, None]))
        flat = np.flatnonzero(selected)
        if len(flat) != n * kk:
            raise ValueError("scores must not contain NaN")
        part = flat.reshape(n, kk) - (np.arange(n, dtype=np.int64) * m)[:, None]
    else:
        part = np.broadcast_to(np.arange(m), (n, m))
    vals = np.take_along_axis(s, part, axis=1)
    order = np.lexsort((part, -vals), axis=1) if n else np.zeros((0, kk), dtype=np.int64)
    idx = np.take_along_axis(part, order, axis=1).astype(np.int32)
    return idx, np.take_along_axis(vals, order, axis=1).astype(np.float32)


def target_ranks(scores: Any, targets: np.ndarray, *, exclude: Exclude = None, chunk: int = 32) -> Any:
    """0-based rank of each row's target under the ordering rule, after exclusions.

    The target itself is never excluded. rank = #items scoring higher + #items scoring equal with a
    lower index; this is exactly the target's position in `top_k` of the same row. `scores` is a numpy
    array (only read; int64 array out) or a torch tensor (ranked on its device in inference mode; int64
    tensor out; overwritten where excluded). Counted in cache-sized row chunks (two comparisons per
    chunk); the rows with ties to their target then count the tied items before it.
    """
    if not _is_tensor(scores):
        s = _as_2d(scores)
        if exclude is not None:  # exclusions write -inf: work on a copy (without them, s is only read)
            s = s.copy()
        return _ranks(s, np.asarray(targets, dtype=np.int64), exclude, chunk, np)
    import torch

    with torch.inference_mode():
        tgt = torch.as_tensor(np.asarray(targets, dtype=np.int64), device=scores.device)
        return _ranks(scores if scores.ndim == 2 else scores[None, :], tgt, exclude, chunk, torch)


def _ranks(s: Any, tgt: Any, exclude: Exclude, chunk: int, xp: Any) -> Any:
    """`target_ranks` of (n, m) scores `s` and (n,) int64 targets, with xp = numpy or torch."""
    if len(tgt) != s.shape[0]:
        raise ValueError(f"{len(tgt)} targets for {s.shape[0]} score rows")
    on = {} if xp is np else {"device": s.device}
    if exclude is not None:
        rows, cols = exclusion_pairs(exclude)
        if len(rows) != 0 and rows.max() >= s.shape[0]:
            raise ValueError("exclude has more rows than scores")
        rows_x, cols_x = xp.asarray(rows, **on), xp.asarray(cols, **on)
        keep = cols_x != tgt[rows_x]
        s[rows_x[keep], cols_x[keep]] = -np.inf
    t = s[xp.arange(len(tgt), **on), tgt][:, None]  # (n, 1) the targets' scores
    above = xp.zeros(len(tgt), dtype=xp.int64, **on)
    at_least = xp.zeros(len(tgt), dtype=xp.int64, **on)
    for start in range(0, len(tgt), chunk):
        part, value = s[start:start + chunk], t[start:start + chunk]
        above[start:start + chunk] = (part > value).sum(1)
        at_least[start:start + chunk] = (part >= value).sum(1)
    ties = xp.nonzero(at_least - above > 1)[0] if xp is np else xp.nonzero(at_least - above > 1).flatten()
    if len(ties):  # rows where other items tie the target: the lower index ranks first
        before = (s[ties] == t[ties]) & (xp.arange(s.shape[1], **on)[None, :] < tgt[ties][:, None])
        above[ties] += before.sum(1)
    return above


def rank_discount(ranks: Any) -> Any:
    """1 / log2(rank + 2): the DCG weight of a 0-based rank (numpy array or torch tensor in, float64 out)."""
    if _is_tensor(ranks):
        import torch

        return 1.0 / torch.log2(ranks.double() + 2.0)
    return 1.0 / np.log2(np.asarray(ranks, dtype=np.float64) + 2.0)


def ndcg_from_ranks(ranks: Any, k: int) -> Any:
    """Per row NDCG@k of a single target at 0-based `ranks` (numpy array or torch tensor, float64 out):
    rank_discount(rank) inside the top k, else 0."""
    if _is_tensor(ranks):
        import torch

        return torch.where(ranks < k, rank_discount(ranks), 0.0)
    return np.where(np.asarray(ranks) < k, rank_discount(ranks), 0.0)


def hit_rate_from_ranks(ranks: Any, k: int) -> Any:
    """Per row HR@k of a single target at 0-based `ranks`: 1.0 inside the top k, else 0 (float64)."""
    return (ranks < k).double() if _is_tensor(ranks) else (np.asarray(ranks) < k).astype(np.float64)


def hits_from_ranks(ranks: np.ndarray, k: int) -> np.ndarray:
    """(n, k) hit matrix of single-target rows from the target's 0-based rank (HR@k = any hit)."""
    ranks = np.asarray(ranks)
    return np.arange(k)[None, :] == ranks[:, None]


def exclusion_pairs(exclude: Exclude) -> tuple[np.ndarray, np.ndarray]:
    """(row, column) int64 arrays of a sparse matrix or of one index array per row."""
    if exclude is None:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    if sp.issparse(exclude):
        csr = sp.csr_matrix(exclude)
        return np.repeat(np.arange(csr.shape[0]), np.diff(csr.indptr)).astype(np.int64), csr.indices.astype(np.int64)
    lens = [len(e) for e in exclude]
    cols = np.concatenate([np.asarray(e, dtype=np.int64) for e in exclude]) if sum(lens) else np.zeros(0, np.int64)
    return np.repeat(np.arange(len(lens)), lens).astype(np.int64), cols


def _is_tensor(x: Any) -> bool:
    return type(x).__module__.startswith("torch")
