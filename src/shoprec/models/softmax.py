"""THE softmax losses: over a whole item catalog, from hidden states h (N, d) and the item table (V, d), or
from ready logits.

    full_softmax_ce(logits (N, C), targets (N,))         cross-entropy of ready logits over every class
                                                         (targets IGNORE_INDEX skipped; GRU4Rec's output)
    full_softmax_loss(h, table, targets, seen, ...)      cross-entropy over every item (fused, chunked)
    sampled_softmax_loss(h, table, targets, negatives, log_q, seen)
                                                         over the batch's targets + sampled negatives, logQ-corrected
    candidate_softmax_loss(h, cand_table, cand, ...)     the same from the candidates' rows alone
    log_uniform_sampler(popularity)                      the negatives' distribution (by popularity rank)

Row 0 of the table is padding and never a class. `seen` (N, L) lists item ids to remove from each row's
softmax (0 = none), never one of the row's targets.

Why the full loss is a hand-written autograd function: the (N, V) logits are the biggest tensor of a
training step (Beauty: ~750 x 12,102 per batch). It is processed in row chunks that stay in the CPU's
cache, its gradient is formed in the same pass (softmax - target), and the two products that need it
(dL/dh = G @ table, dL/dtable = G.T @ h) run once over the whole batch in `dtype` (bfloat16 under mixed
precision: AMX / tensor-core matmuls). The chunk and gradient buffers are kept per thread and reused, so
a step does not page-fault tens of MB of fresh memory in (that alone cost ~25% of a CPU step).
Profiled with torch.profiler on the 2-core Xeon (the profile is in the git history of docs/benchmarks.md, 2026-12-02).
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from shoprec.models.losses import weighted_mean

IGNORE_INDEX = -100  # targets equal to this (padding) do not count in full_softmax_ce
CHUNK_BYTES = 8 << 20  # logits per softmax chunk: about 8 MB
_buffers = threading.local()  # per-thread reusable buffers (two trainings in one process never share one)


def _buffer(name: str, rows: int, cols: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """A (rows, cols) view of a reusable per-thread buffer, grown when too small."""
    key = (name, dtype, device)
    store: dict[Any, Tensor] = _buffers.__dict__.setdefault("store", {})
    buf = store.get(key)
    if buf is None or buf.numel() < rows * cols:
        store.pop(key, None)
        buf = torch.empty(rows * cols, dtype=dtype, device=device)
        store[key] = buf
    return buf[: rows * cols].view(rows, cols)


def release_buffers() -> None:
    """Free this thread's loss buffers (called after training)."""
    _buffers.__dict__.pop("store", None)


def _blocked_columns(seen: Tensor | None, targets: Tensor) -> Tensor:
    """(N, L) columns to remove from each row's softmax: the seen items, never a target (N, K) (-> 0, padding)."""
    if seen is None:
        return torch.zeros_like(targets[:, :1])
    return torch.where((seen[:, :, None] == targets[:, None, :]).any(-1), 0, seen)


