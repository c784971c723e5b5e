"""Training losses as plain functions of scores (logits), all reduced to a scalar mean.

Shapes: B = batch, N = negatives per positive, C = number of classes (items).

    mse_loss(pred (B,), target (B,))                     squared error, for explicit ratings
    bce_loss(pos (B,), neg (B, N))                       pointwise: positives -> 1, sampled negatives -> 0
    bpr_loss(pos (B,), neg (B, N))                       pairwise: -log sigmoid(pos - neg)
    bpr_max_loss(pos (B,), neg (B, N), reg)              GRU4Rec's BPR-max (Hidasi & Karatzoglou 2018)
    full_softmax_ce(logits (B, C), targets (B,))         cross-entropy over every item
    sampled_softmax_ce(pos (B,), neg (B, N), log_q...)   cross-entropy over the positive and N sampled items,
                                                         with optional logQ correction for the sampler
Optional `weight` (B,) arguments weight each positive (e.g. by event importance).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

IGNORE_INDEX = -100  # targets equal to this (padding) do not count in full_softmax_ce


def _weighted_mean(per_row: Tensor, weight: Tensor | None) -> Tensor:
    if weight is None:
        return per_row.mean()
    return (per_row * weight).sum() / weight.sum().clamp_min(1e-12)


def mse_loss(pred: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
    """Mean squared error between predicted and observed ratings."""
    return _weighted_mean((pred - target) ** 2, weight)


def bce_loss(pos: Tensor, neg: Tensor, weight: Tensor | None = None) -> Tensor:
    """Binary cross-entropy on logits: each positive counts as label 1, each of its N negatives as label 0.

    Per positive row: softplus(-pos) + sum_j softplus(neg_j), averaged over rows (NCF's log loss).
    """
    per_row = F.softplus(-pos) + F.softplus(neg).sum(dim=-1)
    return _weighted_mean(per_row, weight)


def bpr_loss(pos: Tensor, neg: Tensor, weight: Tensor | None = None) -> Tensor:
    """Bayesian personalised ranking: mean over pairs of -log sigmoid(pos - neg)."""
    per_row = -F.logsigmoid(pos[:, None] - neg).mean(dim=-1)
    return _weighted_mean(per_row, weight)


def bpr_max_loss(pos: Tensor, neg: Tensor, reg: float = 1.0, weight: Tensor | None = None) -> Tensor:
    """BPR-max: -log sum_j s_j sigmoid(pos - neg_j) + reg * sum_j s_j neg_j^2, with s = softmax(neg).

    The softmax weights focus the loss on the negatives that currently score highest.
    """
    s = torch.softmax(neg, dim=-1)
    hit = (s * torch.sigmoid(pos[:, None] - neg)).sum(dim=-1)
    per_row = -torch.log(hit.clamp_min(1e-24)) + reg * (s * neg**2).sum(dim=-1)
    return _weighted_mean(per_row, weight)


def full_softmax_ce(logits: Tensor, targets: Tensor, weight: Tensor | None = None) -> Tensor:
    """Cross-entropy of each row's target over all C classes; rows with target IGNORE_INDEX are skipped."""
    keep = targets != IGNORE_INDEX
    if not bool(keep.any()):
        return logits.sum() * 0.0
    per_row = F.cross_entropy(logits[keep], targets[keep], reduction="none")
    return _weighted_mean(per_row, None if weight is None else weight[keep])


def sampled_softmax_ce(
    pos: Tensor,
    neg: Tensor,
    *,
    log_q_pos: Tensor | None = None,
    log_q_neg: Tensor | None = None,
    weight: Tensor | None = None,
) -> Tensor:
    """Softmax cross-entropy over [positive, N negatives] per row (the positive is class 0).

    With a non-uniform sampler, pass the log sampling probabilities: logits become score - log q
    (the logQ correction), which makes the sampled loss an unbiased-in-the-limit full softmax.
    """
    if log_q_pos is not None:
        pos = pos - log_q_pos
    if log_q_neg is not None:
        neg = neg - log_q_neg
    logits = torch.cat([pos[:, None], neg], dim=1)
    per_row = torch.logsumexp(logits, dim=1) - logits[:, 0]
    return _weighted_mean(per_row, weight)
