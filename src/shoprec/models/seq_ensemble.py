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
removed item: a 50-event history costs ~290 token positions instead of ~1,050. Attention then runs in two
batches: the rows that share nothing (the reference, rows of another length) as plain causal rows, and the
others at their own positions only, so the two ~50-position rows do not pad twenty ~10-position rows to
their width. The index arrays are built in numpy and the gathers are `index_select` (advanced indexing costs
several times more on these shapes). Exact up to float rounding (a test holds it to the plain encoding).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
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


def _tensor(a: np.ndarray, device: torch.device) -> Tensor:
    """A numpy index or mask array as a tensor on the model's device."""
    return torch.from_numpy(np.ascontiguousarray(a)).to(device)


def _visible(lengths: np.ndarray, n: int, m: int) -> np.ndarray:
    """(M * B, 1, 1, L) additive mask of each row's real positions: what its newest position attends to."""
    visible = np.where(np.arange(n)[None, :] < lengths[:, None], 0.0, -np.inf).astype(np.float32)
    return np.tile(visible[:, None, None, :], (m, 1, 1, 1))


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
        self.d, self.heads, self.max_len = cfg.embedding_size, cfg.n_heads, cfg.context
        with torch.no_grad():
            self.scaled_tables = torch.stack(tables) * math.sqrt(self.d)  # (M, V + 1, d): the inputs' item part
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

    def _plain_layout(self, lengths: Tensor, n: int, m: int) -> tuple[Tensor, Tensor, Tensor]:
        """Flat reverse positions (B * L,: 0 = a row's newest event), each row's newest token (B,) and the
        additive mask (M * B, 1, 1, L) of its real positions, built in numpy (as `_SharedLayout`)."""
        ln, steps = lengths.cpu().numpy().astype(np.int64), np.arange(n)
        reverse = np.clip(ln[:, None] - 1 - steps[None, :], 0, self.max_len - 1)
        device = lengths.device
        return (_tensor(reverse.reshape(-1), device), _tensor(np.arange(len(ln)) * n + ln - 1, device),
                _tensor(_visible(ln, n, m), device))

    def _inputs(self, items: Tensor, events: Tensor, gaps: Tensor, reverse: Tensor) -> Tensor:
        """Token inputs (M, T, d) of flat (T,) token arrays: item vector * sqrt(d) + position (+ event type,
        + gap). Row gathers (`index_select`), several times faster than advanced indexing on these shapes."""
        x = self.scaled_tables.index_select(1, items) + self.position.index_select(1, reverse)
        if self.event is not None:
            x = x + self.event.index_select(1, events)
        if self.gap is not None:
            x = x + self.gap.index_select(1, gaps)
        return x

    def encode(self, items: Tensor, events: Tensor, gaps: Tensor, lengths: Tensor,
               shared: tuple[int, np.ndarray] | None = None) -> Tensor:
        """items/events/gaps (B, L) right-padded, lengths (B,) -> (M, B, d) at each row's newest event.
        `shared`: (reference row, prefix (B,)) from `shared_prefixes`: each row computes its own positions only."""
        if shared is not None:
            return self._encode_shared(items, events, gaps, lengths, *shared)
        m, (b, n), d, h = self.scaled_tables.shape[0], items.shape, self.d, self.heads
        dh = d // h
        reverse, newest, visible = self._plain_layout(lengths, n, m)
        x = self._inputs(items.reshape(-1), events.reshape(-1), gaps.reshape(-1), reverse)  # (M, B * L, d)
        for block in self.blocks[:-1]:
            q, k, v = self._linear(block.qkv, self._norm(block.ln1, x)).view(m * b, n, 3, h, dh).permute(
                2, 0, 3, 1, 4)
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (M * B, H, L, dh)
            x = x + self._linear(block.proj, a.transpose(1, 2).reshape(m, b * n, d))
            x = self._feed_forward(block, x)
        last = self.blocks[-1]  # attention from the newest position only (Block.attend_last)
        normed = self._norm(last.ln1, x)
        k, v = self._linear(last.kv, normed).view(m * b, n, 2, h, dh).permute(2, 0, 3, 1, 4)
        q = self._linear(last.q, normed.index_select(1, newest)).view(m * b, h, 1, dh)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=visible)  # (M * B, H, 1, dh)
        x = x.index_select(1, newest) + self._linear(last.proj, a.reshape(m, b, d))  # (M, B, d)
        x = self._feed_forward(last, x)
        return self._norm(self.ln_out, x)

    def _encode_shared(self, items: Tensor, events: Tensor, gaps: Tensor, lengths: Tensor, ref: int,
                       prefix: np.ndarray) -> Tensor:
        """`encode` computing only each row's own positions [prefix, length) as T flat tokens; the keys and
        values a row reads at positions < prefix are the reference row's (its own positions start at 0)."""
        m, n, d, h = self.scaled_tables.shape[0], items.shape[1], self.d, self.heads
        dh = d // h
        lay = _SharedLayout.of(lengths.cpu().numpy(), prefix, ref, n, m, self.max_len, items.device)
        x = self._inputs(items.reshape(-1).index_select(0, lay.tokens), events.reshape(-1).index_select(0, lay.tokens),
                         gaps.reshape(-1).index_select(0, lay.tokens), lay.reverse)  # (M, T, d)

        def heads(y: Tensor, where: Tensor, parts: int) -> Tensor:
            """(M, T, parts * d) at (R, w) token indices -> (parts, M * R, H, w, dh)."""
            r, w = where.shape
            g = y.index_select(1, where.reshape(-1)).view(m, r, w, parts, h, dh).permute(3, 0, 1, 4, 2, 5)
            return g.reshape(parts, m * r, h, w, dh)

        for block in self.blocks[:-1]:
            qkv = self._linear(block.qkv, self._norm(block.ln1, x))  # (M, T, 3d)
            q, k, v = heads(qkv, lay.whole, 3)  # rows with no shared prefix: plain causal attention
            out = [F.scaled_dot_product_attention(q, k, v, is_causal=True)]  # (M * W, H, lw, dh)
            if lay.part is not None:  # the others: their own positions against the keys they read
                queries, keys, mask = lay.part
                k, v = heads(qkv[:, :, d:], keys, 2)
                q = heads(qkv[:, :, :d], queries, 1)[0]
                out.append(F.scaled_dot_product_attention(q, k, v, attn_mask=mask))  # (M * P, H, w, dh)
            a = torch.cat([o.view(m, -1, h, o.shape[2], dh).transpose(2, 3).reshape(m, -1, d) for o in out], dim=1)
            x = x + self._linear(block.proj, a.index_select(1, lay.back))  # (M, T, d)
            x = self._feed_forward(block, x)
        last = self.blocks[-1]
        normed = self._norm(last.ln1, x)
        k, v = heads(self._linear(last.kv, normed), lay.keys, 2)
        q = self._linear(last.q, normed.index_select(1, lay.newest)).view(m * len(prefix), h, 1, dh)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=lay.visible)
        x = x.index_select(1, lay.newest) + self._linear(last.proj, a.reshape(m, len(prefix), d))  # (M, B, d)
        x = self._feed_forward(last, x)
        return self._norm(self.ln_out, x)


