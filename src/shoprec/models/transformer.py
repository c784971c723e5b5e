"""Transformer sequence recommender (SASRec / HSTU family) that reads item content.

Read top to bottom: config -> item content -> network -> training data -> losses -> training loop
(early stopping, checkpoints, distributed) -> scoring -> artifacts.

- Item representation (one table, used for input tokens AND output scores, i.e. tied):
      item(i) = id(i) * trained(i) * keep(i)  +  mean(attribute embeddings of i)  +  W_text @ text(i)
  `trained(i)` is 0 for items never seen in training, so a cold item is scored through its content
  alone; `keep(i)` drops ids at random while training (`id_dropout`) so content learns to stand alone.
  Attributes are integer ids (ItemCatalog.attribute_ids, e.g. S3-Rec brand/category ids) plus brand and
  category-path tokens; text vectors come from shoprec.preprocess.text (MiniLM, cached per item).
- Input token = item * sqrt(d) + position (learned, counted from the newest event; or rotary) + event type
  + log2 time gap. Options: attention scores also from content alone (`content_attention`, DIF-SR style),
  an auxiliary next-item-attributes loss (`attribute_loss`).
- Pre-norm causal blocks with torch's scaled_dot_product_attention (flash kernels on GPU).
- Sequences are right-padded to the longest one in their batch, so causal attention never sees padding
  and needs no mask; the loss is computed on real positions only. Batches group similar lengths but
  hold about the same number of targets each (many short sequences or a few long ones): averaged per
  batch, every target then weighs the same, as with random batches (grouping a fixed number of
  sequences instead over-weights short histories and cost ~15% NDCG on Beauty).
- Loss: full softmax cross-entropy over the catalog (default; optionally with the items already in the
  history masked out, as the strict evaluation protocol excludes them, and the next few items as soft
  targets), or
  sampled softmax (in-batch + log-uniform negatives with logQ correction) for catalogs too big for it.
- AdamW, linear warm-up then cosine decay; early stopping on validation NDCG@10 (best weights kept);
  resumable checkpoints; `torchrun --nproc_per_node N` runs DistributedDataParallel (gloo / nccl).
- Fine-tuning transfer (`start_from(other model)`): the network starts from another platform's model
  (`transfer_weights`: everything but the item ids, which are per platform; item text is the shared space).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Self, cast

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file as load_tensors
from safetensors.torch import save_file as save_tensors
from torch import Tensor, nn

from shoprec.config import config_to_dict
from shoprec.data import IdMap, Interactions, ItemCatalog
from shoprec.errors import ConfigError, DataError
from shoprec.models.base import Query, RankingValidation, Recommender, register
from shoprec.models.seq_ensemble import StackedEncoder, shared_prefixes
from shoprec.models.softmax import full_softmax_loss, log_uniform_sampler, release_buffers, sampled_softmax_loss
from shoprec.types import EventType

log = logging.getLogger(__name__)

N_EVENT_TYPES = len(EventType) + 1  # code + 1; 0 = padding
N_GAP_BUCKETS = 32  # 0: unknown / no gap; b >= 1: gap in [2^(b-1), 2^b) seconds
POPULARITY_GRID = (0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.6, 0.8)
# parameters that fix the network's weights and their shapes: a fine-tuned model inherits them from its source
NETWORK_PARAMS = ("embedding_size", "n_blocks", "n_heads", "ffn_size", "max_len", "positions", "use_attributes",
                  "use_text", "text_encoder", "content_attention", "use_event_types", "use_time_gaps")


# ----------------------------------------------------------------------------- config
@dataclass(frozen=True)
class TransformerConfig:
    # network
    embedding_size: int = 128  # 128 (and no seen mask in the loss): the better Beauty validation NDCG@10
    n_blocks: int = 2
    n_heads: int = 2
    ffn_size: int = 256
    max_len: int = 50  # events of history read per query (the newest ones)
    positions: Literal["reverse", "rotary"] = "reverse"  # learned embedding of the distance to the newest
    # event, or rotary embeddings in attention (relative distances: each position sees itself as the newest)
    dropout: float = 0.5
    attention_dropout: float = 0.2
    stochastic_depth: float = 0.0  # probability of skipping a block's residual branch while training
    # item content
    use_attributes: bool = True  # attribute ids, brand and category tokens
    use_text: bool = True  # item text vectors (when the catalog has text)
    text_encoder: str = "auto"  # auto | minilm | hashing (shoprec.preprocess.text)
    text_cache_dir: str = ""  # "" = $SHOPREC_CACHE_DIR/text or ~/.cache/shoprec/text
    id_dropout: float = 0.1  # drop item ids while training so content alone can represent an item
    content_attention: bool = False  # attention scores also from the items' content alone (decoupled, DIF-SR)
    attribute_loss: float = 0.0  # weight of an auxiliary loss: predict the next item's attributes
    use_event_types: bool = True
    use_time_gaps: bool = True
    # objective
    loss: Literal["full", "sampled"] = "full"
    n_negatives: int = 1024  # log-uniform negatives per batch for loss="sampled"
    label_smoothing: float = 0.0
    future_targets: int = 1  # > 1: each position also learns the following items (full loss only) ...
    future_decay: float = 0.5  # ... the k-th next item weighted future_decay ** (k - 1)
    exclude_seen_in_loss: bool = False  # True: mask history items out of the softmax (as the strict protocol does)
    # scores -= popularity_correction * log(1 + training count of the item): the last items of a history
    # (validation / test targets) are rarer than training targets on average. None: chosen on the
    # validation targets among POPULARITY_GRID (0 without validation).
    popularity_correction: float | None = None
    # optimisation
    epochs: int = 20  # the length of the cosine schedule (a 20-epoch schedule beat 30 and 60 on Beauty validation)
    batch_size: int = 128  # sequences per batch on average (per process under torchrun); see length_batches
    learning_rate: float = 2e-3
    weight_decay: float = 0.0
    warmup_epochs: float = 1.0
    min_lr_ratio: float = 0.1  # cosine decay ends at learning_rate * min_lr_ratio at `epochs`
    ema: float = 0.0  # > 0: validate and keep an exponential moving average of the weights (e.g. 0.999)
    eval_every: int = 2  # epochs between validation runs
    patience: int = 2  # validation runs without improvement before stopping
    ensemble: int = 2  # members trained with seeds seed, seed + 1, ...; scores are their mean (2: +0.003 test
    # NDCG@10 on Beauty over one member, at twice the training and scoring cost; 1 for the fastest serving)
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 autocast on GPU; on a CPU with native
    # bf16 (AMX / AVX512-BF16) only the catalog-softmax products in bf16; fp32 otherwise
    num_threads: int = 0  # torch CPU threads while fitting; 0 = leave as is
    checkpoint_dir: str = ""  # resume from / save to this directory after every epoch
    max_seconds: float = 0.0  # > 0: stop after the first epoch that ends past this training time (best kept;
    # for an ensemble the time of all members together)
    progress: bool = True  # progress bar on stderr

    def __post_init__(self) -> None:
        positive = ("embedding_size", "n_blocks", "n_heads", "ffn_size", "max_len", "epochs", "batch_size",
                    "eval_every", "n_negatives", "future_targets", "ensemble")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigError(f"parameter {name!r} of model 'transformer' must be positive, "
                                  f"got {getattr(self, name)}")
        for name in ("dropout", "attention_dropout", "stochastic_depth", "id_dropout", "label_smoothing", "ema"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"parameter {name!r} of model 'transformer' must be in [0, 1), "
                                  f"got {getattr(self, name)}")
        head = self.embedding_size // self.n_heads
        if self.embedding_size % self.n_heads or (self.positions == "rotary" and head % 2):
            raise ConfigError(f"embedding_size {self.embedding_size} must be divisible by n_heads {self.n_heads}"
                              " (into an even head size for rotary positions)")
        if self.learning_rate <= 0:
            raise ConfigError(f"parameter 'learning_rate' of model 'transformer' must be > 0, got {self.learning_rate}")
        if not 0.0 < self.future_decay <= 1.0:
            raise ConfigError(f"parameter 'future_decay' of model 'transformer' must be in (0, 1], "
                              f"got {self.future_decay}")
        if self.popularity_correction is not None and self.popularity_correction < 0:
            raise ConfigError("parameter 'popularity_correction' of model 'transformer' must be >= 0 or null, "
                              f"got {self.popularity_correction}")
        for name in ("weight_decay", "warmup_epochs", "patience", "attribute_loss", "max_seconds", "min_lr_ratio"):
            if getattr(self, name) < 0:
                raise ConfigError(f"parameter {name!r} of model 'transformer' must be >= 0, got {getattr(self, name)}")


# ------------------------------------------------------------------------ item content
@dataclass
class ItemContent:
    """Content aligned with the model's items, row 0 = padding: attribute bags and text vectors."""

    attr_flat: np.ndarray  # int64 attribute indices (1-based) of all items, concatenated
    attr_offsets: np.ndarray  # int64 (n_items + 1,) start of each item's bag in attr_flat (row 0 empty)
    n_attributes: int
    text: np.ndarray  # (n_items + 1, text_dim) float32, or (n_items + 1, 0)
    text_encoder: str = ""
    vocabulary: tuple[str, ...] = ()  # the attribute tokens, index 1 first

    @property
    def has_content(self) -> np.ndarray:
        """(n_items + 1,) bool: the item has at least one attribute or a text vector."""
        has_attr = np.diff(np.append(self.attr_offsets, len(self.attr_flat))) > 0
        has_text = np.abs(self.text).sum(axis=1) > 0 if self.text.shape[1] else np.zeros(len(has_attr), bool)
        return has_attr | has_text


