"""The transformer's optimisation pieces: AdamW (lazy rows for a sparse id gradient), the learning-rate
schedule, the softmax products' dtype and the checkpoint fingerprint of a fit."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Collection
from typing import Any

import numpy as np
import torch
from torch import Tensor

from shoprec.config import config_to_dict
from shoprec.data import Interactions
from shoprec.models.training import TrainOptions
from shoprec.models.transformer.config import TransformerConfig
from shoprec.models.transformer.network import SeqNet


def make_optimizer(net: SeqNet, cfg: TransformerConfig, copied: Collection[str] = ()) -> torch.optim.Optimizer:
    """AdamW; weight decay on matrices and embeddings, not on biases and layer norms. RowSparseAdamW (the same
    update) when the id embedding's gradient is sparse (net.sparse_ids: the sampled loss). The `copied` weights
    (fine-tuning: those taken from the start model) go in groups of their own whose learning rate is
    cfg.copied_lr_ratio times the schedule's (each group's "lr_scale"; 0 freezes them) unless that ratio is 1."""
    copied = set(copied) if cfg.copied_lr_ratio != 1.0 else set()
    groups = []
    for scale, names in ((1.0, False), (cfg.copied_lr_ratio, True)):
        params = [(n, p) for n, p in net.named_parameters() if (n in copied) == names]
        if not params:
            continue
        groups += [{"params": [p for _, p in params if p.ndim >= 2], "weight_decay": cfg.weight_decay,
                    "lr_scale": scale},
                   {"params": [p for _, p in params if p.ndim < 2], "weight_decay": 0.0, "lr_scale": scale}]
    kind = RowSparseAdamW if net.sparse_ids else torch.optim.AdamW
    return kind(groups, lr=cfg.learning_rate, betas=(0.9, 0.98), fused=True)


def learning_rate(cfg: TransformerConfig, step: int, steps_per_epoch: int) -> float:
    """Linear warm-up over warmup_epochs, then cosine decay to min_lr_ratio at `epochs` (resolved: a number)."""
    warmup = cfg.warmup_epochs * steps_per_epoch
    if step < warmup:
        return cfg.learning_rate * (step + 1) / warmup
    total = max(int(cfg.epochs) * steps_per_epoch - warmup, 1)
    progress = min((step - warmup) / total, 1.0)
    return cfg.learning_rate * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def compute_dtype(device: torch.device, precision: str) -> torch.dtype:
    """dtype of the catalog-softmax products: bfloat16 for "bf16", and for "auto" on a GPU or on a CPU with
    native bfloat16 matmuls (AMX / AVX512-BF16: 8x the float32 speed there); float32 otherwise."""
    native = device.type == "cuda" or (device.type == "cpu" and cpu_has_bf16())
    return torch.bfloat16 if precision == "bf16" or (precision == "auto" and native) else torch.float32


def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (AMX tiles or AVX512-BF16)."""
    cpu = getattr(torch, "cpu", None)
    checks = [getattr(cpu, name, None) for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported")]
    return any(bool(check()) for check in checks if check is not None)


def checkpoint_fingerprint(cfg: TransformerConfig, opts: TrainOptions, train: Interactions, world: int = 1) -> str:
    """Hash of the config and options (minus run-only fields) and the training data: a checkpoint resumes
    only the same fit. `cfg` is a member's (its seed, "auto" resolved); the ensemble's size is left out, as a
    member trains the same whatever the number of members (a one-member run with seed s resumes into member k
    of an ensemble with seed s - k), and so is the time limit (each member gets the time left, a different
    number every run), which decides when a fit stops, not what it trains. `world`, the number of torchrun
    processes, is in it: it sets the steps of an epoch (so the schedule) and which batches each process reads.
    Two processes must not train into one checkpoint directory at once (other than the ranks of one torchrun):
    resume a member's directory after the run writing it has ended."""
    h = hashlib.sha256()
    params = {k: v for k, v in {**config_to_dict(cfg), **config_to_dict(opts)}.items()
              if k not in ("checkpoint_dir", "progress", "num_threads", "ensemble", "max_seconds", "text_cache_dir",
                           "max_epochs", "max_context", "text_neighbours")}  # (the caps act through cfg's resolved
    # sizes; the text neighbours are built after training)
    # parameters added later count only away from their defaults (a checkpoint written before them resumes);
    # text_affinity / transition_affinity null or "auto" validate with 0 while training, as 0 does
    for name, default in (("copied_lr_ratio", 1.0), ("text_affinity", 0.0), ("transition_affinity", 0.0)):
        if params.get(name) in (None, "auto") or params.get(name) == default:
            params.pop(name, None)
    h.update(json.dumps(params, sort_keys=True).encode())
    for arr in (train.user, train.item, train.timestamp, train.event_type):
        h.update(np.ascontiguousarray(arr).tobytes())
    h.update(str(len(train.items)).encode())
    if world != 1:  # (left out for one process, so single-process checkpoints written before still resume)
        h.update(f"world={world}".encode())
    return h.hexdigest()


class RowSparseAdamW(torch.optim.AdamW):
    """AdamW (fused, as make_optimizer makes it) for the parameters with dense gradients; a parameter with a sparse
    gradient (the item id embedding under the sampled loss) is updated lazily, its gradient's rows only:
    their moments and weights as AdamW would update them (bias correction by the parameter's step count,
    decoupled weight decay), while rows without gradient keep their moments and weights (TensorFlow's
    LazyAdam; torch.optim.SparseAdam without weight decay). A step then costs O(rows touched), not
    O(catalog): on a 1M-item catalog the dense AdamW step read and wrote 4 x 512 MB per step.
    The state has AdamW's names (step, exp_avg, exp_avg_sq): checkpoints save and resume it as before."""

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        sparse = []
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None and p.grad.is_sparse:
                    sparse.append((group, p, p.grad))
                    p.grad = None  # the fused dense step skips parameters without a gradient
        loss = super().step(closure)
        for group, p, grad in sparse:
            self._lazy_step(group, p, grad.coalesce())
            p.grad = grad
        return loss

    def _lazy_step(self, group: dict[str, Any], p: Tensor, grad: Tensor) -> None:
        state = self.state[p]
        if not state:
            state["step"] = torch.tensor(0.0)
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        state["step"] += 1
        rows, g = grad.indices()[0], grad.values()
        if not len(rows):
            return
        (beta1, beta2), lr, eps, decay = group["betas"], float(group["lr"]), group["eps"], group["weight_decay"]
        step = float(state["step"])
        m = state["exp_avg"][rows].lerp_(g, 1.0 - beta1)
        v = state["exp_avg_sq"][rows].mul_(beta2).addcmul_(g, g, value=1.0 - beta2)
        state["exp_avg"].index_copy_(0, rows, m)
        state["exp_avg_sq"].index_copy_(0, rows, v)
        denom = (v.sqrt() / math.sqrt(1.0 - beta2 ** step)).add_(eps)
        updated = p[rows].mul_(1.0 - lr * decay).addcdiv_(m, denom, value=-lr / (1.0 - beta1 ** step))
        p.index_copy_(0, rows, updated)

