"""Neural collaborative filtering (He et al. 2017): GMF, MLP or their fusion NeuMF, in PyTorch.

    p_u  = P[u] + |N(u)|^-1/2 sum_{j in N(u)} Y[j]        user vector of a branch (implicit=True; else P[u])
    q_i  = Q[i] + |N(i)|^-1/2 sum_{v in N(i)} Z[v]        item vector, likewise from the users of i
    gmf  = p_u * q_i                                     (B, embedding_size)
    mlp  = MLP([p'_u; q'_i])                             (B, layers[-1]), vectors of size layers[0] // 2 each
    out  = w . [gmf; mlp] + b_u + b_i + mu               (B,)   NeuMF; "gmf" / "mlp" keep one branch

N(u) are the items u interacted with in training (any event, rated or not), N(i) the users of item i:
the SVD++ idea on both sides, which lowers the ML-100K RMSE by about 0.008 on a validation split; with
implicit=False the model is the paper's NeuMF (plus biases). The linked tables travel in the artifact.

Objectives: "mse" regresses observed ratings (out is the rating; `predict` works); "bce" (log loss,
`negatives` sampled unobserved items per event labelled 0) and "bpr" (pairwise, `negatives` sampled
items per event) learn from implicit feedback (out is a logit). "auto" picks mse when the training
data has ratings (finite `value`), else bce.

Regularisation: each pair's L2 penalty on the vectors it uses (and, at BIAS_REG_SCALE of it, the
biases) is divided by the row's number of training pairs, so that an epoch adds exactly one
`regularization * ||vector||^2` per user and item: the MAP objective of biased MF, sum err^2 +
lambda * sum ||params||^2, whatever the row's activity. Scoring uses an exponential moving average of
the weights (`averaging`), which smooths Adam's noise (ML-100K validation RMSE about 0.006 better).
Give `fit` a validation (RatingValidation for mse, RankingValidation otherwise) so that early
stopping keeps the best epoch.

Differential privacy: with `dp_epsilon` set (objective mse, implicit=False) the network trains by DP-SGD
(Opacus, shoprec.models.dp; the unit is one rating) for exactly `epochs` epochs: the global mean starts at
the middle of the public `dp_rating_range` (else 0) and a learned offset (`mean_offset`) carries the rest,
the per-row penalty weights are the constants n_rows / n_ratings, and validation is only logged. The spent
(epsilon, delta) is in `privacy` and the artifact's meta.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from torch import Tensor, nn

from shoprec.data import Interactions, ItemCatalog
from shoprec.errors import CannotScoreError, ConfigError, DataError
from shoprec.models import losses
from shoprec.models.base import Query, RankingValidation, RatingValidation, Recommender, register
from shoprec.models.dp import PrivateTrainer, check_dp_config, drop_training_loss, resolve_delta
from shoprec.models.mf import RatingFit
from shoprec.models.training import (
    check_range,
    copy_state,
    load_module_state,
    module_state,
    pick_device,
    torch_session,
    train_epochs,
)

SCORE_PAIRS = 1 << 21  # (user, item) pairs per forward pass when scoring all items
BIAS_REG_SCALE = 0.1  # biases are regularised at this fraction of `regularization`
INIT_STD = 0.1  # initial embeddings ~ N(0, INIT_STD^2); biases start at 0


@dataclass(frozen=True)
class NCFConfig:
    DP_SETTINGS: ClassVar[dict[str, Any]] = {"implicit": False}  # what `--dp-epsilon` adds to the parameters
    objective: Literal["auto", "mse", "bce", "bpr"] = "auto"
    architecture: Literal["neumf", "gmf", "mlp"] = "neumf"
    embedding_size: int = 32  # GMF embeddings
    layers: tuple[int, ...] = (64, 32, 16)  # MLP widths; its user and item embeddings have layers[0] // 2 each
    dropout: float = 0.1  # on the MLP's hidden layers
    implicit: bool = True  # add to each user (item) vector the normalised sum of linked vectors of its items (users)
    regularization: float = 5.0  # lambda of the MAP objective sum err^2 + lambda * sum ||vectors||^2 (see above)
    negatives: int = 4  # bce / bpr: sampled unobserved items per event
    epochs: int = 40
    batch_size: int = 512
    learning_rate: float = 5e-3
    averaging: float = 0.995  # decay of the moving average of the weights that scores (0: the last weights)
    patience: int = 3  # validations without improvement before stopping (0: never early)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    num_threads: int = 0  # torch CPU threads while fitting (0: the torch_threads setting or torch's default)
    dp_epsilon: float | None = None  # train by DP-SGD to this privacy budget (None: no DP)
    dp_delta: float | None = None  # DP delta (None: min(1e-5, 1 / n_ratings))
    dp_max_grad_norm: float = 1.0  # DP: per-rating gradient clipping bound
    dp_rating_range: tuple[float, ...] | None = None  # DP: public rating scale [low, high] (clips predictions)
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("embedding_size", "epochs", "batch_size"):
            check_range("ncf", name, getattr(self, name), 1)
        check_range("ncf", "averaging", self.averaging, 0.0, 0.9999)
        if not self.layers or min(self.layers) < 1 or self.layers[0] < 2:
            raise ConfigError(f"parameter 'layers' of model 'ncf' needs positive widths, the first >= 2, "
                              f"got {list(self.layers)}")
        check_range("ncf", "dropout", self.dropout, 0.0, 0.95)
        check_range("ncf", "regularization", self.regularization, 0.0)
        check_range("ncf", "negatives", self.negatives, 1)
        check_range("ncf", "learning_rate", self.learning_rate, 0.0, strict_low=True)
        check_range("ncf", "patience", self.patience, 0)
        check_range("ncf", "num_threads", self.num_threads, 0)
        if self.dp_epsilon is not None and self.objective not in ("auto", "mse"):
            raise ConfigError(f"parameter 'objective' of model 'ncf' must be 'mse' (or 'auto') when dp_epsilon is "
                              f"set: DP-SGD here protects ratings, got {self.objective!r}")
        check_dp_config("ncf", self)


class Links(nn.Module):
    """A ragged row -> linked-ids table (CSR) with weights |N(row)|^-1/2: who interacted with what."""

    def __init__(self, indptr: np.ndarray, indices: np.ndarray) -> None:
        super().__init__()
        counts = np.diff(indptr)
        weights = np.repeat(np.maximum(counts, 1) ** -0.5, counts).astype(np.float32)
        self.indptr: Tensor
        self.indices: Tensor
        self.weights: Tensor
        self.register_buffer("indptr", torch.as_tensor(indptr, dtype=torch.int64))
        self.register_buffer("indices", torch.as_tensor(indices, dtype=torch.int64))
        self.register_buffer("weights", torch.as_tensor(weights))

    @classmethod
    def from_pairs(cls, rows: np.ndarray, cols: np.ndarray, n_rows: int, n_cols: int) -> Links:
        """Distinct (row, col) pairs, sorted, as CSR."""
        keys = np.unique(rows.astype(np.int64) * n_cols + cols)
        return cls(np.searchsorted(keys // n_cols, np.arange(n_rows + 1)), keys % n_cols)

    def gather(self, idx: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(flat linked ids, bag offsets, weights) of the rows `idx`, for nn.EmbeddingBag."""
        starts = self.indptr[idx]
        lengths = self.indptr[idx + 1] - starts
        offsets = torch.cumsum(lengths, 0) - lengths
        pos = torch.repeat_interleave(starts - offsets, lengths) + torch.arange(int(lengths.sum()), device=idx.device)
        return self.indices[pos], offsets, self.weights[pos]


