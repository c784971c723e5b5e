"""The `mf` model's gradient-trained solver ("sgd"): biased MF in torch, minibatch Adam, or DP-SGD when the
config sets `dp_epsilon` (see shoprec.models.dp for what is and is not private).

    pred_ui = mu0 + offset + b_u + c_i + p_u . q_i                 rows x = [p, b] as in the ALS solver
    loss_ui = (r_ui - pred_ui)^2 + regularization * (w_U (||p_u||^2 + s b_u^2) + w_I (||q_i||^2 + s c_i^2))

with s = BIAS_REGULARIZATION_SCALE and w_U = n_users / n, w_I = n_items / n: an epoch adds about one
`regularization * ||row||^2` per row, the ALS objective on average (exact per-row counts would leak under
DP). mu0 is the mean rating without DP; with DP it is the middle of the public `dp_rating_range` (else 0)
and the learned `offset` carries the rest, so that no statistic of the ratings is taken outside DP-SGD.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn

from shoprec.models.dp import PrivacyReport, PrivateTrainer, drop_training_loss, resolve_delta
from shoprec.models.training import copy_state, torch_session, train_epochs

if TYPE_CHECKING:
    from shoprec.models.mf import MF, MFConfig


class BiasedMF(nn.Module):
    """Embedding tables of rows [factors, bias] per user and item, plus a learned global offset."""

    def __init__(self, n_users: int, n_items: int, factors: int, init_std: float, mu0: float) -> None:
        super().__init__()
        self.users, self.items = nn.Embedding(n_users, factors + 1), nn.Embedding(n_items, factors + 1)
        self.offset = nn.Embedding(1, 1)
        for table in (self.users, self.items):
            nn.init.normal_(table.weight, std=init_std)
            with torch.no_grad():
                table.weight[:, -1] = 0.0
        nn.init.zeros_(self.offset.weight)
        self.mu0 = mu0

    def forward(self, u: Tensor, i: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(predictions (B,), user rows (B, f+1), item rows (B, f+1))."""
        xu, xi = self.users(u), self.items(i)
        mu = self.mu0 + self.offset(torch.zeros_like(u)).squeeze(-1)
        return mu + (xu[:, :-1] * xi[:, :-1]).sum(-1) + xu[:, -1] + xi[:, -1], xu, xi

    def arrays(self) -> dict[str, Any]:
        """The MF artifact arrays: global_mean, user/item bias (float32) and factors."""
        users, items = (t.weight.detach().cpu().numpy().astype(np.float32) for t in (self.users, self.items))
        return {"global_mean": np.float32(self.mu0 + float(self.offset.weight.detach()[0, 0])),
                "user_bias": users[:, -1].copy(), "user_factors": users[:, :-1].copy(),
                "item_bias": items[:, -1].copy(), "item_factors": items[:, :-1].copy()}


def fit_sgd(model: MF, u: np.ndarray, i: np.ndarray, r: np.ndarray, n_users: int, n_items: int,
            validation: Any) -> PrivacyReport | None:
    """Train `model`'s arrays on the triples; returns the privacy spent (None without DP).

    With DP there is no early stopping and no best-epoch restore (the validation data would choose the
    model outside the DP guarantee): every epoch the accountant was sized for is run, and the last kept."""
    from shoprec.models.mf import BIAS_REGULARIZATION_SCALE

    cfg: MFConfig = model.config
    private = cfg.dp_epsilon is not None
    low_high = cfg.dp_rating_range
    mu0 = (float(np.mean(low_high)) if low_high else 0.0) if private else float(r.mean())
    weights = (cfg.regularization * n_users / len(r), cfg.regularization * n_items / len(r))

    def loss(net: nn.Module, bu: Tensor, bi: Tensor, br: Tensor) -> Tensor:
        pred, xu, xi = net(bu, bi)
        penalty = sum(w * ((x[:, :-1] ** 2).sum(-1) + BIAS_REGULARIZATION_SCALE * x[:, -1] ** 2)
                      for w, x in zip(weights, (xu, xi), strict=True))
        return (pred - br) ** 2 + penalty

    with torch_session(cfg.seed, torch.device("cpu")) as gen:
        net = BiasedMF(n_users, n_items, cfg.embedding_size, cfg.init_std, mu0)
        data = (torch.as_tensor(u), torch.as_tensor(i), torch.as_tensor(r, dtype=torch.float32))
        trainer = None
        if private:
            assert cfg.dp_epsilon is not None
            trainer = PrivateTrainer(
                net, loss, data, epsilon=cfg.dp_epsilon, delta=resolve_delta(cfg.dp_delta, len(r)),
                max_grad_norm=cfg.dp_max_grad_norm, epochs=cfg.sweeps, batch_size=cfg.batch_size,
                learning_rate=cfg.learning_rate, seed=cfg.seed)
            step = trainer.epoch
        else:
            step = _plain_epochs(net, loss, data, cfg.batch_size, cfg.learning_rate, gen)

        def epoch(_: int) -> float:
            value = step()
            model.set_arrays(net.arrays())
            return value

        outcome = train_epochs(
            model, epochs=cfg.sweeps, train_epoch=epoch, validation=validation,
            patience=0 if private else cfg.patience, snapshot=None if private else (lambda: copy_state(net)),
            restore=None if private else net.load_state_dict)
        model.best_epoch = outcome.epochs_run if private else outcome.best_epoch  # DP keeps the last epoch
        if private:
            drop_training_loss(model.training_log)
        model.set_arrays(net.arrays())
    return trainer.report() if trainer is not None else None


def _plain_epochs(net: nn.Module, loss: Any, data: tuple[Tensor, ...], batch_size: int, learning_rate: float,
                  gen: torch.Generator) -> Any:
    """A function running one shuffled minibatch-Adam epoch (the non-private sgd solver)."""
    opt = torch.optim.Adam(net.parameters(), lr=learning_rate)

    def run() -> float:
        net.train()
        order = torch.randperm(len(data[0]), generator=gen)
        total = 0.0
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            per_sample = loss(net, *(t[idx] for t in data))
            opt.zero_grad(set_to_none=True)
            per_sample.mean().backward()
            opt.step()
            total += float(per_sample.detach().sum())
        return total / len(order)

    return run