@dataclass(frozen=True)
class _SharedLayout:
    """Where the T own tokens of a shared-prefix batch go, built in numpy (a few dozen small arrays' worth of
    work that would be as many torch calls). Rows with no shared prefix ("whole" rows: the reference, and
    rows of another length) are attended as a plain causal batch; the others ("partial" rows) only at their
    own positions, against the keys they read, so the long rows do not pad every row to their width."""

    tokens: Tensor  # (T,) flat index (row * L + position) of each own position: row by row, oldest first
    reverse: Tensor  # (T,) its reverse position (0 = its row's newest event)
    whole: Tensor  # (W, lw) token at each position of the whole rows (padding: token 0, never read)
    # the partial rows (None when there are none): the token at each of their own positions (P, w; padding:
    # token 0), the token at each of their key positions (P, L), and the additive mask (M * P, 1, w, L) of
    # the keys at or before each query's position
    part: tuple[Tensor, Tensor, Tensor] | None
    back: Tensor  # (T,) each token's place in [whole rows' (W * lw) slots, partial rows' (P * w) slots]
    keys: Tensor  # (B, L) token at each key position of every row (last block)
    visible: Tensor  # (M * B, 1, 1, L) additive mask: each row's real positions (last block)
    newest: Tensor  # (B,) token of each row's newest position

    @staticmethod
    def of(lengths: np.ndarray, prefix: np.ndarray, ref: int, n: int, m: int, max_len: int,
           device: torch.device) -> _SharedLayout:
        lengths, prefix = lengths.astype(np.int64), np.asarray(prefix, dtype=np.int64)
        b, steps = len(lengths), np.arange(n)
        own = (steps[None, :] >= prefix[:, None]) & (steps[None, :] < lengths[:, None])
        row, pos = np.nonzero(own)
        index = np.zeros((b, n), dtype=np.int64)
        index[row, pos] = np.arange(len(row))
        keys = np.where(steps[None, :] < prefix[:, None], index[ref][None, :], index)
        whole, part = np.flatnonzero(prefix == 0), np.flatnonzero(prefix > 0)
        lw = int(lengths[whole].max())
        place = np.zeros(b, dtype=np.int64)
        place[whole], place[part] = np.arange(len(whole)), np.arange(len(part))
        back = place[row] * lw + pos
        part_arrays: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        if len(part):
            width = int((lengths[part] - prefix[part]).max())
            at = prefix[part][:, None] + np.arange(width)[None, :]  # (P, w) each slot's position
            queries = np.where(at < lengths[part][:, None], index[part[:, None], np.minimum(at, n - 1)], 0)
            mask = np.where(steps[None, None, :] <= at[:, :, None], 0.0, -np.inf).astype(np.float32)
            part_arrays = (queries, keys[part], np.tile(mask[:, None], (m, 1, 1, 1)))
            mine = prefix[row] > 0  # the partial rows' tokens
            back[mine] = len(whole) * lw + place[row[mine]] * width + pos[mine] - prefix[row[mine]]
        t = partial(_tensor, device=device)
        return _SharedLayout(
            tokens=t(row * n + pos), reverse=t(np.clip(lengths[row] - 1 - pos, 0, max_len - 1)),
            whole=t(index[whole, :lw]), part=(t(part_arrays[0]), t(part_arrays[1]), t(part_arrays[2]))
            if part_arrays is not None else None, back=t(back), keys=t(keys),
            visible=t(_visible(lengths, n, m)), newest=t(index[np.arange(b), lengths - 1]))
