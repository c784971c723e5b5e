"""Exact top-n candidates of an inner-product model, found by reading int8 copies of its item vectors.

A list is ranked from the scores of every item. For an inner-product model (score = query vector . item
vector) that is one pass over the float32 item vectors per list, and the pass is memory-bound: Beauty's
12,101 x 256 transformer vectors are 12.4 MB, ~1.2 ms of a list's ~8 ms of CPU on a 2-core VM (py-spy: the
largest single leaf). Here the pass reads int8 copies instead (a quarter of the bytes; `torch._int_mm`, exact
int32 sums), which place every item's score within a bound known exactly:

    item i:  v_i = scale_i * codes_i + e_i,  |e_ij| <= err_i          (symmetric int8 per item)
    query:   q = s * c + f,                   |f_j| <= s / 2           (symmetric int8, s = max|q| / 127)
    approx_i = scale_i * s * (codes_i . c)                            (an exact integer sum)
    |q . v_i - approx_i| <= err_i * s * ||c||_1 + (s / 2) * ||v_i||_1  (+ float32 rounding of q . v_i)

Let L be the n-th largest lower bound (approx - bound) among the allowed items: n allowed items score at
least L, so the n-th best score is >= L, and every item of the exact top n, ties included, has an upper bound
>= L. Those items (a few hundred of Beauty's 12,101) are the candidates; the caller scores them exactly in
float32 and ranks them with the same `ranking.top_k` rule, so the list is the one full scoring gives.
"""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)
MIN_ITEMS = 4096  # smaller catalogs: the full float32 pass is cheap (ServingConfig.scan_min_items)


class Int8Scan:
    """Int8 codes of `vectors` (n_items, D) and the per-item constants of the bound."""

    def __init__(self, vectors: np.ndarray) -> None:
        import torch

        v = np.ascontiguousarray(vectors, dtype=np.float32)
        top = np.abs(v).max(axis=1).astype(np.float64) if v.shape[1] else np.zeros(len(v))
        self.scale = np.where(top > 0, top / 127.0, 1.0)
        codes = np.clip(np.rint(v / self.scale[:, None]), -127, 127).astype(np.int8)
        self.err = np.abs(codes * self.scale[:, None] - v).max(axis=1, initial=0.0)
        self.l1 = np.abs(v).sum(axis=1, dtype=np.float64)
        # float32 rounding of an exact score q . v_i: at most ~D ulps of sum_j |q_j v_ij| <= max|q| * l1_i
        self.ulps = (v.shape[1] + 2) * 2.0 ** -23
        self.dim = v.shape[1]
        self._codes = torch.from_numpy(codes)
        self._torch = torch

    @classmethod
    def build(cls, vectors: np.ndarray) -> Int8Scan | None:
        """The scan, or None where this torch has no exact int8 product (checked against int64 arithmetic) or
        the vectors are not all finite (no bound holds then)."""
        if not np.isfinite(vectors).all():
            log.warning("int8 scan disabled: the item vectors are not all finite")
            return None
        try:
            scan = cls(vectors)
            probe = np.arange(-127, 128, dtype=np.int64)[np.arange(scan.dim) % 255].astype(np.int8)
            got = scan._sums(probe)
            want = scan._codes.numpy().astype(np.int64) @ probe.astype(np.int64)
            if not np.array_equal(got.astype(np.int64), want):
                log.warning("int8 scan disabled: torch._int_mm gave inexact sums")
                return None
            return scan
        except (AttributeError, RuntimeError) as exc:  # no torch._int_mm, or no kernel for this backend
            log.info("int8 scan unavailable (%s): every item is scored in float32", exc)
            return None

    def _sums(self, codes: np.ndarray) -> np.ndarray:
        """codes_i . c for every item (int32; |sum| <= D * 127^2 fits for D < 133,000)."""
        torch = self._torch
        query = torch.from_numpy(np.ascontiguousarray(codes, dtype=np.int8))[None]
        return torch._int_mm(query, self._codes.T)[0].numpy()

    def candidates(self, query: np.ndarray, allowed: np.ndarray, n: int) -> np.ndarray | None:
        """Ascending item indices among `allowed` (bool, n_items) that hold every item of the exact top n (its
        ties too); every allowed item when at most n are. None when the query vector is not finite."""
        q = np.asarray(query, dtype=np.float32)
        top = float(np.abs(q).max()) if q.size else 0.0
        if not np.isfinite(top):
            return None
        if int(np.count_nonzero(allowed)) <= n or top == 0.0:
            return np.flatnonzero(allowed)
        s = top / 127.0
        c = np.clip(np.rint(q / s), -127, 127).astype(np.int8)
        approx = self._sums(c) * self.scale
        approx *= s
        bound = self.err * (s * float(np.abs(c.astype(np.int64)).sum()))
        bound += self.l1 * (s / 2 + top * self.ulps)
        lower = approx - bound
        lower[~allowed] = -np.inf
        threshold = np.partition(lower, len(lower) - n)[len(lower) - n]
        approx += bound  # the upper bounds
        return np.flatnonzero((approx >= threshold) & allowed)
