"""Training and query batches: users' events as flat sequences, training windows, length-grouped batches,
right-padded (B, L) arrays, sampled negatives; and the (B, L) arrays of scoring queries."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from shoprec.data import Interactions
from shoprec.errors import DataError
from shoprec.models.base import Query
from shoprec.models.softmax import log_uniform_sampler
from shoprec.models.transformer.config import N_GAP_BUCKETS


@dataclass
class Sequences:
    """All users' events in time order as flat arrays (items 1-based), with per-user offsets. Narrow dtypes
    (10M events: 60 MB instead of 240 MB as int64); batches are widened to int64 (make_batch)."""

    items: np.ndarray  # int32, 1-based
    events: np.ndarray  # int8, event code + 1
    gaps: np.ndarray  # int8 gap bucket
    offsets: np.ndarray  # int64 (n_users + 1,)


def gap_buckets(timestamps: np.ndarray, same_user: np.ndarray) -> np.ndarray:
    """Log2 bucket of the time since the previous event of the same user (0 when unknown or none)."""
    gap = np.diff(timestamps.astype(np.int64), prepend=timestamps[:1])
    gap = np.where(same_user, gap, 0)
    bucket = np.where(gap > 0, np.floor(np.log2(np.maximum(gap, 1))).astype(np.int64) + 1, 0)
    return np.minimum(bucket, N_GAP_BUCKETS - 1)


def build_sequences(train: Interactions) -> Sequences:
    """The training events (the snapshot's arrays) sorted by user and time, as flat arrays: no per-event
    Python object."""
    order, offsets = train.sequence_rows()
    users = train.user[order]
    same_user = np.r_[False, users[1:] == users[:-1]]
    return Sequences(items=(train.item[order] + 1).astype(np.int32),
                     events=(train.event_type[order] + 1).astype(np.int8),
                     gaps=gap_buckets(train.timestamp[order], same_user).astype(np.int8),
                     offsets=offsets.astype(np.int64))


def training_windows(seqs: Sequences, max_len: int) -> np.ndarray:
    """(n, 2) [start, stop) windows of at most max_len + 1 events: every user's newest window, and for
    users with longer histories also the earlier ones (each event is a target once). Users in order, each
    user's windows newest first; computed on the arrays (no loop over users): a user with n >= 2 events
    has ceil((n - 1) / max_len) windows, the j-th (from the newest) stopping at stop - j * max_len."""
    lo, hi = seqs.offsets[:-1].astype(np.int64), seqs.offsets[1:].astype(np.int64)
    count = np.where(hi - lo >= 2, (hi - lo - 2) // max_len + 1, 0)
    user = np.repeat(np.arange(len(lo)), count)
    j = np.arange(int(count.sum()), dtype=np.int64) - np.repeat(np.cumsum(count) - count, count)
    stop = hi[user] - j * max_len
    start = np.maximum(lo[user], stop - max_len - 1)
    return np.stack([start, stop], axis=1).astype(np.int64).reshape(-1, 2)


def length_batches(windows: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Window indices in batches of similar length (little padding), in random order. Every batch holds
    about the same number of targets (batch_size x the mean per window: many short windows or a few long
    ones), so that with the loss averaged per batch every target weighs the same, as with random batches."""
    targets = windows[:, 1] - windows[:, 0] - 1
    order = np.lexsort((rng.random(len(targets)), targets))
    budget = max(batch_size * float(targets.mean()), 1.0)
    group = np.floor((np.cumsum(targets[order]) - 1) / budget).astype(np.int64)
    cuts = np.flatnonzero(np.diff(group)) + 1
    batches = np.split(order, cuts)
    return [batches[i] for i in rng.permutation(len(batches))]


def make_batch(seqs: Sequences, windows: np.ndarray, with_seen: bool, future: int = 1) -> dict[str, np.ndarray]:
    """Right-padded inputs (B, L), next-item targets (B, L), optionally seen items (B, L, L) and, for
    future > 1, the next `future` items after each position (B, L, future) (0 past the window's end).
    Gathered from the flat arrays for the whole batch at once."""
    lengths = windows[:, 1] - windows[:, 0] - 1
    n_max = int(lengths.max())
    steps = np.arange(n_max)
    real = steps[None, :] < lengths[:, None]  # (B, L)
    at = np.where(real, windows[:, :1] + steps[None, :], 0)  # (B, L) flat index of each input event
    out = {"items": np.where(real, seqs.items[at], 0).astype(np.int64),
           "events": np.where(real, seqs.events[at], 0).astype(np.int64),
           "gaps": np.where(real, seqs.gaps[at], 0).astype(np.int64),
           "targets": np.where(real, seqs.items[at + real], 0).astype(np.int64)}
    if future > 1:  # the k-th next item after position t (index at + 1 + k) while it is inside the window
        k = np.arange(future)
        inside = real[:, :, None] & (steps[None, :, None] + k[None, None, :] < lengths[:, None, None])
        nxt = np.where(inside, at[:, :, None] + 1 + k[None, None, :], 0)
        out["future"] = np.where(inside, seqs.items[nxt], 0).astype(np.int64)
    out["lengths"] = lengths
    if with_seen:  # seen[b, t] = items visible at position t: items[b, :t + 1]
        causal = np.tril(np.ones((n_max, n_max), dtype=bool))
        out["seen"] = np.where(causal[None], out["items"][:, None, :], 0)
    return out


# ------------------------------------------------------------------------ sampled negatives (loss="sampled")
@dataclass(frozen=True)
class NegativeSampler:
    """Log-uniform negatives over the items ranked by training popularity, and their log Q, in time and
    memory per step proportional to the negatives (never to the catalog): a 1M-item catalog costs the same
    per step as a 10k-item one. Built once per fit (negative_sampler)."""

    order: Tensor  # (n_items,) item rows (1-based) by popularity rank
    p_item: Tensor  # (n_items + 1,) float64 log-uniform probability of each item row (0 for padding)
    unigram: Tensor  # (n_items + 1,) float64 training frequency of each item row

    def sample(self, n_neg: int, gen: torch.Generator) -> Tensor:
        """n_neg item rows, rank r drawn with P(r) = log((r+2)/(r+1)) / log(n+1) by inverting its CDF:
        r = floor((n+1)^u) - 1 for u uniform in [0, 1)."""
        n = len(self.order)
        u = torch.rand(n_neg, generator=gen, dtype=torch.float64, device=self.order.device)
        ranks = (torch.exp(u * math.log(n + 1)).floor().long() - 1).clamp_(0, n - 1)
        return self.order[ranks]

    def log_q(self, items: Tensor, n_neg: int, n_targets: int) -> Tensor:
        """log of each item row's expected count among a step's candidates (n_targets targets drawn by
        popularity + n_neg negatives); 0 for the padding row."""
        q = n_targets * self.unigram[items] + n_neg * self.p_item[items]
        return torch.where(items == 0, 0.0, torch.log(q.clamp(min=1e-12))).float()


def negative_sampler(counts: np.ndarray, device: torch.device) -> NegativeSampler:
    """The sampler of a fit from the training counts per item row (row 0 = padding)."""
    order, p_rank = log_uniform_sampler(counts[1:].astype(np.float64))
    p_item = np.zeros(len(counts), dtype=np.float64)
    p_item[order + 1] = p_rank
    unigram = counts.astype(np.float64) / counts.sum()
    return NegativeSampler(torch.from_numpy(order + 1).to(device), torch.from_numpy(p_item).to(device),
                           torch.from_numpy(unigram).to(device))


def sample_negatives(sampler: NegativeSampler, n_neg: int, n_targets: int,
                     gen: torch.Generator) -> tuple[Tensor, Callable[[Tensor], Tensor]]:
    """A step's negatives and its log Q as a function of the candidate item rows (SeqNet.forward asks it for
    the candidates only)."""
    return sampler.sample(n_neg, gen), functools.partial(sampler.log_q, n_neg=n_neg, n_targets=n_targets)


# ------------------------------------------------------------------------ scoring queries
def query_arrays(queries: Sequence[Query], n_items: int, max_len: int, default_event: int) -> dict[str, np.ndarray]:
    """Right-padded (B, L) arrays of each query's newest known items (at most max_len), their event types
    and gap buckets, built for the whole batch at once (serving's leave-one-out batches are ~20 rows)."""
    sizes = np.array([len(q.history) for q in queries], dtype=np.int64)
    for q, n in zip(queries, sizes.tolist(), strict=True):
        for name, col in (("event_types", q.event_types), ("timestamps", q.timestamps)):
            if col is not None and len(col) != n:
                raise DataError(f"query {name} has {len(col)} entries for a history of {n} items")
    total = int(sizes.sum())
    starts = np.cumsum(sizes) - sizes
    row = np.repeat(np.arange(len(queries)), sizes)
    hist = (np.concatenate([np.asarray(q.history, dtype=np.int64) for q in queries]) if total
            else np.zeros(0, dtype=np.int64))
    events = np.full(total, default_event, dtype=np.int64)
    gaps = np.zeros(total, dtype=np.int64)
    with_types = [i for i, q in enumerate(queries) if q.event_types is not None and sizes[i]]
    for i in with_types:
        events[starts[i]:starts[i] + sizes[i]] = np.asarray(queries[i].event_types, dtype=np.int64) + 1
    timed = np.array([q.timestamps is not None for q in queries], dtype=bool)
    if timed.any():
        stamps = np.concatenate([np.asarray(q.timestamps, dtype=np.float64) if q.timestamps is not None
                                 else np.zeros(len(q.history)) for q in queries])
        same_user = np.ones(total, dtype=bool)
        same_user[starts[sizes > 0]] = False  # the first event of a history has no previous one
        gaps = np.where(timed[row], gap_buckets(stamps, same_user), 0)
    known = (hist >= 0) & (hist < n_items)
    # rank of each known event from the newest one of its row (0 = newest); keep the newest max_len
    known_per_row = np.bincount(row[known], minlength=len(queries)).astype(np.int64)
    order = np.cumsum(known) - 1  # index among all known events
    first_known = np.cumsum(known_per_row) - known_per_row
    from_newest = known_per_row[row] - 1 - (order - first_known[row])
    keep = known & (from_newest < max_len)
    lengths = np.minimum(known_per_row, max_len)
    position = lengths[row] - 1 - from_newest  # column in the padded arrays, oldest first
    width = max(int(lengths.max()) if len(lengths) else 1, 1)
    out = {k: np.zeros((len(queries), width), dtype=np.int64) for k in ("items", "events", "gaps")}
    rows, cols = row[keep], position[keep]
    out["items"][rows, cols] = hist[keep] + 1
    out["events"][rows, cols] = events[keep]
    out["gaps"][rows, cols] = gaps[keep]
    out["lengths"] = np.maximum(lengths, 1)
    return out


def by_length(queries: Sequence[Query], size: int) -> list[np.ndarray]:
    """Query positions in chunks of `size`, ordered by history length."""
    order = np.argsort([len(q.history) for q in queries], kind="stable")
    return [order[i:i + size] for i in range(0, len(order), size)]
