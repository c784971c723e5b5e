"""The fitted transformer as a scorer: its members (one or an ensemble) with their inference tables.

    arrays  = query_arrays(queries)                (B, L) items / events / gaps, (B,) lengths
    h_m     = member m's hidden state at the newest event of each query                      (B, d)
    x       = sum_k AFFINITY_DECAY ** k * N[query's k-th newest item] (transitions.py; sparse) (B, n_items)
    t       = sum_k AFFINITY_DECAY ** k * P[query's k-th newest item] (transitions.py; sparse) (B, n_items)
    scores  = mean_m(h_m @ table_m[1:].T) + text_affinity * x + transition_affinity * t
              - popularity_correction * log(1 + count)                                          (B, n_items)

N holds each item's nearest items by text (config text_neighbours). With text_neighbours 0, and in models saved
before it, the text term is dense instead: x = (sum_k AFFINITY_DECAY ** k * unit text vector of the k-th newest
item) @ unit text[1:].T, the cosine to every item, and the inner-product view carries the unit text vectors.

A fitted ensemble of the default network is encoded in one batched pass (seq_ensemble.StackedEncoder);
other networks member by member. Validation ranks (NDCG@k / HR@k, and the popularity-correction search)
are computed on the model's device, a share of the queries per DDP process.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from shoprec.models.base import Query, RankingValidation
from shoprec.models.seq_ensemble import StackedEncoder, shared_prefixes
from shoprec.models.training import Dist, all_sum
from shoprec.models.transformer.config import POPULARITY_GRID
from shoprec.models.transformer.data import by_length, query_arrays
from shoprec.models.transformer.network import SeqNet
from shoprec.models.transformer.transitions import (
    AFFINITY_DECAY,
    AFFINITY_ITEMS,
    history_terms,
    transition_dense,
    unit_vectors,
)
from shoprec.ranking import hit_rate_from_ranks, ndcg_from_ranks, target_ranks

log = logging.getLogger(__name__)
SCORE_BATCH = 512  # queries per forward pass when scoring
__all__ = ["AFFINITY_DECAY", "AFFINITY_ITEMS", "Ensemble", "Member", "autocast"]


@dataclass(frozen=True)
class Member:
    """One trained network of the ensemble and its inference tables."""

    net: SeqNet
    table: Tensor  # (n_items + 1, d) item vectors
    out_table: Tensor  # (d, n_items) the same, transposed for scoring
    content: Tensor | None  # (n_items + 1, d) content part, for content attention

    @classmethod
    def of(cls, net: SeqNet) -> Member:
        """Switch `net` to inference (eval mode) and compute its item tables once."""
        net.eval()
        with torch.no_grad():
            content = net.content_table()
            table = net.item_table(content=content).float()
            return cls(net, table, table[1:].T.contiguous(),
                       content.float() if content is not None and net.cfg.content_attention else None)


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast of the network for "bf16", and for "auto" on a GPU (on a CPU the network's small
    products gain nothing from it); softmax and losses stay float32."""
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


