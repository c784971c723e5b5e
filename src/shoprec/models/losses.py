"""Training losses (not softmax: those are shoprec.models.softmax) as plain functions of scores (logits),
all reduced to a scalar mean.

Shapes: B = batch, N = negatives per positive.

    mse_loss(pred (B,), target (B,))                     squared error, for explicit ratings
    bce_loss(pos (B,), neg (B, N))                       pointwise: positives -> 1, sampled negatives -> 0
    bpr_loss(pos (B,), neg (B, N))                       pairwise: -log sigmoid(pos - neg)
    bpr_max_loss(pos (B,), neg (B, N), reg)              GRU4Rec's BPR-max (Hidasi & Karatzoglou 2018)
Optional `weight` (B,) arguments weight each positive (e.g. by event importance).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def weighted_mean(per_row: Tensor, weight: Tensor | None) -> Tensor:
    if weight is None:
        return per_row.mean()
    return (per_row * weight).sum() / weight.sum().clamp_min(1e-12)


def mse_loss(pred: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
    """Mean squared error between predicted and observed ratings."""
    return weighted_mean((pred - target) ** 2, weight)


def bce_loss(pos: Tensor, neg: Tensor, weight: Tensor | None = None) -> Tensor:
    """Binary cross-entropy on logits: each positive counts as label 1, each of its N negatives as label 0.

    Per positive row: softplus(-pos) + sum_j softplus(neg_j), averaged over rows (NCF's log loss).
    """
    per_row = F.softplus(-pos) + F.softplus(neg).sum(dim=-1)
    return weighted_mean(per_row, weight)


def bpr_loss(pos: Tensor, neg: Tensor, weight: Tensor | None = None) -> Tensor:
    """Bayesian personalised ranking: mean over pairs of -log sigmoid(pos - neg)."""
    per_row = -F.logsigmoid(pos[:, None] - neg).mean(dim=-1)
    return weighted_mean(per_row, weight)


def bpr_max_loss(pos: Tensor, neg: Tensor, reg: float = 1.0, weight: Tensor | None = None) -> Tensor:
    """BPR-max: -log sum_j s_j sigmoid(pos - neg_j) + reg * sum_j s_j neg_j^2, with s = softmax(neg).

    The softmax weights focus the loss on the negatives that currently score highest.
    """
    s = torch.softmax(neg, dim=-1)
    hit = (s * torch.sigmoid(pos[:, None] - neg)).sum(dim=-1)
    per_row = -torch.log(hit.clamp_min(1e-24)) + reg * (s * neg**2).sum(dim=-1)
    return weighted_mean(per_row, weight)
