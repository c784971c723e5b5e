"""The one scores -> ranked list path, shared by offline evaluation and online serving.

Ordering rule everywhere: higher score first; equal scores by lower item index. An item whose
score is -inf (excluded, filtered out, not a candidate) is never returned: rows with fewer than
k recommendable items are padded with index -1 and score -inf.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeAlias

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
    if sp.issparse(exclude):
        csr = sp.csr_matrix(exclude)
        rows = np.repeat(np.arange(csr.shape[0]), np.diff(csr.indptr))
        cols = csr.indices
    else:
        lens = [len(e) for e in exclude]
        rows = np.repeat(np.arange(len(lens)), lens)
        cols = np.concatenate([np.asarray(e, dtype=np.int64) for e in exclude]) if lens else np.zeros(0, int)
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


def target_ranks(scores: np.ndarray, targets: np.ndarray, *, exclude: Exclude = None) -> np.ndarray:
    """0-based rank of each row's target under the ordering rule, after exclusions.

    The target itself is never excluded. rank = #items scoring higher + #items scoring equal with a
    lower index; this is exactly the target's position in `top_k` of the same row.
    """
    s = _as_2d(scores)
    if exclude is not None:  # exclusions write -inf: work on a copy (without them, s is only read)
        s = s.copy()
    targets = np.asarray(targets, dtype=np.int64)
    if len(targets) != s.shape[0]:
        raise ValueError(f"{len(targets)} targets for {s.shape[0]} score rows")
    apply_exclusions(s, exclude, keep=targets)
    t = s[np.arange(len(targets)), targets][:, None]
    higher = np.count_nonzero(s > t, axis=1)
    equal = s == t
    ties = np.flatnonzero(np.count_nonzero(equal, axis=1) > 1)  # rows where other items tie the target
    equal_before = np.zeros(len(targets), dtype=np.int64)
    if len(ties):
        cols = np.arange(s.shape[1])[None, :]
        equal_before[ties] = np.count_nonzero(equal[ties] & (cols < targets[ties, None]), axis=1)
    return (higher + equal_before).astype(np.int64)