class Ensemble:
    """Scores queries with the mean of its members' scores, minus the popularity correction."""

    def __init__(self, members: list[Member], *, device: torch.device, precision: str, max_len: int,
                 default_event: int, log_counts: np.ndarray | None = None, popularity_correction: float = 0.0,
                 stacked: bool = True, text_affinity: float = 0.0, transitions: sp.csr_matrix | None = None,
                 transition_affinity: float = 0.0, text_neighbours: sp.csr_matrix | None = None) -> None:
        self.members, self.device, self.precision = members, device, precision
        self.max_len, self.default_event = max_len, default_event
        self.n_items = members[0].out_table.shape[1]
        nets = [m.net for m in members]
        self.stacked = (StackedEncoder(nets, [m.table for m in members])
                        if stacked and StackedEncoder.supports(nets) else None)
        self.penalty: Tensor | None = None  # (n_items,)
        if popularity_correction and log_counts is not None and len(log_counts):
            self.penalty = popularity_correction * torch.from_numpy(log_counts).to(members[0].table.device)
        # text_affinity and the unit text vectors as columns, (T, n_items + 1): a query's product with them reads the
        # rows in order (one query over Beauty's catalog: 0.6 ms against 1.8 ms through a transposed view)
        self.affinity, self.unit_text_t, self.text_neighbours = 0.0, None, None
        vectors = members[0].net.text_vectors  # the catalog's text vectors, row 0 padding
        if text_affinity and text_neighbours is not None and text_neighbours.nnz:  # the sparse text term
            self.affinity, self.text_neighbours = float(text_affinity), text_neighbours
        elif text_affinity and vectors.shape[1] and text_neighbours is None:  # the dense one
            self.affinity, self.unit_text_t = float(text_affinity), unit_vectors(vectors).T.contiguous()
        self.transition_affinity, self.transitions = 0.0, None  # and P (n_items, n_items), transitions.py
        if transition_affinity and transitions is not None and transitions.nnz:
            self.transition_affinity, self.transitions = float(transition_affinity), transitions
        self._item_factors: np.ndarray | None = None

    def query_arrays(self, queries: Sequence[Query]) -> dict[str, np.ndarray]:
        return query_arrays(queries, self.n_items, self.max_len, self.default_event)

    def score(self, queries: Sequence[Query]) -> np.ndarray:
        """(B, n_items) float32 scores, in batches of similar history lengths (little padding)."""
        if len(queries) <= SCORE_BATCH:
            return self.score_tensor(queries).cpu().numpy()
        out = np.empty((len(queries), self.n_items), dtype=np.float32)
        for rows in by_length(queries, SCORE_BATCH):
            out[rows] = self.score_tensor([queries[r] for r in rows]).cpu().numpy()
        return out

    def score_tensor(self, queries: Sequence[Query]) -> Tensor:
        """(B, n_items) float32 scores on the model's device."""
        with torch.inference_mode():
            scores, affinity, transition = self.score_parts(queries)
            if affinity is not None:
                scores.add_(affinity, alpha=self.affinity)
            if transition is not None:
                scores.add_(transition, alpha=self.transition_affinity)
            return scores if self.penalty is None else scores - self.penalty

    def score_parts(self, queries: Sequence[Query]) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """(B, n_items) float32: the members' mean score, the text affinity a @ unit text.T and the transition term
        t, each before its weight (None without one); without the popularity correction."""
        arrays = self.query_arrays(queries)
        with torch.inference_mode():
            states = self.hidden(queries, arrays=arrays)
            scores = states[0] @ self.members[0].out_table  # float32: bf16 scores would create ties in the ranking
            for state, member in zip(states[1:], self.members[1:], strict=True):
                scores += state @ member.out_table
            if len(self.members) > 1:
                scores /= len(self.members)
            items, lengths = arrays["items"], arrays["lengths"]
            affinity = transition = None
            if self.unit_text_t is not None:  # the dense text term, else the sparse one (or none)
                affinity = self.affinity_vectors(arrays) @ self.unit_text_t[:, 1:]
            elif self.text_neighbours is not None:
                affinity = torch.from_numpy(transition_dense(self.text_neighbours, items, lengths)).to(scores.device)
            if self.transitions is not None:
                transition = torch.from_numpy(transition_dense(self.transitions, items, lengths)).to(scores.device)
            return scores, affinity, transition

    def history_scores(self, queries: Sequence[Query], columns: np.ndarray | None = None) -> sp.csr_matrix | None:
        """(B, n_items) float32 the sparse terms with their weights (the text neighbours', the transitions'), >= 0:
        scores == user_vectors(queries) @ item_factors.T + this (None without either). Non-zero only on the items
        near or after the queries' newest items, so an exact top-n search over the inner products adds these
        items and stays exact. With `columns`: (B, len(columns)), those items only (what explanations read)."""
        parts = [(matrix, weight) for matrix, weight in ((self.text_neighbours, self.affinity),
                                                         (self.transitions, self.transition_affinity))
                 if matrix is not None]
        if not parts:
            return None
        arrays = self.query_arrays(queries)
        return history_terms(parts, arrays["items"], arrays["lengths"], columns)

    def affinity_vectors(self, arrays: dict[str, np.ndarray]) -> Tensor:
        """(B, T) the recency-weighted sum of the unit text vectors of each query's AFFINITY_ITEMS newest items."""
        assert self.unit_text_t is not None
        items = torch.from_numpy(arrays["items"]).to(self.device)  # (B, L) right-padded: the newest at length - 1
        lengths = torch.from_numpy(arrays["lengths"]).to(self.device)
        back = torch.arange(min(AFFINITY_ITEMS, items.shape[1]), device=self.device)
        where = lengths[:, None] - 1 - back[None, :]  # (B, k) positions of the newest, newest first
        rows = items.gather(1, where.clamp(min=0)) * (where >= 0)  # row 0: padding, a zero vector
        weights = AFFINITY_DECAY ** back.float()
        return torch.einsum("k,tbk->bt", weights, self.unit_text_t[:, rows])

    def hidden(self, queries: Sequence[Query], members: Sequence[Member] | None = None,
               arrays: dict[str, np.ndarray] | None = None) -> list[Tensor]:
        """Each member's float32 hidden state (B, d) at every query's newest event (`members` given: those,
        member by member; else this ensemble's, in one batched pass where it can)."""
        arrays = self.query_arrays(queries) if arrays is None else arrays
        batch = {k: torch.from_numpy(v).to(self.device) for k, v in arrays.items()}
        with torch.inference_mode(), autocast(self.device, self.precision):
            if self.stacked is not None and members is None:  # the fitted members, in one pass
                found = shared_prefixes(arrays["items"], arrays["events"], arrays["gaps"], arrays["lengths"])
                states = self.stacked.encode(batch["items"], batch["events"], batch["gaps"], batch["lengths"],
                                             found)
                return list(states.float().unbind(0))
            return [m.net.encode(m.table, batch["items"], batch["events"], batch["gaps"], batch["lengths"],
                                 last_only=True, content_table=m.content).float() for m in members or self.members]

    # -------------------------------------------------- inner-product view (serving's ANN candidates)
    @property
    def item_factors(self) -> np.ndarray:
        """(n_items, D) item vectors with scores == user_vectors(queries) @ item_factors.T (+ history_scores(queries)
        with a transition term): the members' item tables side by side, the unit text vectors with a text affinity,
        and a last column of minus the popularity correction when there is one."""
        if self._item_factors is None:
            parts = [m.out_table.T.float().cpu().numpy() for m in self.members]
            if self.unit_text_t is not None:
                parts.append(self.unit_text_t[:, 1:].T.cpu().numpy())
            if self.penalty is not None:
                parts.append(-self.penalty.float().cpu().numpy()[:, None])
            self._item_factors = np.ascontiguousarray(np.concatenate(parts, axis=1), dtype=np.float32)
        return self._item_factors

    def user_vectors(self, queries: Sequence[Query]) -> np.ndarray:
        """(B, D) query vectors matching `item_factors`: each member's newest hidden state / n_members."""
        arrays = self.query_arrays(queries)
        with torch.inference_mode():
            parts = [state / len(self.members) for state in self.hidden(queries, arrays=arrays)]
            if self.unit_text_t is not None:
                parts.append(self.affinity * self.affinity_vectors(arrays))
            if self.penalty is not None:
                parts.append(torch.ones(len(queries), 1, device=parts[0].device))
            return torch.cat(parts, dim=1).cpu().numpy()

    # -------------------------------------------------- validation
    def validation_metrics(self, validation: RankingValidation, dist_: Dist) -> tuple[float, float]:
        """Validation NDCG@k / HR@k, ranked on the model's device with `ranking.target_ranks`; under
        torchrun each process ranks a share of the queries."""
        mine = np.arange(dist_.rank, len(validation.queries), dist_.world)
        sums = [0.0, 0.0, 0.0]
        for chunk in by_length([validation.queries[r] for r in mine], validation.batch_size):
            rows = mine[chunk]
            ranks = target_ranks(self.score_tensor([validation.queries[r] for r in rows]), validation.targets[rows],
                                 exclude=_rows_of(validation.exclude, rows))
            sums[0] += float(ndcg_from_ranks(ranks, validation.k).sum())
            sums[1] += float(hit_rate_from_ranks(ranks, validation.k).sum())
            sums[2] += len(rows)
        ndcg_sum, hit_sum, count = all_sum(sums, dist_, self.device)
        return ndcg_sum / max(count, 1.0), hit_sum / max(count, 1.0)

    def affinity_search(self, validation: RankingValidation, dist_: Dist,
                        grid: Sequence[tuple[float, float]]) -> tuple[np.ndarray, np.ndarray]:
        """Validation NDCG@k of these scores with each (text affinity, transition affinity) of `grid` in place of
        this one's (a part this ensemble lacks, for want of text or of transitions, counts 0 whatever its
        weight), aligned with `grid`, and each one's paired z against the first (_grid_ndcg)."""
        def variants(queries: list[Query]) -> Iterator[Tensor]:
            network, affinity, transition = self.score_parts(queries)
            for text_weight, transition_weight in grid:
                scores = network
                if affinity is not None and text_weight:
                    scores = scores + text_weight * affinity
                if transition is not None and transition_weight:
                    scores = scores + transition_weight * transition
                yield scores if self.penalty is None else scores - self.penalty

        return self._grid_ndcg(validation, dist_, len(grid), variants)

    def choose_affinities(self, validation: RankingValidation, dist_: Dist, texts: Sequence[float],
                          steps: Sequence[float], min_z: float = 0.0, *, fallback_text: float | None = None
                          ) -> tuple[float, float, dict[str, float], dict[str, float], float | None]:
        """(text affinity, transition affinity, the text weights' validation NDCG, the transition weights', the
        paired z of the best pair against the first) of `texts` x `steps`: the pair with the best validation
        NDCG@k (the smallest among equals), or, unless the best is above the first pair (`texts[0]`, `steps[0]`) by
        at least `min_z` standard errors of the per-query difference (a gain these targets show clearly, not one of
        their noise), the first pair, its text weight replaced by `fallback_text` where that is given and the text
        weights are searched. A part this ensemble lacks is 0 and not searched. The searches are the two slices of
        the grid through the best pair, empty for a part with one weight to try."""
        texts = (0.0,) if self.unit_text_t is None and self.text_neighbours is None else tuple(texts)
        steps = (0.0,) if self.transitions is None else tuple(steps)
        if len(texts) == 1 and len(steps) == 1:
            return float(texts[0]), float(steps[0]), {}, {}, None
        grid = [(float(t), float(r)) for t in texts for r in steps]
        ndcg, z = self.affinity_search(validation, dist_, grid)
        best = int(np.argmax(ndcg))
        text, step = grid[best]
        text_search = {str(t): float(n) for (t, r), n in zip(grid, ndcg, strict=True) if r == step}
        step_search = {str(r): float(n) for (t, r), n in zip(grid, ndcg, strict=True) if t == text}
        if z[best] < min_z:
            text, step = grid[0]
            if fallback_text is not None and len(texts) > 1:
                text = float(fallback_text)
        return (text, step, text_search if len(texts) > 1 else {}, step_search if len(steps) > 1 else {},
                float(z[best]))

    def popularity_search(self, validation: RankingValidation, dist_: Dist,
                          log_counts: np.ndarray) -> dict[str, float]:
        """Validation NDCG@k of these (uncorrected) scores for every correction of POPULARITY_GRID."""
        counts = torch.from_numpy(log_counts).to(self.device)

        def variants(queries: list[Query]) -> Iterator[Tensor]:
            raw = self.score_tensor(queries)
            return (raw - c * counts for c in POPULARITY_GRID)

        ndcg, _ = self._grid_ndcg(validation, dist_, len(POPULARITY_GRID), variants)
        return {str(v): float(n) for v, n in zip(POPULARITY_GRID, ndcg, strict=True)}

    def _grid_ndcg(self, validation: RankingValidation, dist_: Dist, size: int,
                   variants: Callable[[list[Query]], Iterator[Tensor]]) -> tuple[np.ndarray, np.ndarray]:
        """(size,) validation NDCG@k of the `size` scores `variants(queries)` yields, for each batch of validation
        queries (a share of them per DDP process), and how clearly each is above the first: its mean difference
        per query over that mean's standard error (the paired z; inf when every query gained)."""
        sums = np.zeros((3, size))  # per variant: NDCG, and its difference to variant 0's per query (sum, squares)
        mine = np.arange(dist_.rank, len(validation.queries), dist_.world)
        for chunk in by_length([validation.queries[r] for r in mine], validation.batch_size):
            rows = mine[chunk]
            exclude = _rows_of(validation.exclude, rows)
            first = None
            for i, scores in enumerate(variants([validation.queries[r] for r in rows])):
                ranks = target_ranks(scores, validation.targets[rows], exclude=exclude)
                ndcg = ndcg_from_ranks(ranks, validation.k)
                first = ndcg if first is None else first
                diff = ndcg - first
                sums[:, i] += [float(ndcg.sum()), float(diff.sum()), float((diff * diff).sum())]
        totals = np.array(all_sum([*sums.ravel().tolist(), float(len(mine))], dist_, self.device))
        n = max(float(totals[-1]), 1.0)
        ndcg_sum, diff_sum, diff_squares = totals[:-1].reshape(3, size)
        mean = diff_sum / n
        se = np.sqrt(np.maximum(diff_squares / n - mean ** 2, 0.0) / n)
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.where(se > 0, mean / se, np.where(mean > 0, np.inf, 0.0))
        return np.asarray(ndcg_sum / n, dtype=np.float64), np.asarray(z, dtype=np.float64)


def _rows_of(exclude: Any, rows: np.ndarray) -> Any:
    if exclude is None:
        return None
    if hasattr(exclude, "tocsr"):
        return exclude.tocsr()[rows]
    return [exclude[int(r)] for r in rows]