def build_content(catalog: ItemCatalog | None, items: IdMap, cfg: TransformerConfig) -> ItemContent:
    """Attribute bags and text vectors for `items` (either may be empty)."""
    n = len(items)
    bags: list[list[str]] = [[] for _ in range(n)]
    text = np.zeros((n + 1, 0), dtype=np.float32)
    encoder = ""
    if catalog is not None:
        rows = np.arange(n) if catalog.items == items else catalog.items.lookup(items.to_list())
        if cfg.use_attributes:
            bags = [_attribute_tokens(catalog, int(r)) if r >= 0 else [] for r in rows]
        if cfg.use_text and any(catalog.text(int(r)) for r in rows if r >= 0):
            from shoprec.preprocess.text import catalog_text_vectors

            cache = Path(cfg.text_cache_dir) if cfg.text_cache_dir else None
            tv = catalog_text_vectors(catalog, items, encoder=cfg.text_encoder, cache_dir=cache, progress=cfg.progress)
            text = np.vstack([np.zeros((1, tv.vectors.shape[1]), np.float32), tv.vectors])
            encoder = tv.encoder
    vocab: dict[str, int] = {}
    ids = [[vocab.setdefault(t, len(vocab) + 1) for t in bag] for bag in bags]
    lengths = np.array([0] + [len(b) for b in ids], dtype=np.int64)
    flat = np.array([i for b in ids for i in b], dtype=np.int64)
    return ItemContent(attr_flat=flat, attr_offsets=np.cumsum(lengths) - lengths,
                       n_attributes=len(vocab), text=text, text_encoder=encoder, vocabulary=tuple(vocab))


def _attribute_tokens(catalog: ItemCatalog, row: int) -> list[str]:
    """Attribute ids, the brand, and every prefix of the category path ("A > B" -> A, A > B); a category
    field holding a set ("Action|Comedy", as MovieLens genres) gives each member's paths."""
    tokens = [f"a:{int(a)}" for a in catalog.attribute_ids[row]] if row < len(catalog.attribute_ids) else []
    if catalog.brand[row]:
        tokens.append(f"b:{catalog.brand[row].strip().lower()}")
    for member in catalog.category[row].split("|"):
        parts = [p.strip().lower() for p in member.split(">") if p.strip()]
        tokens += ["c:" + " > ".join(parts[: i + 1]) for i in range(len(parts))]
    return list(dict.fromkeys(tokens))


# ----------------------------------------------------------------------------- network
def dropout(x: Tensor, p: float, training: bool) -> Tensor:
    """F.dropout, whose CPU mask comes from torch.rand instead: the same distribution, ~4x faster than the
    bernoulli_ sampler behind F.dropout on CPU (which was ~12% of a training step there)."""
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu":
        return F.dropout(x, p, True)
    keep = torch.rand(x.shape, dtype=torch.float32) >= p
    return x * keep.to(x.dtype).mul_(1.0 / (1.0 - p))


def _linear(layer: nn.Linear, x: Tensor) -> Tensor:
    return F.linear(x, layer.weight, layer.bias)


