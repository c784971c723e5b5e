"""Training and query batches: users' events as flat sequences, training windows, length-grouped batches,
right-padded (B, L) arrays, sampled negatives; and the (B, L) arrays of scoring queries."""

from __future__ import annotations

from collections.abc import Sequence
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
    """All users' events in time order as flat arrays (items 1-based), with per-user offsets."""

    items: np.ndarray  # int64, 1-based
    events: np.ndarray  # int64, event code + 1
    gaps: np.ndarray  # int64 gap bucket
    offsets: np.ndarray  # (n_users + 1,)


def gap_buckets(timestamps: np.ndarray, same_user: np.ndarray) -> np.ndarray:
    """Log2 bucket of the time since the previous event of the same user (0 when unknown or none)."""
    gap = np.diff(timestamps.astype(np.int64), prepend=timestamps[:1])
    gap = np.where(same_user, gap, 0)
    bucket = np.where(gap > 0, np.floor(np.log2(np.maximum(gap, 1))).astype(np.int64) + 1, 0)
    return np.minimum(bucket, N_GAP_BUCKETS - 1)


def build_sequences(train: Interactions) -> Sequences:
    order, offsets = train.sequence_rows()
    users = train.user[order]
    same_user = np.r_[False, users[1:] == users[:-1]]
    return Sequences(items=train.item[order].astype(np.int64) + 1,
                     events=train.event_type[order].astype(np.int64) + 1,
                     gaps=gap_buckets(train.timestamp[order], same_user), offsets=offsets.astype(np.int64))


def training_windows(seqs: Sequences, max_len: int) -> np.ndarray:
    """(n, 2) [start, stop) windows of at most max_len + 1 events: every user's newest window, and for
    users with longer histories also the earlier ones (each event is a target once)."""
    out = []
    for u in range(len(seqs.offsets) - 1):
        lo, stop = int(seqs.offsets[u]), int(seqs.offsets[u + 1])
        while stop - lo >= 2:
            start = max(lo, stop - max_len - 1)
            out.append((start, stop))
            stop = start + 1
    return np.array(out, dtype=np.int64).reshape(-1, 2)


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
    future > 1, the next `future` items after each position (B, L, future) (0 past the window's end)."""
    lengths = windows[:, 1] - windows[:, 0] - 1
    b, n_max = len(windows), int(lengths.max())
    out = {k: np.zeros((b, n_max), dtype=np.int64) for k in ("items", "events", "gaps", "targets")}
    for r, (start, stop) in enumerate(windows):
        n = stop - start - 1
        out["items"][r, :n] = seqs.items[start:stop - 1]
        out["events"][r, :n] = seqs.events[start:stop - 1]
        out["gaps"][r, :n] = seqs.gaps[start:stop - 1]
        out["targets"][r, :n] = seqs.items[start + 1:stop]
    if future > 1:
        out["future"] = np.zeros((b, n_max, future), dtype=np.int64)
        for r, (start, stop) in enumerate(windows):
            for k in range(min(future, stop - start - 1)):
                out["future"][r, :stop - start - 1 - k, k] = seqs.items[start + 1 + k:stop]
    out["lengths"] = lengths
    if with_seen:  # seen[b, t] = items visible at position t: items[b, :t + 1]
        causal = np.tril(np.ones((n_max, n_max), dtype=bool))
        out["seen"] = np.where(causal[None], out["items"][:, None, :], 0)
    return out


# ------------------------------------------------------------------------ sampled negatives (loss="sampled")
def negative_sampler(counts: np.ndarray, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    """(items by popularity, their log-uniform probabilities, unigram probability per item) from the
    training counts per item row (row 0 = padding)."""
    order, p_rank = log_uniform_sampler(counts[1:].astype(np.float64))
    unigram = counts.astype(np.float64) / counts.sum()
    return (torch.from_numpy(order + 1).to(device), torch.from_numpy(p_rank).to(device),
            torch.from_numpy(unigram).to(device))


def sample_negatives(sampler: tuple[Tensor, Tensor, Tensor], n_neg: int, n_targets: int,
                      gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """Log-uniform negatives and log Q = log(expected count among candidates) per item (0 = padding)."""
    order, p_rank, unigram = sampler
    ranks = torch.multinomial(p_rank, n_neg, replacement=True, generator=gen)
    q = n_targets * unigram.clone()
    q[order] += n_neg * p_rank
    q[0] = 1.0
    return order[ranks], torch.log(q.clamp(min=1e-12)).float()


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
