"""The transition affinity: a first-order Markov term beside the network (as FPMC puts one beside factors).

    P[h, i] = count(h -> i) / count(h -> any item)   over consecutive events of the training histories
    t(q)    = sum_k AFFINITY_DECAY ** k * P[h_k]       over the query's AFFINITY_ITEMS newest items h_0, h_1, ...
    scores += transition_affinity * t(q)

The network embeds items in d dimensions, which smooths a rare but sure succession (this refill after that
device) into its neighbourhood; the counts keep it. On Beauty the term chosen on the validation targets adds
+1.1% validation NDCG@10 alone and +2.2% with the text affinity; a low-rank (SVD) version of P kept none of it,
so it stays sparse: one row of P per history item, non-zero only on the items that followed it.

t(q) is >= 0 and non-zero only on the items that followed the query's newest items (its `support`), so an exact
top-n search over the network's inner products stays exact with it: every item outside the support keeps its
inner-product score (shoprec.service: ANN and int8 candidates add the support and its scores).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
import torch

from shoprec.models.transformer.data import Sequences

log = logging.getLogger(__name__)
AFFINITY_DECAY = 0.5  # the weight of a query's k-th newest item (0 = the newest) is 0.5 ** k ...
AFFINITY_ITEMS = 8  # ... over its newest 8 items (0.5 ** 8 < 0.004); shared with the text affinity
NEIGHBOURS_MAX_ITEMS = 200_000  # catalog_neighbours: above it the text term stays dense (~5 min at 200,000)
DENSE_CELLS = 1 << 22  # history_terms sums a batch of at most this many (query, item) cells densely


def transition_matrix(seqs: Sequences, n_items: int) -> sp.csr_matrix:
    """(n_items, n_items) float32 P[h, i]: the share of the events following an event of item h (in the same
    user's history, time order) that are of item i; repeats of the same item (h -> h) are left out."""
    items = seqs.items.astype(np.int64) - 1  # build_sequences' items are 1-based
    starts = np.zeros(len(items), dtype=bool)
    starts[seqs.offsets[:-1][seqs.offsets[:-1] < len(items)]] = True
    follows = ~starts[1:]  # event j + 1 follows event j of the same user
    prev, nxt = items[:-1][follows], items[1:][follows]
    keep = prev != nxt
    counts = sp.csr_matrix((np.ones(int(keep.sum()), dtype=np.float32), (prev[keep], nxt[keep])),
                           shape=(n_items, n_items))
    counts.sum_duplicates()
    out_degree = np.asarray(counts.sum(axis=1), dtype=np.float64).ravel()
    scale = np.where(out_degree > 0, 1.0 / np.maximum(out_degree, 1.0), 0.0).astype(np.float32)
    return sp.csr_matrix(sp.diags(scale) @ counts, dtype=np.float32)


def text_neighbours(unit: np.ndarray, m: int) -> sp.csr_matrix:
    """(n, n) float32 N[h, i] = cos(h, i) - cos(h, h's m-th most similar item), > 0 on h's m - 1 most similar items
    (h itself among them) and 0 elsewhere, from the (n, T) unit text vectors `unit` (a zero row: an item without
    text, an empty row of N): the text affinity as a sparse term beside the network, like P. Exact top m by
    blocks of rows: O(n^2 T) once per fit, ~5 s for Beauty's 12,101 items on one core."""
    n = len(unit)
    m = max(1, min(m, n))
    unit = np.ascontiguousarray(unit, dtype=np.float32)
    step = max(1, min(1024, (1 << 25) // max(n, 1)))  # rows per block: at most ~128 MB of similarities
    indices = np.empty((n, m), dtype=np.int32)
    values = np.empty((n, m), dtype=np.float32)
    for start in range(0, n, step):
        sim = unit[start:start + step] @ unit.T
        top = np.argpartition(-sim, m - 1, axis=1)[:, :m] if m < n else np.tile(np.arange(n), (len(sim), 1))
        picked = np.take_along_axis(sim, top, axis=1)
        indices[start:start + step] = top
        values[start:start + step] = np.maximum(picked - picked.min(axis=1, keepdims=True), 0.0)
    matrix = sp.csr_matrix((values.ravel(), indices.ravel(), np.arange(0, n * m + 1, m)), shape=(n, n))
    matrix.eliminate_zeros()
    matrix.sort_indices()
    return matrix


def catalog_neighbours(text_vectors: torch.Tensor, m: int) -> sp.csr_matrix | None:
    """text_neighbours of a network's catalog `text_vectors` (row 0: padding); None (the dense text term) for m 0
    or a catalog without text vectors."""
    if m <= 0 or not text_vectors.shape[1] or len(text_vectors) < 2:
        return None
    if len(text_vectors) - 1 > NEIGHBOURS_MAX_ITEMS:  # the exact search is O(items^2): hours for a million
        log.warning("text affinity: %d items, over the %d of the exact nearest-text search: the dense term",
                    len(text_vectors) - 1, NEIGHBOURS_MAX_ITEMS)
        return None
    return text_neighbours(unit_vectors(text_vectors[1:].detach().cpu()).numpy(), m)


def unit_vectors(vectors: torch.Tensor) -> torch.Tensor:
    """float32 rows scaled to length 1 (a zero row, an item without text, stays zero)."""
    return vectors.float() / vectors.float().norm(dim=1, keepdim=True).clamp(min=1e-12)


def _newest(items: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(query row, item index, AFFINITY_DECAY ** k) of each query's k-th newest item, k < AFFINITY_ITEMS, from the
    right-padded 1-based (B, L) `items` of query_arrays (0: padding)."""
    k = np.arange(min(AFFINITY_ITEMS, items.shape[1]))
    where = lengths[:, None] - 1 - k[None, :]  # (B, k) positions of the newest, newest first
    rows, ks = np.nonzero(where >= 0)
    picked = items[rows, where[rows, ks]].astype(np.int64)
    known = picked > 0
    return rows[known], picked[known] - 1, (AFFINITY_DECAY ** ks[known]).astype(np.float32)


def history_weights(items: np.ndarray, lengths: np.ndarray, n_items: int) -> sp.csr_matrix:
    """(B, n_items) float32: AFFINITY_DECAY ** k at each query's k-th newest item (k < AFFINITY_ITEMS), from the
    right-padded 1-based (B, L) `items` of query_arrays (0: padding); an item repeated sums its weights."""
    rows, cols, vals = _newest(items, lengths)
    weights = sp.csr_matrix((vals, (rows, cols)), shape=(len(items), n_items), dtype=np.float32)
    weights.sum_duplicates()
    return weights


def _terms(matrix: sp.csr_matrix, items: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, ...]:
    """(query row, item column, value) of every term of t(q), the rows of P gathered at once (a repeated column is
    not summed here)."""
    rows, newest, weights = _newest(items, lengths)
    of, at = _entries(matrix, newest)
    return rows[of], matrix.indices[at].astype(np.int64), matrix.data[at] * weights[of]


def _entries(matrix: sp.csr_matrix, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(position in `rows`, index into matrix.indices / data) of every stored entry of the matrix's `rows`."""
    starts = matrix.indptr[rows].astype(np.int64)
    counts = matrix.indptr[rows + 1].astype(np.int64) - starts
    at = np.repeat(starts - (np.cumsum(counts) - counts), counts) + np.arange(int(counts.sum()))
    return np.repeat(np.arange(len(rows)), counts), at


def history_terms(parts: Sequence[tuple[sp.csr_matrix, float]], items: np.ndarray, lengths: np.ndarray,
                  columns: np.ndarray | None = None) -> sp.csr_matrix:
    """(B, n_items) float32 sum_j w_j * t_j(q) of each query over the (matrix, w_j) `parts` (the sparse terms: text
    neighbours, transitions), sparse: non-zero on their supports only. The terms are summed by one dense pass where
    the batch is small (serving's: a list and its leave-one-out rows), which costs less than sorting them.
    With `columns` (item indices): (B, len(columns)), those columns only (see _terms_at)."""
    if columns is not None:
        return _terms_at(parts, items, lengths, np.asarray(columns, dtype=np.int64))
    n = parts[0][0].shape[0]
    terms = [_terms(matrix, items, lengths) for matrix, _ in parts]
    rows = np.concatenate([t[0] for t in terms])
    cols = np.concatenate([t[1] for t in terms])
    vals = np.concatenate([t[2] * np.float32(w) for t, (_, w) in zip(terms, parts, strict=True)])
    if len(items) * n <= DENSE_CELLS:
        keys = rows * n + cols
        sums = np.bincount(keys, weights=vals, minlength=len(items) * n)
        keys = np.sort(keys)  # the cells in CSR's order (a sort of the terms costs less than a scan of the cells)
        keys = keys[np.concatenate(([True], keys[1:] != keys[:-1]))]
        indptr = np.zeros(len(items) + 1, dtype=np.int64)
        np.cumsum(np.bincount(keys // n, minlength=len(items)), out=indptr[1:])
        return sp.csr_matrix((sums[keys].astype(np.float32), keys % n, indptr), shape=(len(items), n))
    return sp.csr_matrix((vals, (rows, cols)), shape=(len(items), n), dtype=np.float32)


def _terms_at(parts: Sequence[tuple[sp.csr_matrix, float]], items: np.ndarray, lengths: np.ndarray,
              columns: np.ndarray) -> sp.csr_matrix:
    """history_terms at `columns` only: (B, len(columns)) float32. Each distinct newest item's row of each matrix is
    read once, at `columns`: an explanation's leave-one-out rows share their newest items and read a list's ten
    items, not the ~200 terms of every newest item that the whole rows hold."""
    rows, newest, weights = _newest(items, lengths)
    distinct, slot = np.unique(newest, return_inverse=True)
    mix = np.zeros((len(items), len(distinct)))  # each query's weight on each distinct newest item
    np.add.at(mix, (rows, slot), weights)
    wanted, back = np.unique(columns, return_inverse=True)
    position = np.full(parts[0][0].shape[1], -1, dtype=np.int64)  # item -> its place among the wanted, or -1
    position[wanted] = np.arange(len(wanted))
    out = np.zeros((len(items), len(wanted)))
    for matrix, weight in parts:
        of, at = _entries(matrix, distinct)
        column = position[matrix.indices[at]]
        kept = column >= 0
        rows_at = np.zeros((len(distinct), len(wanted)))  # the distinct newest items' rows at the wanted columns
        rows_at[of[kept], column[kept]] = matrix.data[at[kept]]
        out += np.float32(weight) * (mix @ rows_at)
    out = out[:, back].astype(np.float32)
    b, c = out.shape  # stored whole (zeros too): the dense-to-sparse conversion costs more than the rest here
    return sp.csr_matrix((out.ravel(), np.tile(np.arange(c), b), np.arange(0, b * c + 1, c)), shape=(b, c))


def transition_dense(matrix: sp.csr_matrix, items: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """(B, n_items) float32 t(q) of each query over one sparse term `matrix` (P or N), before its weight, dense
    (what scoring and the validation search add)."""
    rows, cols, vals = _terms(matrix, items, lengths)
    n = matrix.shape[0]
    return np.bincount(rows * n + cols, weights=vals, minlength=len(items) * n).astype(np.float32).reshape(-1, n)