def _norm(layer: nn.LayerNorm, x: Tensor) -> Tensor:
    return F.layer_norm(x, layer.normalized_shape, layer.weight, layer.bias, layer.eps)


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(ln(x)), x + ffn(ln(x)); causal attention via SDPA. The layers
    are modules (their weights, their names in artifacts) but are applied as functions: a module call's
    hook machinery cost ~20% of a short history's encoding at serving time."""

    def __init__(self, d: int, n_heads: int, ffn: int, dropout: float, attn_dropout: float, drop_path: float,
                 content_attention: bool = False):
        super().__init__()
        self.n_heads, self.p, self.attn_dropout, self.drop_path = n_heads, dropout, attn_dropout, drop_path
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.content_qk = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, 2 * d)) if content_attention else None
        self.proj = nn.Linear(d, d)
        self.ffn = nn.Sequential(nn.Linear(d, ffn), nn.GELU(), nn.Dropout(dropout), nn.Linear(ffn, d))

    def forward(self, x: Tensor, rotary: tuple[Tensor, Tensor] | None = None,
                content: Tensor | None = None) -> Tensor:  # x: (B, L, d)
        return self.feed_forward(self.attend(x, rotary, content))

    def _content_qk(self, content: Tensor) -> Tensor:
        assert self.content_qk is not None
        return _linear(cast(nn.Linear, self.content_qk[1]), _norm(cast(nn.LayerNorm, self.content_qk[0]), content))

    def attend(self, x: Tensor, rotary: tuple[Tensor, Tensor] | None = None, content: Tensor | None = None) -> Tensor:
        """Causal self-attention; with `content` (B, L, d) the scores add q_c . k_c of the content alone
        (queries and keys are concatenated per head, so one SDPA call computes q.k + q_c.k_c)."""
        b, n, d = x.shape
        q, k, v = _linear(self.qkv, _norm(self.ln1, x)).view(b, n, 3, self.n_heads, d // self.n_heads).permute(
            2, 0, 3, 1, 4)
        if rotary is not None:
            q, k = _rotate(q, *rotary), _rotate(k, *rotary)
        scale = None
        if self.content_qk is not None and content is not None:
            qc, kc = self._content_qk(content).view(b, n, 2, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
            q, k = torch.cat([q, qc], dim=-1), torch.cat([k, kc], dim=-1)
            scale = 1.0 / math.sqrt(d // self.n_heads)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale,  # (B, H, L, d/H)
                                           dropout_p=self.attn_dropout if self.training else 0.0)
        return x + self._skip(dropout(_linear(self.proj, a.transpose(1, 2).reshape(b, n, d)), self.p, self.training))

    def attend_last(self, x: Tensor, lengths: Tensor, rotary: tuple[Tensor, Tensor] | None = None,
                    content: Tensor | None = None) -> Tensor:
        """`attend` at each row's newest position only (inference): x (B, L, d) right-padded -> (B, d).
        Keys and values come from every position, the query from position lengths - 1 alone, and keys past
        a row's length (its padding) are masked, so this equals attend(x)[row, lengths - 1]."""
        b, n, d = x.shape
        h, dh = self.n_heads, d // self.n_heads
        rows = torch.arange(b, device=x.device)
        normed = _norm(self.ln1, x)
        kv = F.linear(normed, self.qkv.weight[d:], self.qkv.bias[d:]).view(b, n, 2, h, dh).permute(2, 0, 3, 1, 4)
        k, v = kv[0], kv[1]  # (B, H, L, dh)
        q = F.linear(normed[rows, lengths - 1], self.qkv.weight[:d], self.qkv.bias[:d]).view(b, h, 1, dh)
        if rotary is not None:
            cos, sin = rotary
            k = _rotate(k, cos, sin)
            q = _rotate(q, cos[lengths - 1][:, None, None, :], sin[lengths - 1][:, None, None, :])
        scale = None
        if self.content_qk is not None and content is not None:
            qc, kc = self._content_qk(content).view(b, n, 2, h, dh).permute(2, 0, 3, 1, 4)
            q, k = torch.cat([q, qc[rows, :, lengths - 1][:, :, None]], dim=-1), torch.cat([k, kc], dim=-1)
            scale = 1.0 / math.sqrt(dh)
        visible = (torch.arange(n, device=x.device)[None, :] < lengths[:, None])[:, None, None, :]  # (B, 1, 1, L)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=visible, scale=scale)  # (B, H, 1, dh)
        return x[rows, lengths - 1] + _linear(self.proj, a.reshape(b, d))

    def feed_forward(self, x: Tensor) -> Tensor:
        first, last = cast(nn.Linear, self.ffn[0]), cast(nn.Linear, self.ffn[3])
        hidden = dropout(F.gelu(_linear(first, _norm(self.ln2, x))), self.p, self.training)
        return x + self._skip(dropout(_linear(last, hidden), self.p, self.training))

    def _skip(self, branch: Tensor) -> Tensor:
        """Stochastic depth: drop the residual branch per sequence with probability drop_path."""
        if not self.training or self.drop_path == 0.0:
            return branch
        keep = torch.rand(branch.shape[0], 1, 1, device=branch.device) >= self.drop_path
        return branch * keep / (1.0 - self.drop_path)


def rotary_tables(length: int, dim: int, base: float = 10_000.0) -> tuple[Tensor, Tensor]:
    """cos, sin (length, dim) of rotary position embeddings: attention then depends on distances only,
    so every position of a causal sequence is encoded as if the sequence ended there."""
    freqs = base ** (-torch.arange(0, dim, 2, dtype=torch.float32) / dim)  # (dim/2,)
    angles = torch.arange(length, dtype=torch.float32)[:, None] * freqs[None, :]  # (length, dim/2)
    angles = torch.cat([angles, angles], dim=1)
    return angles.cos(), angles.sin()


def _rotate(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotary embedding of x (B, H, L, dim) with cos/sin (L, dim)."""
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos.to(x.dtype) + rotated * sin.to(x.dtype)


class SeqNet(nn.Module):
    """Items, attributes, text -> item table; sequences -> hidden states; forward(batch) -> training loss."""

    def __init__(self, cfg: TransformerConfig, n_items: int, content: ItemContent, trained: np.ndarray):
        super().__init__()
        d = cfg.embedding_size
        self.cfg = cfg
        self.item_id = nn.Embedding(n_items + 1, d, padding_idx=0)
        self.attributes = nn.EmbeddingBag(content.n_attributes + 1, d, mode="mean") if content.n_attributes else None
        self.text = nn.Linear(content.text.shape[1], d, bias=False) if content.text.shape[1] else None
        self.has_content = self.attributes is not None or self.text is not None
        self.attribute_vocabulary = content.vocabulary  # what the attribute rows mean (for transfer_weights)
        self.position = nn.Embedding(cfg.max_len, d) if cfg.positions == "reverse" else None
        self.event = nn.Embedding(N_EVENT_TYPES, d) if cfg.use_event_types else None
        self.gap = nn.Embedding(N_GAP_BUCKETS, d) if cfg.use_time_gaps else None
        self.blocks = nn.ModuleList(
            Block(d, cfg.n_heads, cfg.ffn_size, cfg.dropout, cfg.attention_dropout,
                  cfg.stochastic_depth * (i + 1) / cfg.n_blocks, self.has_content and cfg.content_attention)
            for i in range(cfg.n_blocks))
        self.ln_out = nn.LayerNorm(d)
        self.loss_dtype = torch.float32  # dtype of the output-layer products (bfloat16 under mixed precision)
        self.attr_flat: Tensor
        self.attr_offsets: Tensor
        self.register_buffer("attr_flat", torch.from_numpy(content.attr_flat))
        self.register_buffer("attr_offsets", torch.from_numpy(content.attr_offsets))
        self.attr_lengths: Tensor
        self.register_buffer("attr_lengths", torch.from_numpy(
            np.diff(np.append(content.attr_offsets, len(content.attr_flat)))), persistent=False)
        self.register_buffer("text_vectors", torch.from_numpy(content.text))
        self.trained_mask: Tensor
        self.register_buffer("trained_mask", torch.from_numpy(trained.astype(np.float32))[:, None])  # (n+1, 1)
        self.apply(_init_weights)

    def content_table(self) -> Tensor | None:
        """(n_items + 1, d) content part of the item vectors (attributes + text), None without content."""
        parts = []
        if self.attributes is not None:
            parts.append(self.attributes(self.attr_flat, self.attr_offsets))
        if self.text is not None:
            parts.append(self.text(self.text_vectors))
        return sum(parts[1:], parts[0]) if parts else None

    def item_table(self, keep_ids: Tensor | None = None, content: Tensor | None = None) -> Tensor:
        """(n_items + 1, d) item vectors: id (zero for untrained items, dropped where keep_ids is 0) + content."""
        ids = self.item_id.weight * (self.trained_mask if keep_ids is None else self.trained_mask * keep_ids)
        content = content if content is not None else self.content_table()
        return ids if content is None else ids + content

    def encode(self, table: Tensor, items: Tensor, events: Tensor, gaps: Tensor, lengths: Tensor,
               last_only: bool = False, content_table: Tensor | None = None) -> Tensor:
        """items/events/gaps: (B, L) right-padded with 0; lengths (B,) -> hidden states (B, L, d),
        or (B, d) at each row's newest event when `last_only` (the last block's query, projection and
        feed-forward then run there only)."""
        steps = torch.arange(items.shape[1], device=items.device)
        reverse = (lengths[:, None] - 1 - steps[None, :]).clamp(min=0, max=self.cfg.max_len - 1)  # 0 = newest
        x = table[items] * math.sqrt(self.cfg.embedding_size)
        rotary = None
        if self.position is not None:
            x = x + F.embedding(reverse, self.position.weight)
        else:
            cos, sin = rotary_tables(items.shape[1], self.cfg.embedding_size // self.cfg.n_heads)
            rotary = (cos.to(x.device), sin.to(x.device))
        if self.event is not None:
            x = x + F.embedding(events, self.event.weight)
        if self.gap is not None:
            x = x + F.embedding(gaps, self.gap.weight)
        x = dropout(x, self.cfg.dropout, self.training)
        content = content_table[items] if content_table is not None and self.cfg.content_attention else None
        blocks = cast(list[Block], list(self.blocks))
        for block in blocks[:-1]:
            x = block.feed_forward(block.attend(x, rotary, content))
        last = blocks[-1]
        if last_only and not self.training:  # the newest position's query alone (serving, validation)
            x = last.attend_last(x, lengths, rotary, content)  # (B, d)
        else:
            x = last.attend(x, rotary, content)
            if last_only:
                x = x[torch.arange(len(lengths), device=x.device), lengths - 1]  # (B, d)
        return _norm(self.ln_out, last.feed_forward(x))

    def forward(self, batch: dict[str, Tensor], keep_ids: Tensor | None = None,
                negatives: Tensor | None = None, log_q: Tensor | None = None) -> Tensor:
        """Mean training loss over the batch's real positions (full or sampled softmax)."""
        content = self.content_table()
        table = self.item_table(keep_ids, content)
        h = self.encode(table, batch["items"], batch["events"], batch["gaps"], batch["lengths"],
                        content_table=content)
        real = batch["targets"] > 0  # (B, L)
        h = h[real]  # (N, d)
        targets = batch["targets"][real]  # (N,)
        seen = batch["seen"][real] if "seen" in batch else None  # (N, L) history items visible at each position
        if negatives is None and "future" in batch:  # the next K items, weighted future_decay ** k
            future = batch["future"][real]  # (N, K)
            decay = self.cfg.future_decay ** torch.arange(future.shape[1], device=future.device, dtype=torch.float32)
            weights = (future > 0) * decay
            weights = weights / weights.sum(1, keepdim=True)
            loss = full_softmax_loss(h, table, future, seen, self.cfg.label_smoothing, self.loss_dtype, weights)
        elif negatives is None:
            loss = full_softmax_loss(h, table, targets, seen, self.cfg.label_smoothing, self.loss_dtype)
        else:
            assert log_q is not None
            loss = sampled_softmax_loss(h.float(), table.float(), targets, negatives, log_q, seen)
        if self.cfg.attribute_loss and self.attributes is not None:
            loss = loss + self.cfg.attribute_loss * self.attribute_loss(h.float(), targets)
        return loss

    def attribute_loss(self, h: Tensor, targets: Tensor) -> Tensor:
        """Cross-entropy of softmax(h @ attribute embeddings) against the uniform distribution over the
        target item's attributes (rows whose target has no attribute are left out)."""
        assert self.attributes is not None
        logits = h @ self.attributes.weight.float().T  # (N, A + 1); column 0 unused
        logits[:, 0] = float("-inf")
        logp = torch.log_softmax(logits, dim=-1)
        counts = self.attr_lengths[targets]  # (N,)
        rows = torch.repeat_interleave(torch.arange(len(targets), device=h.device), counts)
        first = torch.repeat_interleave(self.attr_offsets[targets] - (torch.cumsum(counts, 0) - counts), counts)
        cols = self.attr_flat[first + torch.arange(len(rows), device=h.device)]
        picked = logp[rows, cols] / counts[rows]
        return -picked.sum() / (counts > 0).sum().clamp(min=1)


def transfer_weights(src: SeqNet, dst: SeqNet) -> list[str]:
    """Copy `src`'s weights into `dst` where the name and shape match: the blocks, the position, event and
    gap embeddings, the text projection and the output norm. Never the item id embeddings (items differ
    per platform: they start fresh); the attribute embeddings only when both vocabularies are the same
    (row r means the same token). Buffers (the platform's item content) stay. Returns the copied names."""
    theirs = dict(src.named_parameters())
    copied = []
    with torch.no_grad():
        for name, p in dst.named_parameters():
            if name == "item_id.weight" or name not in theirs or theirs[name].shape != p.shape:
                continue
            if name.startswith("attributes.") and src.attribute_vocabulary != dst.attribute_vocabulary:
                continue
            p.copy_(theirs[name])
            copied.append(name)
    return copied


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, nn.Linear | nn.Embedding | nn.EmbeddingBag):
        nn.init.trunc_normal_(module.weight, std=0.02, a=-0.04, b=0.04)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)


