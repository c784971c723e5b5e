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

Whether the scan pays depends on the CPU: with AVX-512 VNNI or AMX the int8 pass is several times faster than
the float32 product, but a CPU with AVX2 only has no int8 dot-product instruction, and there the pass costs
more than the product it replaces (a 2-core AMD EPYC VM, Beauty: 2.8-3.2 ms against 1.0 ms for the product with
the vectors in cache, 1.7-1.8 ms when the two alternate, and ~10% fewer requests/s served). So by default (`mode`
"auto", SHOPREC_SCAN) `Int8Scan.build` times one list's candidate pass against the full float32 product on the
model's own vectors when the model loads and keeps the scan only while it costs at most `AUTO_MARGIN` times as
much: it reads a quarter of the bytes, which pays under load (two workers share the memory bandwidth and the
cache) even where it is a little slower alone. Both paths give the same list, business rules included: a list
with rules searches the model's order as the rules rank it (`ranked_candidates` with the boosts as offsets; see
shoprec.service.scanned).
"""

from __future__ import annotations

import logging
import time

import numpy as np

from shoprec.settings import SCAN_MODES as MODES  # ServingConfig.scan: timed at load, always, never

log = logging.getLogger(__name__)
AUTO_MARGIN = 1.5  # "auto" keeps the scan while its pass costs at most this many times the float32 product
TIMING_ROUNDS = 11  # alternating timings of each path when a model loads (median)
LIST_DEPTH = 50  # the candidates a timed pass finds (ServingConfig.page_depth's default)


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
    def build(cls, vectors: np.ndarray, mode: str = "on") -> Int8Scan | None:
        """The scan, or None where this torch has no exact int8 product (checked against int64 arithmetic), the
        vectors are not all finite (no bound holds then), `mode` is "off", or (mode "auto") the scan is slower
        than AUTO_MARGIN times the float32 product on this CPU (`timing`)."""
        if mode not in MODES:
            raise ValueError(f"scan mode must be one of {', '.join(MODES)}, got {mode!r}")
        if mode == "off":
            return None
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
        except (AttributeError, RuntimeError) as exc:  # no torch._int_mm, or no kernel for this backend
            log.info("int8 scan unavailable (%s): every item is scored in float32", exc)
            return None
        if mode == "auto":
            scan_ms, full_ms = timing(scan, vectors)
            if scan_ms > AUTO_MARGIN * full_ms:
                log.info("int8 scan off on this CPU: %.2f ms a list against %.2f ms for the float32 product of "
                         "%d items (SHOPREC_SCAN=on forces it)", scan_ms, full_ms, len(vectors))
                return None
            log.info("int8 scan on: %.2f ms a list against %.2f ms for the float32 product of %d items",
                     scan_ms, full_ms, len(vectors))
        return scan

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
        found = self.bounds(q)
        assert found is not None
        idx = np.flatnonzero(allowed)
        return idx[ranked_candidates(found[0][idx], found[1][idx], n)[0]]

    def bounds(self, query: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """(lower, upper): float64 bounds of every item's exact float32 score q . v_i (one int8 pass); None when
        the query vector is not finite."""
        q = np.asarray(query, dtype=np.float32)
        top = float(np.abs(q).max()) if q.size else 0.0
        if not np.isfinite(top):
            return None
        if top == 0.0:
            zero = np.zeros(len(self.scale))
            return zero, zero
        s = top / 127.0
        c = np.clip(np.rint(q / s), -127, 127).astype(np.int8)
        approx = self._sums(c) * self.scale
        approx *= s
        bound = self.err * (s * float(np.abs(c.astype(np.int64)).sum()))
        bound += self.l1 * (s / 2 + top * self.ulps)
        return approx - bound, approx + bound


def ranked_candidates(lower: np.ndarray, upper: np.ndarray, n: int, offset: np.ndarray | None = None
                      ) -> tuple[np.ndarray, float]:
    """(ascending positions of the items that hold every item of the exact top n of score + offset, ties
    included; the floor), given the bounds of the items that may be ranked (an allowed subset, gathered): every
    item left out ranks below the floor, so the candidates ranking at or above it are the level's exact top, in
    full (at least n of them). -inf: every item is a candidate. `offset` (per item, float32, e.g. a boost x the
    level's spread, added in float32 by the ranking) widens the bounds by the rounding of that addition (one
    bound for all: a few ulps of the largest magnitude)."""
    if len(lower) <= n:
        return np.arange(len(lower)), -np.inf
    lo, hi = lower, upper
    if offset is not None:
        o = offset.astype(np.float64)
        top = max(float(np.abs(lower).max()), float(np.abs(upper).max())) + float(np.abs(o).max())
        slack = 2 * top * 2.0 ** -21  # float32 rounding of score + offset, |score| and |offset| at most `top`
        lo = lower + o
        hi = upper + o
        lo -= slack
        hi += slack
    floor = float(np.partition(lo, len(lo) - n)[len(lo) - n])
    return np.flatnonzero(hi >= floor), floor


def extreme_candidates(lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """The positions of the items (bounds of an allowed subset, gathered) that may hold the largest or the
    smallest exact score: scored exactly, they give the level's exact spread."""
    if not len(lower):
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero((upper >= lower.max()) | (lower <= upper.min()))


def timing(scan: Int8Scan, vectors: np.ndarray, rounds: int = TIMING_ROUNDS, n: int = LIST_DEPTH
           ) -> tuple[float, float]:
    """(scan, float32) median milliseconds of one list's candidates on this CPU: the scan's pass and the exact
    scores of its candidates, against the full float32 product and its top n (`np.argpartition`), timed in
    alternation (a busy machine slows both) for queries built from the vectors themselves."""
    v = np.ascontiguousarray(vectors, dtype=np.float32)
    if len(v) == 0:
        return 0.0, 0.0
    rng = np.random.default_rng(0)
    allowed = np.ones(len(v), dtype=bool)
    n = max(1, min(n, len(v) - 1))
    scan_s: list[float] = []
    full_s: list[float] = []
    for r in range(rounds + 1):  # the first round warms both paths up and is not counted
        noise = np.asarray(rng.normal(scale=1e-3, size=v.shape[1]), dtype=np.float32)
        q = v[rng.integers(0, len(v), 8)].mean(axis=0) + noise  # a query near the items' own directions
        t0 = time.perf_counter()
        found = scan.candidates(q, allowed, n)
        if found is not None:
            v[found] @ q
        t1 = time.perf_counter()
        np.argpartition(v @ q, len(v) - n)
        t2 = time.perf_counter()
        if r:
            scan_s.append(t1 - t0)
            full_s.append(t2 - t1)
    return 1000 * float(np.median(scan_s)), 1000 * float(np.median(full_s))