class _FullSoftmaxCE(torch.autograd.Function):
    """Mean over rows of -sum_k w_k log softmax(h @ table.T)[target_k] (+ label smoothing), blocked columns
    and column 0 removed. Forward computes the loss and both gradients; backward only scales them."""

    @staticmethod
    def forward(ctx: Any, h: Tensor, table: Tensor, targets: Tensor, weights: Tensor, blocked: Tensor,
                smoothing: float, dtype: torch.dtype) -> Tensor:
        n, v = h.shape[0], table.shape[0]
        acc = torch.promote_types(dtype, torch.float32)  # softmax dtype: float32 (float64 when asked)
        hc, tc = h.detach().to(dtype), table.detach().to(dtype)
        grad_logits = _buffer("grad", n, v, dtype, h.device)  # (N, V) logits, then d loss / d logits
        chunk = max(16, CHUNK_BYTES // (acc.itemsize * v))
        work = _buffer("chunk", min(chunk, n), v, acc, h.device) if dtype != acc else None
        losses = torch.empty(n, dtype=acc, device=h.device)
        with torch.autocast(h.device.type, enabled=False):
            torch.mm(hc, tc.T, out=grad_logits)  # one product for the batch (small ones are slower per row)
            for s in range(0, n, chunk):  # the softmax in cache-sized row chunks, in `acc` precision
                rows = slice(s, min(s + chunk, n))
                g = grad_logits[rows]
                x = g if work is None else work[: g.shape[0]].copy_(g)
                losses[rows] = _chunk_loss_and_grad(x, targets[rows], weights[rows], blocked[rows], smoothing, n)
                if work is not None:
                    g.copy_(x)
            grad_h = (grad_logits @ tc).to(h.dtype)  # (N, d)
            grad_table = (grad_logits.T @ hc).to(table.dtype)  # (V, d)
        ctx.save_for_backward(grad_h, grad_table)
        return losses.mean()

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        grad_h, grad_table = ctx.saved_tensors
        if grad.device.type == "cpu" and float(grad) == 1.0:  # the usual case: the loss itself is differentiated
            return grad_h, grad_table, None, None, None, None, None
        return grad_h * grad, grad_table * grad, None, None, None, None, None


def _chunk_loss_and_grad(x: Tensor, targets: Tensor, weights: Tensor, blocked: Tensor, smoothing: float,
                         n_total: int) -> Tensor:
    """Per-row losses of the logits chunk `x` (rows, V); turns `x` in place into d(mean loss)/d(logits)."""
    x.scatter_(1, blocked, float("-inf"))
    x[:, 0] = float("-inf")  # padding column
    target_logit = torch.where(weights > 0, x.gather(1, targets), 0.0).mul(weights).sum(1)  # (rows,)
    allowed = n_allowed = mean_logit = None
    if smoothing:
        allowed = torch.isfinite(x)
        n_allowed = allowed.sum(1)
        mean_logit = torch.where(allowed, x, 0.0).sum(1) / n_allowed
    top = x.amax(dim=1, keepdim=True)
    total = x.sub_(top).exp_().sum(1)  # x = exp(logit - max)
    lse = total.log() + top.squeeze(1)
    loss = lse - target_logit
    x.mul_((1.0 / (total * n_total))[:, None])  # softmax / N
    if smoothing:
        assert allowed is not None and n_allowed is not None and mean_logit is not None
        loss = (1.0 - smoothing) * loss + smoothing * (lse - mean_logit)
        x.sub_(allowed * (smoothing / (n_allowed * n_total))[:, None])
    x.scatter_add_(1, targets, weights.to(x.dtype) * (-(1.0 - smoothing) / n_total))
    return loss


def full_softmax_loss(h: Tensor, table: Tensor, targets: Tensor, seen: Tensor | None, smoothing: float = 0.0,
                      dtype: torch.dtype = torch.float32, weights: Tensor | None = None) -> Tensor:
    """h (N, d), table (n_items + 1, d); targets (N,) or (N, K) in 1..n_items (0 = none) with `weights`
    (N, K) summing to 1 per row; seen (N, L) item ids to mask (0 = none).

    Mean over rows of -sum_k w_k log softmax(h @ table.T)[target_k], where the softmax leaves out column 0
    (padding) and the row's seen items except its targets; with label smoothing `smoothing` (that share of
    the target mass spread uniformly over the columns that were not removed). The products run in `dtype`.
    """
    targets = targets[:, None] if targets.ndim == 1 else targets
    if weights is None:
        weights = (targets > 0).float()
    out: Tensor = _FullSoftmaxCE.apply(h, table, targets, weights.float(), _blocked_columns(seen, targets),
                                       smoothing, dtype)
    return out


def full_softmax_ce(logits: Tensor, targets: Tensor, weight: Tensor | None = None) -> Tensor:
    """Cross-entropy of each row's target over all C classes of `logits` (N, C); rows with target IGNORE_INDEX
    are skipped; optional `weight` (N,) per row."""
    keep = targets != IGNORE_INDEX
    if not bool(keep.any()):
        return logits.sum() * 0.0
    per_row = F.cross_entropy(logits[keep], targets[keep], reduction="none")
    return weighted_mean(per_row, None if weight is None else weight[keep])


def sampled_softmax_loss(h: Tensor, table: Tensor, targets: Tensor, negatives: Tensor, log_q: Tensor,
                         seen: Tensor | None) -> Tensor:
    """Softmax over the batch's targets plus sampled negatives, logits corrected by -log Q(item).

    log_q (n_items + 1,) is the log of each item's expected count among the candidates.
    """
    cand, inverse = torch.unique(torch.cat([targets, negatives]), return_inverse=True)  # (C,)
    return candidate_softmax_loss(h, table[cand], cand, inverse[: len(targets)], log_q[cand], seen)


def candidate_softmax_loss(h: Tensor, cand_table: Tensor, cand: Tensor, target_col: Tensor, cand_log_q: Tensor,
                           seen: Tensor | None) -> Tensor:
    """sampled_softmax_loss given its candidates: `cand` (C,) the sorted unique item ids (targets and
    negatives), `cand_table` (C, d) their vectors, `target_col` (N,) each row's target column in cand and
    `cand_log_q` (C,) their log Q. Only the C candidate rows of the item table are needed."""
    logits = (h @ cand_table.T).float() - cand_log_q[None, :]  # (N, C)
    if seen is not None:  # history items among the candidates are removed, the target never
        pos = torch.searchsorted(cand, seen).clamp(max=len(cand) - 1)
        hit = (cand[pos] == seen) & (seen > 0) & (pos != target_col[:, None])
        if hit.any():
            rows = torch.arange(len(target_col), device=h.device)[:, None].expand_as(pos)
            logits = logits.index_put((rows[hit], pos[hit]), torch.tensor(float("-inf"), device=h.device))
    return F.cross_entropy(logits, target_col)


def log_uniform_sampler(popularity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(items ordered by popularity, log-uniform probability of each rank): P(r) = log((r+2)/(r+1)) / log(n+1)."""
    order = np.argsort(-popularity, kind="stable")
    ranks = np.arange(len(order), dtype=np.float64)
    return order, np.log((ranks + 2) / (ranks + 1)) / np.log(len(order) + 1)