# ------------------------------------------------------------------------ training data
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


# -------------------------------------------------------------------------- distributed
@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: torch.device) -> Dist:
    """Join the torchrun process group when WORLD_SIZE > 1 (gloo on CPU, nccl on GPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Dist(rank=dist.get_rank(), world=dist.get_world_size())


def _all_sum(values: list[float], dist_: Dist, device: torch.device) -> list[float]:
    if dist_.world == 1:
        return values
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


# --------------------------------------------------------------------------- the model
@register
class Transformer(Recommender):
    """Causal self-attention over a user's recent events, items represented by id + content."""

    name = "transformer"
    Config = TransformerConfig
    uses_history = True
    uses_user = False

    def __init__(self, config: TransformerConfig | None = None) -> None:
        super().__init__(config)
        self.net: SeqNet | None = None
        self.best_epoch = 0
        self.default_event = EventType.PURCHASE.code + 1
        self._table: Tensor | None = None
        self._out_table: Tensor | None = None
        self._content: Tensor | None = None
        self.log_counts = np.zeros(0, dtype=np.float32)  # log(1 + training count) per item
        self.popularity_correction = 0.0  # the correction in use (config value or chosen on validation)
        self.popularity_search: dict[str, float] = {}  # validation NDCG per candidate correction
        self._penalty: Tensor | None = None
        self._item_factors: np.ndarray | None = None  # cache of `item_factors`
        self._members: list[_Member] = []  # the trained networks (an ensemble when config.ensemble > 1)
        self._stacked: StackedEncoder | None = None  # the members as one batched network (inference)
        self.best_epochs: list[int] = []
        self._device = torch.device("cpu")
        self._source: tuple[Transformer, str] | None = None  # start_from's model and label
        self.initialised_from: dict[str, Any] = {}  # where fit started from, and what it copied

    def start_from(self, source: Transformer, label: str = "") -> Self:
        """Fit from `source`'s weights (a fitted transformer, e.g. another platform's; its first member when
        it is an ensemble; `label` names it in the model meta) instead of random ones, then train as usual:
        see `transfer_weights`."""
        if not isinstance(source, Transformer) or source.net is None:
            raise ConfigError("model 'transformer' can start only from a fitted transformer model")
        self._source = (source, label)
        return self

    # ---------------------------------------------------------------- fit
    def _fit(self, train: Interactions, catalog: ItemCatalog | None, validation: Any) -> None:
        cfg = self.config
        if validation is not None and not isinstance(validation, RankingValidation):
            raise ConfigError("model 'transformer' validates with a RankingValidation (next-item targets)")
        self._device = _pick_device(cfg.device)
        dist_ = setup_distributed(self._device)
        threads = torch.get_num_threads()
        if cfg.num_threads:
            torch.set_num_threads(cfg.num_threads)
        self.popularity_correction, self.popularity_search = 0.0, {}
        self._set_members([])
        self.initialised_from = {}
        members, self.best_epochs = [], []
        started = time.perf_counter()
        try:
            for k in range(cfg.ensemble):
                left = cfg.max_seconds - (time.perf_counter() - started) if cfg.max_seconds else 0.0
                member_cfg = dataclasses.replace(cfg, seed=cfg.seed + k, max_seconds=max(left, 1e-3) if left else 0.0,
                                                 checkpoint_dir=(str(Path(cfg.checkpoint_dir) / f"member-{k}")
                                                                 if cfg.checkpoint_dir and cfg.ensemble > 1
                                                                 else cfg.checkpoint_dir))
                with torch.random.fork_rng(devices=[self._device] if self._device.type == "cuda" else []):
                    torch.manual_seed(member_cfg.seed)
                    member_log = self._train(member_cfg, train, catalog, validation, dist_)
                self.training_log += [{**e, "member": k} if cfg.ensemble > 1 else e for e in member_log]
                self.best_epochs.append(self.best_epoch)
                members.append(self._current())
            self._set_members(members)
            self.net, self.best_epoch = members[0].net, self.best_epochs[0]
            self.log_counts = np.log1p(np.bincount(train.item, minlength=train.n_items)).astype(np.float32)
            fixed = cfg.popularity_correction
            self.popularity_correction = fixed if fixed is not None else (
                self._choose_popularity_correction(validation, dist_) if validation is not None else 0.0)
            self._finish(self.net)
        finally:
            torch.set_num_threads(threads)
            release_buffers()

    def _train(self, cfg: TransformerConfig, train: Interactions, catalog: ItemCatalog | None,
               validation: RankingValidation | None, dist_: Dist) -> list[dict[str, Any]]:
        """Train one network (one ensemble member) with config `cfg`; returns its training log."""
        device = self._device
        seqs = build_sequences(train)
        windows = training_windows(seqs, cfg.max_len)
        if not len(windows):
            raise DataError("model 'transformer': no user has two or more training events")
        counts = np.bincount(seqs.items, minlength=train.n_items + 1)
        self.default_event = int(np.bincount(seqs.events).argmax())
        content = build_content(catalog, train.items, cfg)
        net = SeqNet(cfg, train.n_items, content, trained=counts > 0)
        if self._source is not None:
            self._init_from_source(net)
        net = net.to(device)
        net.loss_dtype = _compute_dtype(device, cfg.precision)
        self.net = net
        model: nn.Module = net
        if dist_.world > 1:
            ids = [device.index] if device.type == "cuda" else None
            model = nn.parallel.DistributedDataParallel(net, device_ids=ids)
        optimizer = _optimizer(net, cfg)
        steps_per_epoch = math.ceil(len(windows) / cfg.batch_size / dist_.world)
        state = TrainState()
        start = f"start:{self._source[1]}" if self._source is not None else ""  # never resume another start
        ckpt = Checkpointer(cfg.checkpoint_dir, _fingerprint(cfg, train) + start) if cfg.checkpoint_dir else None
        if ckpt is not None and ckpt.exists():
            state = ckpt.load(net, optimizer)
            log.info("transformer: resumed from %s after epoch %d", cfg.checkpoint_dir, state.epoch)
        if cfg.ema and state.ema is None:
            state.ema = [p.detach().clone() for p in net.parameters()]
        sampler = self._negative_sampler(counts) if cfg.loss == "sampled" else None
        id_drop = cfg.id_dropout if content.has_content.any() else 0.0
        with _progress(cfg.progress and dist_.main, cfg.epochs) as advance:
            advance(state.epoch)
            started = time.perf_counter()
            while state.epoch < cfg.epochs and not state.stopped:
                epoch = state.epoch + 1
                t0, c0 = time.perf_counter(), time.process_time()
                torch.manual_seed(cfg.seed * 1_000_003 + epoch * 7919 + dist_.rank)
                loss = self._epoch(cfg, model, optimizer, seqs, windows, epoch, steps_per_epoch, state, dist_,
                                   sampler, id_drop)
                entry: dict[str, Any] = {"epoch": epoch, "loss": loss, "seconds": time.perf_counter() - t0,
                                         "cpu_seconds": time.process_time() - c0,
                                         "learning_rate": optimizer.param_groups[0]["lr"]}
                out_of_time = cfg.max_seconds > 0 and _all_sum(
                    [float(time.perf_counter() - started > cfg.max_seconds)], dist_, device)[0] > 0
                if validation is not None and (epoch % cfg.eval_every == 0 or epoch == cfg.epochs or out_of_time):
                    t1, c1 = time.perf_counter(), time.process_time()
                    entry.update(self._validate(net, validation, dist_, state, epoch))
                    entry["eval_seconds"] = time.perf_counter() - t1
                    entry["eval_cpu_seconds"] = time.process_time() - c1
                state.stopped = state.stopped or out_of_time
                state.epoch = epoch
                log.info("transformer epoch %d: %s", epoch, " ".join(
                    f"{k} {v:.4g}" for k, v in entry.items() if k != "epoch"))
                state.log.append(entry)
                if ckpt is not None and dist_.main:
                    ckpt.save(net, optimizer, state)
                advance(1, entry)
        if state.best is not None:
            net.load_state_dict(state.best)
        elif state.ema is not None:
            _swap(net, state.ema)
        self.best_epoch = state.best_epoch or state.epoch
        self._finish(net)
        return state.log

    def _init_from_source(self, net: SeqNet) -> None:
        """Copy the `start_from` model's weights into `net` and record what was copied."""
        assert self._source is not None
        source, label = self._source
        assert source.net is not None
        if source.config.embedding_size != net.cfg.embedding_size:
            raise ConfigError(f"parameter 'embedding_size' of model 'transformer' must be that of the start model "
                              f"{label or ''} ({source.config.embedding_size}) to start from it, "
                              f"got {net.cfg.embedding_size}")
        copied = transfer_weights(source.net, net)
        fresh = [name for name, _ in net.named_parameters() if name not in copied]
        self.initialised_from = {"model": label, "copied": copied, "fresh": fresh}
        log.info("transformer: started from %s (%d weights copied, fresh: %s)", label, len(copied), fresh)

    def _epoch(self, cfg: TransformerConfig, model: nn.Module, optimizer: torch.optim.Optimizer, seqs: Sequences,
               windows: np.ndarray, epoch: int, steps_per_epoch: int, state: TrainState, dist_: Dist,
               sampler: tuple[Tensor, Tensor, Tensor] | None, id_drop: float) -> float:
        device = self._device
        rng = np.random.default_rng([cfg.seed, epoch])
        batches = length_batches(windows, cfg.batch_size, rng)
        batches = batches[dist_.rank::dist_.world][:len(batches) // dist_.world]  # equal count on every rank
        gen = torch.Generator(device=device).manual_seed(cfg.seed * 1_000_003 + epoch + 7 * dist_.rank)
        model.train()
        total = 0.0
        for idx in batches:
            for group in optimizer.param_groups:
                group["lr"] = _learning_rate(cfg, state.step, steps_per_epoch)
            arrays = make_batch(seqs, windows[idx], cfg.exclude_seen_in_loss, cfg.future_targets)
            batch = {k: torch.from_numpy(v).to(device, non_blocking=True) for k, v in arrays.items()}
            n_rows = self.n_items + 1
            keep = (torch.rand(n_rows, 1, generator=gen, device=device) >= id_drop).float() if id_drop else None
            negatives = log_q = None
            if sampler is not None:
                negatives, log_q = _sample_negatives(sampler, cfg.n_negatives, int((batch["targets"] > 0).sum()), gen)
            with _autocast(device, cfg.precision):
                loss = model(batch, keep, negatives, log_q)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if state.ema is not None:
                decay = min(cfg.ema, (1 + state.step) / (10 + state.step))
                torch._foreach_lerp_(state.ema, [p.detach() for p in model.parameters()], 1.0 - decay)
            state.step += 1
            total += float(loss.detach())
        return total / max(len(batches), 1)

    def _negative_sampler(self, counts: np.ndarray) -> tuple[Tensor, Tensor, Tensor]:
        """(items by popularity, their log-uniform probabilities, unigram probability per item)."""
        order, p_rank = log_uniform_sampler(counts[1:].astype(np.float64))
        unigram = counts.astype(np.float64) / counts.sum()
        dev = self._device
        return (torch.from_numpy(order + 1).to(dev), torch.from_numpy(p_rank).to(dev),
                torch.from_numpy(unigram).to(dev))

    def _validate(self, net: SeqNet, validation: RankingValidation, dist_: Dist, state: TrainState,
                  epoch: int) -> dict[str, float]:
        if state.ema is not None:
            _swap(net, state.ema)  # validate (and keep) the averaged weights
        self._finish(net)
        ndcg, hr = self._sharded_metrics(validation, dist_)
        key = f"NDCG@{validation.k}"
        if ndcg > state.best_score:
            state.best_score, state.best_epoch, state.bad_evals = ndcg, epoch, 0
            state.best = {k: v.detach().clone() for k, v in net.state_dict().items()}
        else:
            state.bad_evals += 1
            state.stopped = state.bad_evals > self.config.patience
        if state.ema is not None:
            _swap(net, state.ema)  # back to the trained weights
        net.train()
        return {f"val_{key}": ndcg, f"val_HR@{validation.k}": hr}

    def _choose_popularity_correction(self, validation: RankingValidation, dist_: Dist) -> float:
        """The POPULARITY_GRID value with the best validation NDCG@k (the smallest among equals)."""
        assert self.net is not None
        sums = np.zeros(len(POPULARITY_GRID))
        mine = np.arange(dist_.rank, len(validation.queries), dist_.world)
        log_counts = torch.from_numpy(self.log_counts).to(self._device)
        for chunk in _by_length([validation.queries[r] for r in mine], validation.batch_size):
            rows = mine[chunk]
            raw = self._score_tensor([validation.queries[r] for r in rows])
            for i, c in enumerate(POPULARITY_GRID):
                ranks = _ranks(raw - c * log_counts, validation.targets[rows], _rows_of(validation.exclude, rows))
                hit = ranks < validation.k
                sums[i] += float(torch.where(hit, 1.0 / torch.log2(ranks + 2.0), 0.0).sum())
        totals = np.array(_all_sum([*sums.tolist(), float(len(mine))], dist_, self._device))
        ndcg = totals[:-1] / max(totals[-1], 1.0)
        self.popularity_search = {str(c): float(v) for c, v in zip(POPULARITY_GRID, ndcg, strict=True)}
        best = float(POPULARITY_GRID[int(np.argmax(ndcg))])
        log.info("transformer: popularity correction %s (validation NDCG by value: %s)", best, self.popularity_search)
        return best

    def _sharded_metrics(self, validation: RankingValidation, dist_: Dist) -> tuple[float, float]:
        """Validation NDCG@k / HR@k, ranked on the model's device with the rule of `ranking.target_ranks`;
        under torchrun each process ranks a share of the queries."""
        mine = np.arange(dist_.rank, len(validation.queries), dist_.world)
        sums = [0.0, 0.0, 0.0]
        for chunk in _by_length([validation.queries[r] for r in mine], validation.batch_size):
            rows = mine[chunk]
            ranks = self._target_ranks([validation.queries[r] for r in rows], validation.targets[rows],
                                       _rows_of(validation.exclude, rows))
            hit = ranks < validation.k
            sums[0] += float(torch.where(hit, 1.0 / torch.log2(ranks + 2.0), 0.0).sum())
            sums[1] += float(hit.sum())
            sums[2] += len(rows)
        ndcg_sum, hit_sum, count = _all_sum(sums, dist_, self._device)
        return ndcg_sum / max(count, 1.0), hit_sum / max(count, 1.0)

    def _target_ranks(self, queries: Sequence[Query], targets: np.ndarray, exclude: Any) -> Tensor:
        return _ranks(self._score_tensor(queries), targets, exclude)

    def _finish(self, net: SeqNet) -> None:
        """Switch to inference: eval mode and the item table computed once."""
        net.eval()
        with torch.no_grad():
            content = net.content_table()
            self._content = content.float() if content is not None and self.config.content_attention else None
            self._table = net.item_table(content=content).float()
            self._out_table = self._table[1:].T.contiguous()  # (d, n_items)
            self._penalty, self._item_factors = None, None
            if self.popularity_correction and len(self.log_counts):
                self._penalty = self.popularity_correction * torch.from_numpy(self.log_counts).to(self._table.device)

    # ------------------------------------------------------------------ scoring
    def can_score(self, query: Query) -> bool:
        """A query is scored from its history: it needs at least one item the model knows."""
        hist = np.asarray(query.history)
        return bool(((hist >= 0) & (hist < self.n_items)).any())

    def _score(self, queries: Sequence[Query]) -> np.ndarray:
        step = 512
        if len(queries) <= step:
            return self._score_batch(queries)
        out = np.empty((len(queries), self.n_items), dtype=np.float32)
        for rows in _by_length(queries, step):  # similar lengths together: little padding
            out[rows] = self._score_batch([queries[r] for r in rows])
        return out

    def _score_batch(self, queries: Sequence[Query]) -> np.ndarray:
        return self._score_tensor(queries).cpu().numpy()

    def _score_tensor(self, queries: Sequence[Query]) -> Tensor:
        """(B, n_items) float32 scores on the model's device: the mean of the ensemble members' scores
        (while a member trains, that member's alone), minus the popularity correction."""
        members = self._members or [self._current()]
        with torch.inference_mode():
            states = self._hidden(queries, members)
            scores = states[0] @ members[0].out_table  # float32: bf16 scores would create ties in the ranking
            for state, member in zip(states[1:], members[1:], strict=True):
                scores += state @ member.out_table
            if len(members) > 1:
                scores /= len(members)
            return scores if self._penalty is None else scores - self._penalty

    def _hidden(self, queries: Sequence[Query], members: Sequence[_Member]) -> list[Tensor]:
        """Each member's float32 hidden state (B, d) at every query's newest event."""
        arrays = self._query_arrays(queries)
        batch = {k: torch.from_numpy(v).to(self._device) for k, v in arrays.items()}
        with torch.inference_mode(), _autocast(self._device, self.config.precision):
            if self._stacked is not None and members is self._members:  # the fitted members, in one pass
                found = shared_prefixes(arrays["items"], arrays["events"], arrays["gaps"], arrays["lengths"])
                states = self._stacked.encode(batch["items"], batch["events"], batch["gaps"], batch["lengths"],
                                              found)
                return list(states.float().unbind(0))
            return [m.net.encode(m.table, batch["items"], batch["events"], batch["gaps"], batch["lengths"],
                                 last_only=True, content_table=m.content).float() for m in members]

    # -------------------------------------------------- inner-product view (serving's ANN candidates)
    @property
    def item_factors(self) -> np.ndarray:
        """(n_items, D) item vectors with scores == user_vectors(queries) @ item_factors.T: the members' item
        tables side by side, and a last column of minus the popularity correction when there is one."""
        if self._item_factors is None:
            members = self._members or [self._current()]
            parts = [m.out_table.T.float().cpu().numpy() for m in members]
            if self._penalty is not None:
                parts.append(-self._penalty.float().cpu().numpy()[:, None])
            self._item_factors = np.ascontiguousarray(np.concatenate(parts, axis=1), dtype=np.float32)
        return self._item_factors

    def user_vectors(self, queries: Sequence[Query]) -> np.ndarray:
        """(B, D) query vectors matching `item_factors`: each member's newest hidden state / n_members."""
        members = self._members or [self._current()]
        with torch.inference_mode():
            parts = [state / len(members) for state in self._hidden(queries, members)]
            if self._penalty is not None:
                parts.append(torch.ones(len(queries), 1, device=parts[0].device))
            return torch.cat(parts, dim=1).cpu().numpy()

    def _set_members(self, members: list[_Member]) -> None:
        self._members = members
        nets = [m.net for m in members]
        self._stacked = StackedEncoder(nets, [m.table for m in members]) if members and StackedEncoder.supports(
            nets) else None

    def _current(self) -> _Member:
        """The network being trained (or the only one), with its inference tables."""
        assert self.net is not None and self._table is not None and self._out_table is not None
        return _Member(self.net, self._table, self._out_table, self._content)

    def _query_arrays(self, queries: Sequence[Query]) -> dict[str, np.ndarray]:
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
        events = np.full(total, self.default_event, dtype=np.int64)
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
        known = (hist >= 0) & (hist < self.n_items)
        # rank of each known event from the newest one of its row (0 = newest); keep the newest max_len
        known_per_row = np.bincount(row[known], minlength=len(queries)).astype(np.int64)
        order = np.cumsum(known) - 1  # index among all known events
        first_known = np.cumsum(known_per_row) - known_per_row
        from_newest = known_per_row[row] - 1 - (order - first_known[row])
        keep = known & (from_newest < self.config.max_len)
        lengths = np.minimum(known_per_row, self.config.max_len)
        position = lengths[row] - 1 - from_newest  # column in the padded arrays, oldest first
        width = max(int(lengths.max()) if len(lengths) else 1, 1)
        out = {k: np.zeros((len(queries), width), dtype=np.int64) for k in ("items", "events", "gaps")}
        rows, cols = row[keep], position[keep]
        out["items"][rows, cols] = hist[keep] + 1
        out["events"][rows, cols] = events[keep]
        out["gaps"][rows, cols] = gaps[keep]
        out["lengths"] = np.maximum(lengths, 1)
        return out

    # ---------------------------------------------------------------- artifacts
    def _state(self) -> dict[str, np.ndarray]:
        """Member 0's tensors under their own names, member k's under "member{k}." + name."""
        arrays: dict[str, np.ndarray] = {"log_counts": self.log_counts}
        for k, m in enumerate(self._members or [self._current()]):
            prefix = f"member{k}." if k else ""
            arrays.update({prefix + name: v.detach().cpu().float().numpy() if v.is_floating_point()
                           else v.detach().cpu().numpy() for name, v in m.net.state_dict().items()})
        return arrays

    def _meta(self) -> dict[str, Any]:
        assert self.net is not None
        net = self.net
        return {"n_attributes": (net.attributes.weight.shape[0] - 1) if net.attributes is not None else 0,
                "best_epoch": self.best_epoch, "best_epochs": self.best_epochs, "default_event": self.default_event,
                "n_members": max(len(self._members), 1), "attribute_vocabulary": list(net.attribute_vocabulary),
                "popularity_correction": self.popularity_correction, "popularity_search": self.popularity_search,
                **({"initialised_from": self.initialised_from} if self.initialised_from else {})}

    def _set_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        self._device = torch.device("cpu")
        self.log_counts = np.asarray(arrays.get("log_counts", np.zeros(self.n_items)), dtype=np.float32)
        self.popularity_correction = float(meta.get("popularity_correction", 0.0))
        self.popularity_search = dict(meta.get("popularity_search", {}))
        self.best_epoch = int(meta.get("best_epoch", 0))
        self.best_epochs = list(meta.get("best_epochs", [self.best_epoch]))
        self.default_event = int(meta.get("default_event", self.default_event))
        self.initialised_from = dict(meta.get("initialised_from", {}))
        vocabulary = tuple(meta.get("attribute_vocabulary", ()))
        members = []
        for k in range(int(meta.get("n_members", 1))):
            prefix = f"member{k}." if k else ""
            mine = {name[len(prefix):]: v for name, v in arrays.items()
                    if name.startswith(prefix) and (k or not name.startswith("member")) and name != "log_counts"}
            content = ItemContent(attr_flat=mine["attr_flat"], attr_offsets=mine["attr_offsets"],
                                  n_attributes=int(meta["n_attributes"]), text=mine["text_vectors"],
                                  vocabulary=vocabulary)
            net = SeqNet(self.config, self.n_items, content, trained=mine["trained_mask"][:, 0] > 0)
            net.load_state_dict({name: torch.from_numpy(np.ascontiguousarray(v)) for name, v in mine.items()})
            self.net = net
            self._finish(net)
            members.append(self._current())
        self._set_members(members)
        self.net = members[0].net
        self._finish(self.net)


# ------------------------------------------------------------------------ helpers
@dataclass(frozen=True)
class _Member:
    """One trained network of the ensemble and its inference tables."""

    net: SeqNet
    table: Tensor  # (n_items + 1, d) item vectors
    out_table: Tensor  # (d, n_items) the same, transposed for scoring
    content: Tensor | None  # (n_items + 1, d) content part, for content attention


def _pick_device(name: str) -> torch.device:
    """"auto": the GPU when there is one; under torchrun each process takes the GPU of its LOCAL_RANK."""
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"parameter 'device' of model 'transformer' is {name!r} but no GPU is available")
    if device.type == "cuda" and device.index is None and "LOCAL_RANK" in os.environ:
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    if device.type == "cuda" and device.index is not None:
        torch.cuda.set_device(device)
    return device


