"""GRU4Rec (Hidasi et al. 2016; Hidasi & Karatzoglou 2018): a GRU over the user's recent items
predicts the next item.

    history (B, T) item ids (+1; 0 pads on the right), the last `max_history` known items
    x = dropout(E[history])                 (B, T, e)
    h = dropout(GRU(x))                     (B, T, e)   num_layers stacked GRU layers
    logits = h @ W^T + bias                 (B, T, n_items)   W = E (tied) or a separate output table

Training: every position predicts the following item of the training sequence (sequences longer
than max_history + 1 are cut into consecutive windows), with full softmax cross-entropy over all
items (loss "softmax") or BPR-max over `negatives` items sampled uniformly per batch ("bpr-max").
Early stopping on a RankingValidation (NDCG@k). Scoring reads a query's history; a known user
without one is scored from the tail of their training sequence, kept in the artifact.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from shoprec.data import Interactions, ItemCatalog
from shoprec.errors import ConfigError, DataError
from shoprec.models import losses, training
from shoprec.models.base import Query, RankingValidation, Recommender, register
from shoprec.models.softmax import full_softmax_ce

SCORE_BATCH = 512  # queries per forward pass when scoring


@dataclass(frozen=True)
class GRU4RecConfig:
    embedding_size: int = 64  # item embeddings and GRU hidden state
    num_layers: int = 1  # stacked GRU layers
    dropout: float = 0.3  # on the input embeddings and on the GRU output
    tied: bool = True  # output item table = input embeddings (else a separate table)
    loss: Literal["softmax", "bpr-max"] = "softmax"
    negatives: int = 512  # bpr-max: items sampled per batch, shared by its positions
    bpr_max_reg: float = 1.0  # bpr-max: weight of the score regulariser
    max_history: int = 50  # most recent items the GRU reads
    epochs: int = 40
    batch_size: int = 128  # sequences (windows) per step
    learning_rate: float = 3e-3
    weight_decay: float = 0.0
    patience: int = 3  # validations without improvement before stopping (0: never early)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    num_threads: int = 0  # torch CPU threads while fitting (0: the torch_threads setting or torch's default)
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("embedding_size", "num_layers", "negatives", "max_history", "epochs", "batch_size"):
            training.check_range("gru4rec", name, getattr(self, name), 1)
        training.check_range("gru4rec", "dropout", self.dropout, 0.0, 0.95)
        training.check_range("gru4rec", "bpr_max_reg", self.bpr_max_reg, 0.0)
        training.check_range("gru4rec", "learning_rate", self.learning_rate, 0.0, strict_low=True)
        training.check_range("gru4rec", "weight_decay", self.weight_decay, 0.0)
        training.check_range("gru4rec", "patience", self.patience, 0)
        training.check_range("gru4rec", "num_threads", self.num_threads, 0)


class GRUNet(nn.Module):
    def __init__(self, cfg: GRU4RecConfig, n_items: int) -> None:
        super().__init__()
        e = cfg.embedding_size
        self.embedding = nn.Embedding(n_items + 1, e, padding_idx=0)  # row 0 pads
        self.output = None if cfg.tied else nn.Embedding(n_items + 1, e)
        self.bias = nn.Parameter(torch.zeros(n_items))
        self.gru = nn.GRU(e, e, num_layers=cfg.num_layers, batch_first=True,
                          dropout=cfg.dropout if cfg.num_layers > 1 else 0.0)
        self.drop = nn.Dropout(cfg.dropout)
        nn.init.normal_(self.embedding.weight, std=e**-0.5)
        with torch.no_grad():
            self.embedding.weight[0].zero_()
        if self.output is not None:
            nn.init.normal_(self.output.weight, std=e**-0.5)

    def hidden(self, seqs: Tensor) -> Tensor:
        """(B, T) padded item ids -> (B, T, e) states; position t has read items 0..t."""
        out, _ = self.gru(self.drop(self.embedding(seqs)))
        return self.drop(out)

    def item_table(self) -> Tensor:
        """(n_items, e) output embeddings (padding row dropped)."""
        table = self.embedding.weight if self.output is None else self.output.weight
        return table[1:]

    def logits(self, h: Tensor, items: Tensor | None = None) -> Tensor:
        """Scores of all items (items=None: (N, n_items)) or of the given items ((K,): (N, K))."""
        table: Tensor = self.item_table()
        bias: Tensor = self.bias
        if items is not None:
            table, bias = table[items], bias[items]
        return h @ table.T + bias


@register
class GRU4Rec(Recommender):
    name = "gru4rec"
    Config = GRU4RecConfig
    uses_history = True
    uses_user = True  # a known user without a history is scored from their training sequence

    def __init__(self, config: GRU4RecConfig | None = None) -> None:
        super().__init__(config)
        self.net: GRUNet | None = None
        self.best_epoch = 0
        self.user_items = np.zeros(0, dtype=np.int32)
        self.user_offsets = np.zeros(1, dtype=np.int64)
        self._device = torch.device("cpu")

    # ---------------------------------------------------------------- fit
    def _fit(self, train: Interactions, catalog: ItemCatalog | None, validation: Any) -> None:
        cfg: GRU4RecConfig = self.config
        if validation is not None and not isinstance(validation, RankingValidation):
            raise ConfigError("model 'gru4rec' validates with a RankingValidation (next-item targets)")
        seqs = train.to_sequences()
        self._keep_user_tails(seqs)
        windows = _windows(seqs, cfg.max_history + 1)
        if not windows:
            raise DataError("model 'gru4rec': no user has two or more training events")
        self._device = training.pick_device("gru4rec", cfg.device)
        with training.torch_session(cfg.seed, self._device, cfg.num_threads):
            self._train(windows, train.n_items, validation)

    def _keep_user_tails(self, seqs: list[np.ndarray]) -> None:
        tails = [s[-self.config.max_history:] for s in seqs]
        self.user_offsets = np.concatenate([[0], np.cumsum([len(t) for t in tails])]).astype(np.int64)
        self.user_items = np.concatenate(tails).astype(np.int32) if tails else np.zeros(0, dtype=np.int32)

    def _train(self, windows: list[np.ndarray], n_items: int, validation: RankingValidation | None) -> None:
        cfg: GRU4RecConfig = self.config
        rng = np.random.default_rng(cfg.seed)
        net = GRUNet(cfg, n_items).to(self._device)
        self.net = net
        opt = torch.optim.Adam(net.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)

        def epoch(_: int) -> float:
            net.train()
            order = rng.permutation(len(windows))
            total, count = 0.0, 0
            for start in range(0, len(order), cfg.batch_size):
                batch = _pad([windows[j] for j in order[start:start + cfg.batch_size]], self._device)
                loss, n = self._batch_loss(net, batch, n_items, rng)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total, count = total + float(loss.detach()) * n, count + n
            return total / max(count, 1)

        outcome = training.train_epochs(self, epochs=cfg.epochs, train_epoch=epoch, validation=validation,
                                        patience=cfg.patience, snapshot=lambda: training.copy_state(net),
                                        restore=net.load_state_dict)
        self.best_epoch = outcome.best_epoch
        net.eval()

    def _batch_loss(self, net: GRUNet, batch: Tensor, n_items: int, rng: np.random.Generator) -> tuple[Tensor, int]:
        """Next-item loss over the non-padding positions of a (B, T+1) batch of padded windows."""
        cfg: GRU4RecConfig = self.config
        inputs, targets = batch[:, :-1], batch[:, 1:]
        keep = targets > 0
        h = net.hidden(inputs)[keep]  # (N, e)
        target = targets[keep] - 1  # (N,) item indices
        if cfg.loss == "softmax":
            return full_softmax_ce(net.logits(h), target), len(target)
        neg = torch.as_tensor(rng.integers(0, n_items, size=cfg.negatives), device=h.device)
        pos = (h * net.item_table()[target]).sum(-1) + net.bias[target]
        return losses.bpr_max_loss(pos, net.logits(h, neg), reg=cfg.bpr_max_reg), len(target)

    # ---------------------------------------------------------------- scoring
    def can_score(self, query: Query) -> bool:
        self._require_fitted()
        if len(self._known(query.history)):
            return True
        return query.user is not None and 0 <= query.user < self.n_users and self._tail(query.user).size > 0

    def _known(self, history: np.ndarray) -> np.ndarray:
        h = np.asarray(history, dtype=np.int64)
        return h[(h >= 0) & (h < self.n_items)][-self.config.max_history:]

    def _tail(self, user: int) -> np.ndarray:
        return self.user_items[self.user_offsets[user]:self.user_offsets[user + 1]]

    def _score(self, queries: Sequence[Query]) -> np.ndarray:
        """Next-item logits over all items, from each query's history (or the user's training tail)."""
        assert self.net is not None
        net = self.net.eval()
        seqs = []
        for q in queries:
            known = self._known(q.history)
            seqs.append(known if len(known) else self._tail(int(q.user)))  # type: ignore[arg-type]
        out = []
        with torch.no_grad():
            for start in range(0, len(seqs), SCORE_BATCH):
                chunk = seqs[start:start + SCORE_BATCH]
                hidden = net.hidden(_pad(chunk, self._device))  # (B, T, e)
                last = torch.as_tensor([len(s) - 1 for s in chunk], device=self._device)
                h = hidden[torch.arange(len(chunk), device=self._device), last]  # (B, e)
                out.append(net.logits(h).float().cpu())
        return torch.cat(out).numpy()

    # ---------------------------------------------------------------- artifacts
    def _state(self) -> dict[str, np.ndarray]:
        assert self.net is not None
        return {**training.module_state(self.net), "user_items": self.user_items, "user_offsets": self.user_offsets}

    def _meta(self) -> dict[str, Any]:
        return {"best_epoch": self.best_epoch}

    def _set_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        self.user_items, self.user_offsets = arrays["user_items"], arrays["user_offsets"]
        self.best_epoch = int(meta.get("best_epoch", 0))
        self._device = torch.device("cpu")
        self.net = GRUNet(self.config, self.n_items)
        training.load_module_state(self.net, arrays)
        self.net.eval()


def _windows(seqs: list[np.ndarray], length: int) -> list[np.ndarray]:
    """Consecutive windows of at most `length` items (overlapping by one, so each transition is a
    target exactly once), cut from the end of each sequence; windows shorter than 2 are dropped."""
    out = []
    step = length - 1
    for s in seqs:
        end = len(s)
        while end >= 2:
            out.append(s[max(0, end - length):end])
            end -= step
    return out


def _pad(seqs: Sequence[np.ndarray], device: torch.device) -> Tensor:
    """(B, T) int64 tensor of item ids + 1, right-padded with 0."""
    width = max(len(s) for s in seqs)
    out = np.zeros((len(seqs), width), dtype=np.int64)
    for r, s in enumerate(seqs):
        out[r, :len(s)] = np.asarray(s, dtype=np.int64) + 1
    return torch.as_tensor(out, device=device)
