"""The network, nanoGPT style: item table -> token embeddings -> pre-norm causal blocks -> hidden states ->
softmax over the (tied) item table. Shapes: B batch, L positions, d embedding size, H heads, V = n_items + 1
(row 0 = padding), N real (non-padding) positions of a batch.

    item(i)  = id(i) * trained(i) * keep(i) + mean(attribute embeddings of i) + W_text @ text(i)   (V, d)
               + sum over the shop's vector names n of W_n @ vector_n(i)                           (V, d)
    x        = item(items) * sqrt(d) + position + event type + gap bucket                         (B, L, d)
    x        = x + attn(ln1(x)); x = x + ffn(ln2(x))        per block                              (B, L, d)
    h        = ln_out(x)[real positions]                                                           (N, d)
    loss     = softmax cross-entropy of h @ item table.T against the next items                   scalar

With the sampled loss a step needs the vectors of R rows only (the batch's input items, its targets and the
sampled negatives: R ~ B x L + n_negatives whatever the catalog's size), gathered and composed row by row
(item_rows / content_rows), and with `sparse_ids` the id embedding's gradient holds those R rows only: the
step's time and memory do not grow with the catalog (a 1M-item shop trains at the speed of a 10k-item one).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from shoprec.models.softmax import candidate_softmax_loss, full_softmax_loss
from shoprec.models.transformer.config import N_EVENT_TYPES, N_GAP_BUCKETS, TransformerConfig
from shoprec.models.transformer.content import ItemContent


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
        # the names' text vectors (cfg.title_view), projected on their own
        self.title_text = nn.Linear(content.title.shape[1], d, bias=False) if content.title.shape[1] else None
        self.has_content = self.attributes is not None or self.text is not None
        self.named_vectors = named_spaces(content.named, d)  # the shop's own vectors, one projection per name
        self.has_content = self.has_content or len(self.named_vectors) > 0
        self.attribute_vocabulary = content.vocabulary  # what the attribute rows mean (for transfer_weights)
        self.position = nn.Embedding(cfg.context, d) if cfg.positions == "reverse" else None
        self.event = nn.Embedding(N_EVENT_TYPES, d) if cfg.use_event_types else None
        self.gap = nn.Embedding(N_GAP_BUCKETS, d) if cfg.use_time_gaps else None
        self.blocks = nn.ModuleList(
            Block(d, cfg.n_heads, cfg.ffn_size, cfg.dropout, cfg.attention_dropout,
                  cfg.stochastic_depth * (i + 1) / cfg.n_blocks, self.has_content and cfg.content_attention)
            for i in range(cfg.n_blocks))
        self.ln_out = nn.LayerNorm(d)
        self.loss_dtype = torch.float32  # dtype of the output-layer products (bfloat16 under mixed precision)
        self.sparse_ids = False  # sampled loss: sparse gradient of the id embedding (its rows in the step only)
        self.attr_flat: Tensor
        self.attr_offsets: Tensor
        self.register_buffer("attr_flat", torch.from_numpy(content.attr_flat))
        self.register_buffer("attr_offsets", torch.from_numpy(content.attr_offsets))
        self.attr_lengths: Tensor
        self.register_buffer("attr_lengths", torch.from_numpy(
            np.diff(np.append(content.attr_offsets, len(content.attr_flat)))), persistent=False)
        self.text_vectors: Tensor
        self.register_buffer("text_vectors", torch.from_numpy(content.text))
        self.title_vectors: Tensor | None
        self.register_buffer("title_vectors", torch.from_numpy(content.title) if self.title_text is not None else None)
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
        if self.title_text is not None:
            parts.append(self.title_text(self.title_vectors))
        parts += [cast(VectorSpace, space).project() for space in self.named_vectors.values()]
        return sum(parts[1:], parts[0]) if parts else None

    def content_rows(self, rows: Tensor) -> Tensor | None:
        """content_table()[rows], computed for those rows only: (R, d), None without content."""
        parts = []
        if self.attributes is not None:
            counts = self.attr_lengths[rows]  # each row's attribute bag
            offsets = torch.cumsum(counts, 0) - counts
            first = torch.repeat_interleave(self.attr_offsets[rows] - offsets, counts)
            flat = self.attr_flat[first + torch.arange(len(first), device=rows.device)]
            parts.append(self.attributes(flat, offsets.to(self.attr_offsets.dtype)))
        if self.text is not None:
            parts.append(self.text(self.text_vectors[rows]))
        if self.title_text is not None:
            parts.append(self.title_text(cast(Tensor, self.title_vectors)[rows]))
        parts += [cast(VectorSpace, space).project_rows(rows) for space in self.named_vectors.values()]
        return sum(parts[1:], parts[0]) if parts else None

    def item_rows(self, rows: Tensor, keep: Tensor | None = None, content: Tensor | None = None) -> Tensor:
        """item_table(...)[rows] for those rows only (R, d): keep (R, 1) drops ids, content is content_rows(rows).
        The id embedding's gradient is sparse (R rows) when `sparse_ids`."""
        ids = F.embedding(rows, self.item_id.weight, padding_idx=0, sparse=self.sparse_ids) * self.trained_mask[rows]
        if keep is not None:
            ids = ids * keep
        return ids if content is None else ids + content

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
        reverse = (lengths[:, None] - 1 - steps[None, :]).clamp(min=0, max=self.cfg.context - 1)  # 0 = newest
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
                negatives: Tensor | None = None, log_q: Tensor | Callable[[Tensor], Tensor] | None = None,
                id_drop: float = 0.0, generator: torch.Generator | None = None) -> Tensor:
        """Mean training loss over the batch's real positions: the full softmax over the item table, or with
        `negatives` the sampled softmax from the rows it uses (log_q: per item row (V,), or a function of
        the candidate rows; ids dropped by keep_ids (V, 1), or per used row with probability id_drop)."""
        if negatives is not None:
            assert log_q is not None
            return self._sampled_loss(batch, negatives, log_q, keep_ids, id_drop, generator)
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
        else:
            loss = full_softmax_loss(h, table, targets, seen, self.cfg.label_smoothing, self.loss_dtype)
        if self.cfg.attribute_loss and self.attributes is not None:
            loss = loss + self.cfg.attribute_loss * self.attribute_loss(h.float(), targets)
        return loss

    def _sampled_loss(self, batch: dict[str, Tensor], negatives: Tensor, log_q: Tensor | Callable[[Tensor], Tensor],
                      keep_ids: Tensor | None, id_drop: float, generator: torch.Generator | None) -> Tensor:
        """The sampled softmax (logQ-corrected) computed from the R rows the step uses: candidates (targets +
        negatives) and input items; the same loss as over the whole item table, in O(R) instead of O(V)."""
        items = batch["items"]
        real = batch["targets"] > 0  # (B, L)
        targets = batch["targets"][real]  # (N,)
        cand, inverse = torch.unique(torch.cat([targets, negatives]), return_inverse=True)  # (C,) sorted
        rows, where = torch.unique(torch.cat([cand, items.flatten()]), return_inverse=True)  # (R,)
        keep = keep_ids[rows] if keep_ids is not None else None
        if keep is None and id_drop and self.training:
            keep = (torch.rand(len(rows), 1, generator=generator, device=rows.device) >= id_drop).float()
        content = self.content_rows(rows)
        vectors = self.item_rows(rows, keep, content)  # (R, d)
        h = self.encode(vectors, where[len(cand):].view_as(items), batch["events"], batch["gaps"], batch["lengths"],
                        content_table=content)[real]  # (N, d)
        seen = batch["seen"][real] if "seen" in batch else None
        cand_log_q = log_q(cand) if callable(log_q) else log_q[cand]
        loss = candidate_softmax_loss(h.float(), vectors[where[:len(cand)]].float(), cand, inverse[:len(targets)],
                                      cand_log_q, seen)
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


class VectorSpace(nn.Module):
    """One named space of the shop's own item vectors: its (V, dim) table (a buffer, the platform's content)
    and the projection W_n (dim -> d) added into the item table exactly as the text vector is."""

    def __init__(self, vectors: np.ndarray, d: int) -> None:
        super().__init__()
        self.proj = nn.Linear(vectors.shape[1], d, bias=False)
        self.vectors: Tensor
        self.register_buffer("vectors", torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float32)))

    def project(self) -> Tensor:
        return _linear(self.proj, self.vectors)  # (V, d)

    def project_rows(self, rows: Tensor) -> Tensor:
        return _linear(self.proj, self.vectors[rows])  # (R, d)


def named_spaces(named: dict[str, np.ndarray], d: int) -> nn.ModuleDict:
    """A VectorSpace per name (sorted; names are identifiers: shoprec.data.vectors.VECTOR_NAME)."""
    return nn.ModuleDict({name: VectorSpace(named[name], d) for name in sorted(named)})


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