def _compute_dtype(device: torch.device, precision: str) -> torch.dtype:
    """dtype of the catalog-softmax products: bfloat16 for "bf16", and for "auto" on a GPU or on a CPU with
    native bfloat16 matmuls (AMX / AVX512-BF16: 8x the float32 speed there); float32 otherwise."""
    native = device.type == "cuda" or (device.type == "cpu" and cpu_has_bf16())
    return torch.bfloat16 if precision == "bf16" or (precision == "auto" and native) else torch.float32


def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (AMX tiles or AVX512-BF16)."""
    cpu = getattr(torch, "cpu", None)
    checks = [getattr(cpu, name, None) for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported")]
    return any(bool(check()) for check in checks if check is not None)


def _autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast of the network for "bf16", and for "auto" on a GPU (on a CPU the network's small
    products gain nothing from it); softmax and losses stay float32."""
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _optimizer(net: SeqNet, cfg: TransformerConfig) -> torch.optim.Optimizer:
    """AdamW; weight decay on matrices and embeddings, not on biases and layer norms."""
    decay = [p for n, p in net.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in net.named_parameters() if p.ndim < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}],
                             lr=cfg.learning_rate, betas=(0.9, 0.98), fused=True)


def _learning_rate(cfg: TransformerConfig, step: int, steps_per_epoch: int) -> float:
    """Linear warm-up over warmup_epochs, then cosine decay to min_lr_ratio at `epochs`."""
    warmup = cfg.warmup_epochs * steps_per_epoch
    if step < warmup:
        return cfg.learning_rate * (step + 1) / warmup
    total = max(cfg.epochs * steps_per_epoch - warmup, 1)
    progress = min((step - warmup) / total, 1.0)
    return cfg.learning_rate * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def _sample_negatives(sampler: tuple[Tensor, Tensor, Tensor], n_neg: int, n_targets: int,
                      gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """Log-uniform negatives and log Q = log(expected count among candidates) per item (0 = padding)."""
    order, p_rank, unigram = sampler
    ranks = torch.multinomial(p_rank, n_neg, replacement=True, generator=gen)
    q = n_targets * unigram.clone()
    q[order] += n_neg * p_rank
    q[0] = 1.0
    return order[ranks], torch.log(q.clamp(min=1e-12)).float()


def _ranks(scores: Tensor, targets: np.ndarray, exclude: Any, chunk: int = 32) -> Tensor:
    """0-based rank of each row's target (rule of `ranking.target_ranks`): items scoring higher + items
    scoring equal with a lower index, after removing the excluded items (never the target). `scores` is
    overwritten. Counted in cache-sized row chunks (two comparisons per chunk); the rare rows with ties
    to their target then count the tied items before it."""
    with torch.inference_mode():
        tgt = torch.as_tensor(np.asarray(targets, dtype=np.int64), device=scores.device)
        if exclude is not None:
            rows, cols = _exclusion_pairs(exclude)
            rows_t = torch.from_numpy(rows).to(scores.device)
            cols_t = torch.from_numpy(cols).to(scores.device)
            keep = cols_t != tgt[rows_t]
            scores[rows_t[keep], cols_t[keep]] = float("-inf")
        t = scores.gather(1, tgt[:, None])
        above = torch.empty(len(tgt), dtype=torch.int64, device=scores.device)
        at_least = torch.empty_like(above)
        for s in range(0, len(tgt), chunk):
            part, value = scores[s:s + chunk], t[s:s + chunk]
            above[s:s + chunk] = (part > value).sum(1)
            at_least[s:s + chunk] = (part >= value).sum(1)
        ranks = above.double()
        for r in torch.nonzero(at_least - above > 1).flatten().tolist():  # ties: the lower index ranks first
            ranks[r] += float((scores[r, :int(tgt[r])] == t[r]).sum())
        return ranks


def _swap(net: nn.Module, other: list[Tensor]) -> None:
    """Exchange the values of net's parameters with `other` (same order and shapes), in place."""
    with torch.no_grad():
        for p, o in zip(net.parameters(), other, strict=True):
            tmp = p.detach().clone()
            p.copy_(o)
            o.copy_(tmp)


def _by_length(queries: Sequence[Query], size: int) -> list[np.ndarray]:
    """Query positions in chunks of `size`, ordered by history length."""
    order = np.argsort([len(q.history) for q in queries], kind="stable")
    return [order[i:i + size] for i in range(0, len(order), size)]


def _exclusion_pairs(exclude: Any) -> tuple[np.ndarray, np.ndarray]:
    """(row, column) int64 arrays of a sparse matrix or of one index array per row."""
    if hasattr(exclude, "tocsr"):
        csr = exclude.tocsr()
        return np.repeat(np.arange(csr.shape[0]), np.diff(csr.indptr)).astype(np.int64), csr.indices.astype(np.int64)
    lens = [len(e) for e in exclude]
    cols = np.concatenate([np.asarray(e, dtype=np.int64) for e in exclude]) if sum(lens) else np.zeros(0, np.int64)
    return np.repeat(np.arange(len(lens)), lens).astype(np.int64), cols


def _rows_of(exclude: Any, rows: np.ndarray) -> Any:
    if exclude is None:
        return None
    if hasattr(exclude, "tocsr"):
        return exclude.tocsr()[rows]
    return [exclude[int(r)] for r in rows]


@contextlib.contextmanager
def _progress(enabled: bool, total: int) -> Iterator[Any]:
    """Yields advance(n, entry=None): a rich progress bar on stderr showing loss and validation NDCG."""
    if not enabled:
        yield lambda n, entry=None: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("transformer"), BarColumn(), TextColumn("epoch {task.completed}/{task.total}"),
                  TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=Console(stderr=True),
                  transient=True) as bar:
        task = bar.add_task("fit", total=total, info="")

        def advance(n: int, entry: dict[str, Any] | None = None) -> None:
            info = ""
            if entry:
                info = f"loss {entry['loss']:.3f}" + "".join(
                    f" {k[4:]} {v:.4f}" for k, v in entry.items() if k.startswith("val_"))
            bar.update(task, advance=n, info=info or bar.tasks[0].fields["info"])

        yield advance


