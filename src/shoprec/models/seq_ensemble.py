"""An ensemble of transformer members run as ONE batched network at inference.

Scoring a short history is dominated by the fixed cost of each operation, not by arithmetic, so an
ensemble of M members scored member by member costs M times one member. Here the members' weights are
stacked on a leading axis and every layer of every member is one batched operation (`baddbmm`, one
attention call over M * B sequences), so a two-member ensemble costs about 1.3 times one member instead
of 2 (and stays within the 2 ms budget for one history over Beauty's 12k items).

The arithmetic is exactly `SeqNet.encode(..., last_only=True)` of each member (the default network:
learned reverse positions, no content attention; other configurations score member by member), and a
test holds the two to 1e-5. Shapes: M members, B queries, L positions, d = embedding size, H heads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

if TYPE_CHECKING:
    from shoprec.models.transformer import Block, SeqNet


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
        return len(nets) > 1 and cfg.positions == "reverse" and not cfg.content_attention

    @staticmethod
    def _norm(norm: _Norm, x: Tensor) -> Tensor:
        return torch.addcmul(norm.bias, F.layer_norm(x, x.shape[-1:], eps=norm.eps), norm.weight)

    @staticmethod
    def _linear(layer: _Layer, x: Tensor) -> Tensor:
        return torch.baddbmm(layer.bias, x, layer.weight)

    def encode(self, items: Tensor, events: Tensor, gaps: Tensor, lengths: Tensor) -> Tensor:
        """items/events/gaps (B, L) right-padded, lengths (B,) -> (M, B, d) at each row's newest event."""
        m, (b, n), d, h = self.tables.shape[0], items.shape, self.d, self.heads
        dh = d // h
        steps = torch.arange(n, device=items.device)
        reverse = (lengths[:, None] - 1 - steps[None, :]).clamp(min=0, max=self.max_len - 1)  # 0 = newest
        x = self.tables[:, items] * math.sqrt(d) + self.position[:, reverse]  # (M, B, L, d)
        if self.event is not None:
            x = x + self.event[:, events]
        if self.gap is not None:
            x = x + self.gap[:, gaps]
        x = x.reshape(m, b * n, d)
        for block in self.blocks[:-1]:
            q, k, v = self._linear(block.qkv, self._norm(block.ln1, x)).view(m * b, n, 3, h, dh).permute(
                2, 0, 3, 1, 4)
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (M * B, H, L, dh)
            x = x + self._linear(block.proj, a.transpose(1, 2).reshape(m, b * n, d))
            x = x + self._linear(block.ffn_out, F.gelu(self._linear(block.ffn_in, self._norm(block.ln2, x))))
        last = self.blocks[-1]  # attention from the newest position only (Block.attend_last)
        rows, newest = torch.arange(b, device=items.device), lengths - 1
        normed = self._norm(last.ln1, x)
        k, v = self._linear(last.kv, normed).view(m * b, n, 2, h, dh).permute(2, 0, 3, 1, 4)
        q = self._linear(last.q, normed.view(m, b, n, d)[:, rows, newest]).view(m * b, h, 1, dh)
        visible = (steps[None, :] < lengths[:, None])[:, None, None, :].repeat(m, 1, 1, 1)  # (M * B, 1, 1, L)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=visible)  # (M * B, H, 1, dh)
        x = x.view(m, b, n, d)[:, rows, newest] + self._linear(last.proj, a.reshape(m, b, d))  # (M, B, d)
        x = x + self._linear(last.ffn_out, F.gelu(self._linear(last.ffn_in, self._norm(last.ln2, x))))
        return self._norm(self.ln_out, x)
