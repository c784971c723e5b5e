"""An ensemble of transformer members run as ONE batched network at inference.

Scoring a short history is dominated by the fixed cost of each operation, not by arithmetic, so an
ensemble of M members scored member by member costs M times one member. Here the members' weights are
stacked on a leading axis and every layer of every member is one batched operation (`baddbmm`, one
attention call over M * B sequences), so a two-member ensemble costs about 1.3 times one member instead
of 2 (and stays within the 2 ms budget for one history over Beauty's 12k items).

The arithmetic is exactly `SeqNet.encode(..., last_only=True)` of each member (the default network:
learned reverse positions, no content attention; other configurations score member by member), and a
test holds the two to 1e-5. Shapes: M members, B queries, L positions, d = embedding size, H heads.

Shared prefixes (serving's leave-one-out batches): rows of the same length whose first p positions hold
the same (item, event type, gap) have the same states at those positions in every block, because
attention is causal and positions count from the newest event. `shared_prefixes` finds a reference
row and each row's prefix in common with it; `encode(..., shared=...)` then computes each row's own
positions only, its keys and values at the shared positions being the reference row's. A leave-one-out
batch (the history without each of its newest 20 distinct items) shares everything older than the
removed item: a 50-event history costs ~290 token positions instead of ~1,050. Exact up to float
rounding (a test holds it to the plain encoding).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

if TYPE_CHECKING:
    from shoprec.models.transformer import Block, SeqNet


MAX_SHARED_ROWS = 64  # larger batches (evaluation) are distinct users: not searched for shared prefixes
MIN_SHARED_POSITIONS = 32  # token positions a batch must save before it is encoded with shared prefixes


def shared_prefixes(items: np.ndarray, events: np.ndarray, gaps: np.ndarray, lengths: np.ndarray
                    ) -> tuple[int, np.ndarray] | None:
    """(reference row, prefix length of each row) for padded (B, L) query arrays: row r's first prefix[r]
    positions equal the reference row's, and the two have the same length (prefix[r] <= length - 1: a row's
    newest position is always its own; the reference's prefix is 0). The reference is the row most rows
    share most with. None when sharing would save fewer than MIN_SHARED_POSITIONS positions."""
    b = len(lengths)
    if not 2 <= b <= MAX_SHARED_ROWS:
        return None
    same = (items[:, None] == items[None]) & (events[:, None] == events[None]) & (gaps[:, None] == gaps[None])
    common = np.cumprod(same, axis=2).sum(axis=2)  # (B, B): leading positions rows r and s have in common
    common = np.where(lengths[:, None] == lengths[None, :], np.minimum(common, lengths[:, None] - 1), 0)
    np.fill_diagonal(common, 0)
    ref = int(common.sum(axis=0).argmax())
    prefix = common[:, ref].copy()
    if int(prefix.sum()) < MIN_SHARED_POSITIONS:
        return None
    return ref, prefix


@dataclass(frozen=True)
class _Layer:
    weight: Tensor  # (M, in, out): x @ weight
    bias: Tensor  # (M, 1, out)


@dataclass(frozen=True)
class _Norm:
    weight: Tensor  # (M, 1, d)
    bias: Tensor  # (M, 1, d)
    eps: float


@dataclass(frozen=True)
class _StackedBlock:
    ln1: _Norm
    q: _Layer
    kv: _Layer
    qkv: _Layer
    proj: _Layer
    ln2: _Norm
    ffn_in: _Layer
    ffn_out: _Layer


def _layer(layers: list[nn.Linear], rows: slice = slice(None)) -> _Layer:
    return _Layer(torch.stack([lin.weight[rows].T for lin in layers]).contiguous(),
                  torch.stack([lin.bias[rows] for lin in layers])[:, None, :].contiguous())


def _norm_of(norms: list[nn.LayerNorm]) -> _Norm:
    return _Norm(torch.stack([n.weight for n in norms])[:, None, :].contiguous(),
                 torch.stack([n.bias for n in norms])[:, None, :].contiguous(), norms[0].eps)


class StackedEncoder:
    """The members' newest-position encoders side by side; `encode` -> (M, B, d) hidden states."""

    def __init__(self, nets: list[SeqNet], tables: list[Tensor]) -> None:
        cfg = nets[0].cfg
        self.d, self.heads, self.max_len = cfg.embedding_size, cfg.n_heads, cfg.max_len
        with torch.no_grad():
            self.tables = torch.stack(tables)  # (M, V + 1, d)
            self.position = torch.stack([cast(nn.Embedding, n.position).weight for n in nets])
            self.event = (torch.stack([cast(nn.Embedding, n.event).weight for n in nets])
                          if nets[0].event is not None else None)
            self.gap = (torch.stack([cast(nn.Embedding, n.gap).weight for n in nets])
                        if nets[0].gap is not None else None)
            self.blocks = []
            d = self.d
            for i in range(cfg.n_blocks):
                blocks = [cast("Block", n.blocks[i]) for n in nets]
                self.blocks.append(_StackedBlock(
                    ln1=_norm_of([b.ln1 for b in blocks]), q=_layer([b.qkv for b in blocks], slice(0, d)),
                    kv=_layer([b.qkv for b in blocks], slice(d, 3 * d)), qkv=_layer([b.qkv for b in blocks]),
                    proj=_layer([b.proj for b in blocks]), ln2=_norm_of([b.ln2 for b in blocks]),
                    ffn_in=_layer([cast(nn.Linear, b.ffn[0]) for b in blocks]),
                    ffn_out=_layer([cast(nn.Linear, b.ffn[3]) for b in blocks])))
            self.ln_out = _norm_of([n.ln_out for n in nets])

    @staticmethod
    def supports(nets: list[SeqNet]) -> bool:
        cfg = nets[0].cfg
        return len(nets) >= 1 and cfg.positions == "reverse" and not cfg.content_attention

    @staticmethod
    def _norm(norm: _Norm, x: Tensor) -> Tensor:
        return torch.addcmul(norm.bias, F.layer_norm(x, x.shape[-1:], eps=norm.eps), norm.weight)

    @staticmethod
    def _linear(layer: _Layer, x: Tensor) -> Tensor:
        return torch.baddbmm(layer.bias, x, layer.weight)

    def _feed_forward(self, block: _StackedBlock, x: Tensor) -> Tensor:
        return x + self._linear(block.ffn_out, F.gelu(self._linear(block.ffn_in, self._norm(block.ln2, x))))

    def _positions(self, lengths: Tensor, n: int) -> tuple[Tensor, Tensor]:
        """steps (L,) and each row's reverse positions (B, L): 0 = its newest event."""
        steps = torch.arange(n, device=lengths.device)
        return steps, (lengths[:, None] - 1 - steps[None, :]).clamp(min=0, max=self.max_len - 1)

    @staticmethod
    def _visible(steps: Tensor, lengths: Tensor, m: int) -> Tensor:
        """(M * B, 1, 1, L): the keys the newest position of each row may attend to (its real positions)."""
        return (steps[None, :] < lengths[:, None])[:, None, None, :].repeat(m, 1, 1, 1)

    def _inputs(self, items: Tensor, events: Tensor, gaps: Tensor, reverse: Tensor) -> Tensor:
        """Token inputs (M, *items.shape, d): item vector * sqrt(d) + position (+ event type, + gap)."""
        x = self.tables[:, items] * math.sqrt(self.d) + self.position[:, reverse]
        if self.event is not None:
            x = x + self.event[:, events]
        if self.gap is not None:
            x = x + self.gap[:, gaps]
        return x

    def encode(self, items: Tensor, events: Tensor, gaps: Tensor, lengths: Tensor,
               shared: tuple[int, Tensor] | None = None) -> Tensor:
        """items/events/gaps (B, L) right-padded, lengths (B,) -> (M, B, d) at each row's newest event.
        `shared`: (reference row, prefix (B,)) from `shared_prefixes`: each row computes its own positions only."""
        if shared is not None:
            return self._encode_shared(items, events, gaps, lengths, *shared)
        m, (b, n), d, h = self.tables.shape[0], items.shape, self.d, self.heads
        dh = d // h
        steps, reverse = self._positions(lengths, n)
        x = self._inputs(items, events, gaps, reverse).reshape(m, b * n, d)  # (M, B * L, d)
        for block in self.blocks[:-1]:
            q, k, v = self._linear(block.qkv, self._norm(block.ln1, x)).view(m * b, n, 3, h, dh).permute(
                2, 0, 3, 1, 4)
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (M * B, H, L, dh)
            x = x + self._linear(block.proj, a.transpose(1, 2).reshape(m, b * n, d))
            x = self._feed_forward(block, x)
        last = self.blocks[-1]  # attention from the newest position only (Block.attend_last)
        rows, newest = torch.arange(b, device=items.device), lengths - 1
        normed = self._norm(last.ln1, x)
        k, v = self._linear(last.kv, normed).view(m * b, n, 2, h, dh).permute(2, 0, 3, 1, 4)
        q = self._linear(last.q, normed.view(m, b, n, d)[:, rows, newest]).view(m * b, h, 1, dh)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=self._visible(steps, lengths, m))  # (M * B, H, 1, dh)
        x = x.view(m, b, n, d)[:, rows, newest] + self._linear(last.proj, a.reshape(m, b, d))  # (M, B, d)
        x = self._feed_forward(last, x)
        return self._norm(self.ln_out, x)

    def _encode_shared(self, items: Tensor, events: Tensor, gaps: Tensor, lengths: Tensor, ref: int,
                       prefix: Tensor) -> Tensor:
        """`encode` computing only each row's own positions [prefix, length) as T flat tokens; the keys and
        values a row reads at positions < prefix are the reference row's (its own positions start at 0)."""
        m, (b, n), d, h = self.tables.shape[0], items.shape, self.d, self.heads
        dh = d // h
        steps, reverse = self._positions(lengths, n)
        own = (steps[None, :] >= prefix[:, None]) & (steps[None, :] < lengths[:, None])  # (B, L)
        row, pos = own.nonzero(as_tuple=True)  # the flat tokens, row by row, oldest first
        t = len(row)
        x = self._inputs(items[row, pos], events[row, pos], gaps[row, pos], reverse[row, pos])  # (M, T, d)
        index = torch.zeros((b, n), dtype=torch.long, device=items.device)
        index[row, pos] = torch.arange(t, device=items.device)  # the flat token of each own position
        keys = torch.where(steps[None, :] < prefix[:, None], index[ref][None, :], index)  # (B, L) token per key
        width = int((lengths - prefix).max())
        slot = pos - prefix[row]  # each token's place among its row's own positions
        queries = torch.zeros((b, width), dtype=torch.long, device=items.device)
        queries[row, slot] = torch.arange(t, device=items.device)  # padding slots read token 0 (ignored)
        at = prefix[:, None] + torch.arange(width, device=items.device)[None, :]  # (B, width) query positions
        causal = (steps[None, None, :] <= at[:, :, None])[:, None].repeat(m, 1, 1, 1)  # (M * B, 1, width, L)

        def heads(y: Tensor, where: Tensor) -> Tensor:  # (M, T, H, dh) at (B, w) token indices -> (M * B, H, w, dh)
            return y[:, where].permute(0, 1, 3, 2, 4).reshape(m * b, h, where.shape[1], dh)

        for block in self.blocks[:-1]:
            qkv = self._linear(block.qkv, self._norm(block.ln1, x)).view(m, t, 3, h, dh)
            a = F.scaled_dot_product_attention(heads(qkv[:, :, 0], queries), heads(qkv[:, :, 1], keys),
                                               heads(qkv[:, :, 2], keys), attn_mask=causal)  # (M * B, H, width, dh)
            a = a.view(m, b, h, width, dh).permute(0, 1, 3, 2, 4).reshape(m, b, width, d)[:, row, slot]
            x = x + self._linear(block.proj, a)  # (M, T, d)
            x = self._feed_forward(block, x)
        last = self.blocks[-1]
        newest = index[torch.arange(b, device=items.device), lengths - 1]  # (B,) always a row's own token
        normed = self._norm(last.ln1, x)
        kv = self._linear(last.kv, normed).view(m, t, 2, h, dh)
        q = self._linear(last.q, normed[:, newest]).view(m * b, h, 1, dh)
        a = F.scaled_dot_product_attention(q, heads(kv[:, :, 0], keys), heads(kv[:, :, 1], keys),
                                           attn_mask=self._visible(steps, lengths, m))
        x = x[:, newest] + self._linear(last.proj, a.reshape(m, b, d))  # (M, B, d)
        x = self._feed_forward(last, x)
        return self._norm(self.ln_out, x)