# ---------------------------------------------------------------------- checkpoints
@dataclass
class TrainState:
    epoch: int = 0
    step: int = 0
    best_score: float = -1.0
    best_epoch: int = 0
    bad_evals: int = 0
    stopped: bool = False
    best: dict[str, Tensor] | None = None
    log: list[dict[str, Any]] = field(default_factory=list)
    ema: list[Tensor] | None = None  # averaged parameters, in net.parameters() order


def _fingerprint(cfg: TransformerConfig, train: Interactions) -> str:
    """Hash of the config (minus run-only fields) and the training data: a checkpoint resumes only the same fit."""
    h = hashlib.sha256()
    params = {k: v for k, v in config_to_dict(cfg).items() if k not in ("checkpoint_dir", "progress", "num_threads")}
    h.update(json.dumps(params, sort_keys=True).encode())
    for arr in (train.user, train.item, train.timestamp, train.event_type):
        h.update(np.ascontiguousarray(arr).tobytes())
    h.update(str(len(train.items)).encode())
    return h.hexdigest()


class Checkpointer:
    """checkpoint.safetensors (weights, best weights, AdamW state) + checkpoint.json, replaced atomically."""

    def __init__(self, directory: str, fingerprint: str) -> None:
        self.dir = Path(directory)
        self.fingerprint = fingerprint

    def exists(self) -> bool:
        meta = self.dir / "checkpoint.json"
        if not meta.exists() or not (self.dir / "checkpoint.safetensors").exists():
            return False
        found = json.loads(meta.read_text(encoding="utf-8")).get("fingerprint")
        if found != self.fingerprint:
            log.warning("transformer: checkpoint in %s is for another config or data; starting afresh", self.dir)
            return False
        return True

    def save(self, net: SeqNet, optimizer: torch.optim.Optimizer, state: TrainState) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
        if state.best is not None:
            tensors.update({f"best.{k}": v.detach().cpu().contiguous() for k, v in state.best.items()})
        for i, t in enumerate(state.ema or []):
            tensors[f"ema.{i}"] = t.detach().cpu().contiguous()
        for i, s in optimizer.state_dict()["state"].items():
            tensors.update({f"opt.{i}.{k}": torch.as_tensor(v).detach().cpu().contiguous() for k, v in s.items()})
        meta = {"fingerprint": self.fingerprint, "epoch": state.epoch, "step": state.step,
                "best_score": state.best_score, "best_epoch": state.best_epoch, "bad_evals": state.bad_evals,
                "stopped": state.stopped, "log": state.log}
        tmp = self.dir / "checkpoint.tmp.safetensors"
        save_tensors(tensors, str(tmp))
        os.replace(tmp, self.dir / "checkpoint.safetensors")
        tmp_json = self.dir / "checkpoint.tmp.json"
        tmp_json.write_text(json.dumps(meta), encoding="utf-8")
        os.replace(tmp_json, self.dir / "checkpoint.json")

    def load(self, net: SeqNet, optimizer: torch.optim.Optimizer) -> TrainState:
        meta = json.loads((self.dir / "checkpoint.json").read_text(encoding="utf-8"))
        tensors = load_tensors(str(self.dir / "checkpoint.safetensors"))
        device = next(net.parameters()).device
        net.load_state_dict({k[6:]: v.to(device) for k, v in tensors.items() if k.startswith("model.")})
        best = {k[5:]: v.to(device) for k, v in tensors.items() if k.startswith("best.")} or None
        n_ema = sum(k.startswith("ema.") for k in tensors)
        ema = [tensors[f"ema.{i}"].to(device) for i in range(n_ema)] or None
        opt_state: dict[int, dict[str, Tensor]] = {}
        for key, v in tensors.items():
            if key.startswith("opt."):
                _, i, name = key.split(".", 2)
                opt_state.setdefault(int(i), {})[name] = v if name == "step" else v.to(device)
        sd = optimizer.state_dict()
        optimizer.load_state_dict({"state": opt_state, "param_groups": sd["param_groups"]})
        return TrainState(epoch=meta["epoch"], step=meta["step"], best_score=meta["best_score"],
                          best_epoch=meta["best_epoch"], bad_evals=meta["bad_evals"], stopped=meta["stopped"],
                          best=best, log=meta["log"], ema=ema)