class Tower(nn.Module):
    """One side's vectors for every branch (one table, split by branch): own embedding (+ the weighted
    sum of the linked ids' embeddings). One bag lookup serves all branches."""

    def __init__(self, n: int, n_linked: int, dims: dict[str, int], implicit: bool) -> None:
        super().__init__()
        self.dims = dims
        self.own = nn.Embedding(n, sum(dims.values()))
        self.linked = nn.EmbeddingBag(n_linked, sum(dims.values()), mode="sum") if implicit else None

    def forward(self, idx: Tensor, links: Links | None) -> tuple[dict[str, Tensor], Tensor]:
        """(branch vectors (B, dim) by branch, squared norm of the parameters used (B,))."""
        x = self.own(idx)
        sq = (x**2).sum(-1)
        if self.linked is not None and links is not None:
            rows, where = torch.unique(idx, return_inverse=True)  # a popular row is bagged once per batch
            flat, offsets, weights = links.gather(rows)
            extra = self.linked(flat, offsets, per_sample_weights=weights)[where]
            x, sq = x + extra, sq + (extra**2).sum(-1)
        return dict(zip(self.dims, torch.split(x, list(self.dims.values()), dim=-1), strict=True)), sq


class NeuMF(nn.Module):
    """The network; `forward(users, items)` gives one output per pair (B,)."""

    def __init__(self, cfg: NCFConfig, n_users: int, n_items: int, user_links: Links | None = None,
                 item_links: Links | None = None) -> None:
        super().__init__()
        branches = {"neumf": ("gmf", "mlp"), "gmf": ("gmf",), "mlp": ("mlp",)}[cfg.architecture]
        dims = {b: {"gmf": cfg.embedding_size, "mlp": cfg.layers[0] // 2}[b] for b in branches}
        self.user_links, self.item_links = user_links, item_links
        self.users = Tower(n_users, n_items, dims, user_links is not None)
        self.items = Tower(n_items, n_users, dims, item_links is not None)
        width = 0
        if "gmf" in branches:
            width += cfg.embedding_size
        if "mlp" in branches:
            blocks: list[nn.Module] = []
            for a, b in zip((2 * dims["mlp"], *cfg.layers[1:]), cfg.layers[1:], strict=False):
                blocks += [nn.Linear(a, b), nn.ReLU(), nn.Dropout(cfg.dropout)]
            self.mlp = nn.Sequential(*blocks)
            width += cfg.layers[-1] if len(cfg.layers) > 1 else 2 * dims["mlp"]
        self.out = nn.Linear(width, 1, bias=False)
        self.user_bias, self.item_bias = nn.Embedding(n_users, 1), nn.Embedding(n_items, 1)
        self.global_mean: Tensor
        self.user_weight: Tensor
        self.item_weight: Tensor
        self.register_buffer("global_mean", torch.zeros(()))
        # 1 / (training pairs of each user / item): the per-pair penalty sums to one penalty per row per epoch
        self.register_buffer("user_weight", torch.ones(n_users))
        self.register_buffer("item_weight", torch.ones(n_items))
        # DP: the global mean is learned (a bag-free embedding Opacus can clip per sample), never measured
        self.mean_offset = nn.Embedding(1, 1) if cfg.dp_epsilon is not None else None
        for emb in (m for m in self.modules() if isinstance(m, nn.Embedding | nn.EmbeddingBag)):
            nn.init.normal_(emb.weight, std=INIT_STD)
        nn.init.zeros_(self.user_bias.weight)
        nn.init.zeros_(self.item_bias.weight)
        if self.mean_offset is not None:
            nn.init.zeros_(self.mean_offset.weight)

    def mean(self, like: Tensor) -> Tensor:
        """The global mean (plus the learned DP offset), shaped like `like` (B,)."""
        if self.mean_offset is None:
            return self.global_mean.expand_as(like)
        return self.global_mean + self.mean_offset(torch.zeros_like(like, dtype=torch.int64)).squeeze(-1)

    def side(self, idx: Tensor, users: bool) -> tuple[dict[str, Tensor], Tensor, Tensor]:
        """(branch vectors, bias (B,), weighted squared norm of the parameters used (B,)) of users or items."""
        tower, links, bias, weight = (self.users, self.user_links, self.user_bias, self.user_weight) if users \
            else (self.items, self.item_links, self.item_bias, self.item_weight)
        b = bias(idx).squeeze(-1)
        vectors, sq = tower(idx, links)
        return vectors, b, (sq + BIAS_REG_SCALE * b**2) * weight[idx]

    def combine(self, u: dict[str, Tensor], i: dict[str, Tensor]) -> Tensor:
        """Interaction term of aligned (or broadcastable: (B, 1, d) x (1, N, d)) user and item vectors."""
        parts = []
        if "gmf" in u:
            parts.append(u["gmf"] * i["gmf"])
        if "mlp" in u:
            a, b = torch.broadcast_tensors(u["mlp"], i["mlp"])
            parts.append(self.mlp(torch.cat([a, b], dim=-1)))
        return self.out(torch.cat(parts, dim=-1)).squeeze(-1)

    def forward(self, users: Tensor, items: Tensor) -> tuple[Tensor, Tensor]:
        """(outputs (B,), squared norm of the parameters used per pair (B,))."""
        u, ub, usq = self.side(users, users=True)
        i, ib, isq = self.side(items, users=False)
        return self.combine(u, i) + ub + ib + self.mean(users), usq + isq


@register
class NCF(RatingFit, Recommender):
    name = "ncf"
    Config = NCFConfig

    def __init__(self, config: NCFConfig | None = None) -> None:
        super().__init__(config)
        self.net: NeuMF | None = None
        self.objective = "mse"
        self._device = torch.device("cpu")

    # ---------------------------------------------------------------- fit
    def _fit(self, train: Interactions, catalog: ItemCatalog | None, validation: Any) -> None:
        cfg: NCFConfig = self.config
        rated = np.isfinite(train.value)
        self.objective = cfg.objective if cfg.objective != "auto" else ("mse" if rated.any() else "bce")
        wanted = RatingValidation if self.objective == "mse" else RankingValidation
        if self.objective == "mse" and isinstance(validation, RankingValidation):
            validation = None  # a ranking protocol's validation: the rating objective fits without one
        if validation is not None and not isinstance(validation, wanted):
            raise ConfigError(f"model 'ncf' with objective {self.objective!r} validates with a {wanted.__name__}")
        if self.objective == "mse" and not rated.any():
            raise DataError("model 'ncf': objective 'mse' needs ratings, but no event has a 'value'")
        if cfg.dp_epsilon is not None and self.objective != "mse":
            raise DataError("model 'ncf': dp_epsilon needs ratings (objective mse), but no event has a 'value'")
        self._device = pick_device("ncf", cfg.device)
        with torch_session(cfg.seed, self._device, cfg.num_threads):
            self._train(train, validation)

    def _train(self, train: Interactions, validation: Any) -> None:
        cfg: NCFConfig = self.config
        rng = np.random.default_rng(cfg.seed)
        if self.objective == "mse":
            keep = np.isfinite(train.value)
            users, items, targets = train.user[keep], train.item[keep], train.value[keep]
            self.rating_range = (float(targets.min()), float(targets.max()))
            if cfg.dp_epsilon is not None:
                low, high = cfg.dp_rating_range or (-np.inf, np.inf)
                self.rating_range = (float(low), float(high))
        else:
            users, items, targets = train.user, train.item, np.ones(len(train), dtype=np.float32)
        seen = np.unique(train.user.astype(np.int64) * train.n_items + train.item)
        links = _links(train) if cfg.implicit else (None, None)
        net = NeuMF(cfg, train.n_users, train.n_items, *links).to(self._device)
        private = cfg.dp_epsilon is not None
        if private:  # nothing measured on the ratings: a public start for the mean, constant penalty weights
            net.global_mean.fill_(float(np.mean(cfg.dp_rating_range)) if cfg.dp_rating_range else 0.0)
            net.user_weight.fill_(train.n_users / len(users))
            net.item_weight.fill_(train.n_items / len(users))
        elif self.objective == "mse":
            net.global_mean.fill_(float(targets.mean()))
        if not private:
            for side, idx, n in ((net.user_weight, users, train.n_users), (net.item_weight, items, train.n_items)):
                side.copy_(torch.as_tensor(1.0 / np.maximum(np.bincount(idx, minlength=n), 1), dtype=torch.float32))
        # scoring uses an exponential moving average of the trained weights (Polyak averaging)
        self.net = copy.deepcopy(net) if cfg.averaging else net
        opt = torch.optim.Adam(net.parameters(), lr=cfg.learning_rate)
        trained: list[Tensor] = list(net.parameters())
        averaged: list[Tensor] = list(self.net.parameters())
        data = [torch.as_tensor(a, device=self._device) for a in (users.astype(np.int64), items.astype(np.int64),
                                                                    targets.astype(np.float32))]

        def epoch(_: int) -> float:
            net.train()
            order = torch.as_tensor(rng.permutation(len(users)), device=self._device)
            total = 0.0
            for start in range(0, len(order), cfg.batch_size):
                idx = order[start:start + cfg.batch_size]
                loss = self._batch_loss(net, data[0][idx], data[1][idx], data[2][idx], seen, train.n_items, rng)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if cfg.averaging:
                    with torch.no_grad():
                        torch._foreach_lerp_(averaged, trained, 1.0 - cfg.averaging)
                total += float(loss.detach()) * len(idx)
            return total / len(order)

        scored = self.net
        if private:
            self._train_private(net, trained, averaged, data, validation)
            return
        outcome = train_epochs(self, epochs=cfg.epochs, train_epoch=epoch, validation=validation,
                               patience=cfg.patience, snapshot=lambda: copy_state(scored),
                               restore=scored.load_state_dict)
        self.best_epoch = outcome.best_epoch
        scored.eval()

    def _train_private(self, net: NeuMF, trained: list[Tensor], averaged: list[Tensor], data: list[Tensor],
                       validation: Any) -> None:
        """DP-SGD for exactly `epochs` epochs (validation is logged, never used to pick a state)."""
        cfg: NCFConfig = self.config
        assert cfg.dp_epsilon is not None and self.net is not None

        def loss(module: nn.Module, u: Tensor, i: Tensor, r: Tensor) -> Tensor:
            out, sq = module(u, i)
            return (out - r) ** 2 + cfg.regularization * sq

        def average() -> None:
            with torch.no_grad():
                torch._foreach_lerp_(averaged, trained, 1.0 - cfg.averaging)

        trainer = PrivateTrainer(
            net, loss, (data[0], data[1], data[2]), epsilon=cfg.dp_epsilon,
            delta=resolve_delta(cfg.dp_delta, len(data[0])), max_grad_norm=cfg.dp_max_grad_norm, epochs=cfg.epochs,
            batch_size=cfg.batch_size, learning_rate=cfg.learning_rate, seed=cfg.seed)
        outcome = train_epochs(self, epochs=cfg.epochs, validation=validation,
                               train_epoch=lambda _: trainer.epoch(average if cfg.averaging else None))
        self.best_epoch = outcome.epochs_run  # the state kept is the last one
        drop_training_loss(self.training_log)
        self.privacy = trainer.report().to_dict()
        self.net.eval()

    def _batch_loss(self, net: NeuMF, u: Tensor, i: Tensor, r: Tensor, seen: np.ndarray, n_items: int,
                    rng: np.random.Generator) -> Tensor:
        cfg: NCFConfig = self.config
        pos_out, sq = net(u, i)
        reg = cfg.regularization * sq.mean()
        if self.objective == "mse":
            return losses.mse_loss(pos_out, r) + reg
        neg = torch.as_tensor(_negatives(u.cpu().numpy(), cfg.negatives, seen, n_items, rng), device=u.device)
        neg_out = net(u[:, None].expand_as(neg).reshape(-1), neg.reshape(-1))[0].view(neg.shape)
        loss = losses.bce_loss(pos_out, neg_out) if self.objective == "bce" else losses.bpr_loss(pos_out, neg_out)
        return loss + reg

    # ---------------------------------------------------------------- predict / score
    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Predicted ratings (objective mse), clipped to the training range; an unknown user or item
        (index -1 or out of range) gets the global mean plus the known side's bias."""
        self._require_fitted()
        if self.objective != "mse":
            raise CannotScoreError(f"model 'ncf' was trained with objective {self.objective!r}: "
                                   "it ranks items but does not predict ratings")
        assert self.net is not None
        users, items = np.asarray(users, dtype=np.int64), np.asarray(items, dtype=np.int64)
        ku, ki = (users >= 0) & (users < self.n_users), (items >= 0) & (items < self.n_items)
        u = torch.as_tensor(np.where(ku, users, 0), device=self._device)
        i = torch.as_tensor(np.where(ki, items, 0), device=self._device)
        with torch.no_grad():
            net = self.net.eval()
            full = net(u, i)[0].cpu().numpy()
            ub, ib = net.user_bias(u).squeeze(-1).cpu().numpy(), net.item_bias(i).squeeze(-1).cpu().numpy()
            mean = net.mean(u).cpu().numpy()
        pred = np.where(ku & ki, full, mean + ku * ub + ki * ib)
        return np.clip(pred, *self.rating_range).astype(np.float32)

    def _score(self, queries: Sequence[Query]) -> np.ndarray:
        """Network output for every item per query user (ratings for mse, logits otherwise)."""
        assert self.net is not None
        net, n = self.net.eval(), self.n_items
        users = torch.as_tensor([q.user for q in queries], dtype=torch.int64, device=self._device)
        rows = max(1, SCORE_PAIRS // n)
        out = []
        with torch.no_grad():
            iv, ib, _ = net.side(torch.arange(n, device=self._device), users=False)
            iv = {k: v[None] for k, v in iv.items()}  # (1, n, d)
            for start in range(0, len(users), rows):
                uv, ub, _ = net.side(users[start:start + rows], users=True)
                inter = net.combine({k: v[:, None] for k, v in uv.items()}, iv)  # (B, n)
                out.append((inter + ub[:, None] + ib[None, :] + net.mean(ub)[:, None]).float().cpu())
        return torch.cat(out).numpy()

    # ---------------------------------------------------------------- artifacts
    def _state(self) -> dict[str, np.ndarray]:
        assert self.net is not None
        return module_state(self.net)

    def _meta(self) -> dict[str, Any]:
        return {"objective": self.objective, **self._fit_meta()}

    def _set_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        self.objective = meta["objective"]
        self._set_fit_meta(meta)
        self._device = torch.device("cpu")
        links = [Links(arrays[f"net.{side}_links.indptr"], arrays[f"net.{side}_links.indices"])
                 if f"net.{side}_links.indptr" in arrays else None for side in ("user", "item")]
        self.net = NeuMF(self.config, self.n_users, self.n_items, *links)
        load_module_state(self.net, arrays)
        self.net.eval()


def _links(train: Interactions) -> tuple[Links, Links]:
    """Who interacted with what, over all training events (rated or not), both ways."""
    return (Links.from_pairs(train.user, train.item, train.n_users, train.n_items),
            Links.from_pairs(train.item, train.user, train.n_items, train.n_users))


def _negatives(users: np.ndarray, per_event: int, seen: np.ndarray, n_items: int,
               rng: np.random.Generator, tries: int = 3) -> np.ndarray:
    """(B, per_event) random items per user, redrawn (up to `tries` times) where the user saw the item."""
    neg = rng.integers(0, n_items, size=(len(users), per_event))
    for _ in range(tries):
        clash = np.isin(users[:, None].astype(np.int64) * n_items + neg, seen)
        if not clash.any():
            break
        neg[clash] = rng.integers(0, n_items, size=int(clash.sum()))
    return neg
