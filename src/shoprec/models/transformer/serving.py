"""The fitted transformer as a scorer: its members (one or an ensemble) with their inference tables.

    arrays  = query_arrays(queries)                (B, L) items / events / gaps, (B,) lengths
    h_m     = member m's hidden state at the newest event of each query                      (B, d)
    scores  = mean_m(h_m @ table_m[1:].T) - popularity_correction * log(1 + count)          (B, n_items)

A fitted ensemble of the default network is encoded in one batched pass (seq_ensemble.StackedEncoder);
other networks member by member. Validation ranks (NDCG@k / HR@k, and the popularity-correction search)
are computed on the model's device, a share of the queries per DDP process.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from shoprec.models.base import Query, RankingValidation
from shoprec.models.seq_ensemble import StackedEncoder, shared_prefixes
from shoprec.models.training import Dist, all_sum
from shoprec.models.transformer.config import POPULARITY_GRID
from shoprec.models.transformer.data import by_length, query_arrays
from shoprec.models.transformer.network import SeqNet
from shoprec.ranking import hit_rate_from_ranks, ndcg_from_ranks, target_ranks

log = logging.getLogger(__name__)
SCORE_BATCH = 512  # queries per forward pass when scoring


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
                 stacked: bool = True) -> None:
        self.members, self.device, self.precision = members, device, precision
        self.max_len, self.default_event = max_len, default_event
        self.n_items = members[0].out_table.shape[1]
        nets = [m.net for m in members]
        self.stacked = (StackedEncoder(nets, [m.table for m in members])
                        if stacked and StackedEncoder.supports(nets) else None)
        self.penalty: Tensor | None = None  # (n_items,)
        if popularity_correction and log_counts is not None and len(log_counts):
            self.penalty = popularity_correction * torch.from_numpy(log_counts).to(members[0].table.device)
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
            states = self.hidden(queries)
            scores = states[0] @ self.members[0].out_table  # float32: bf16 scores would create ties in the ranking
            for state, member in zip(states[1:], self.members[1:], strict=True):
                scores += state @ member.out_table
            if len(self.members) > 1:
                scores /= len(self.members)
            return scores if self.penalty is None else scores - self.penalty

    def hidden(self, queries: Sequence[Query], members: Sequence[Member] | None = None) -> list[Tensor]:
        """Each member's float32 hidden state (B, d) at every query's newest event (`members` given: those,
        member by member; else this ensemble's, in one batched pass where it can)."""
        arrays = self.query_arrays(queries)
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
        """(n_items, D) item vectors with scores == user_vectors(queries) @ item_factors.T: the members' item
        tables side by side, and a last column of minus the popularity correction when there is one."""
        if self._item_factors is None:
            parts = [m.out_table.T.float().cpu().numpy() for m in self.members]
            if self.penalty is not None:
                parts.append(-self.penalty.float().cpu().numpy()[:, None])
            self._item_factors = np.ascontiguousarray(np.concatenate(parts, axis=1), dtype=np.float32)
        return self._item_factors

    def user_vectors(self, queries: Sequence[Query]) -> np.ndarray:
        """(B, D) query vectors matching `item_factors`: each member's newest hidden state / n_members."""
        with torch.inference_mode():
            parts = [state / len(self.members) for state in self.hidden(queries)]
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

    def popularity_search(self, validation: RankingValidation, dist_: Dist,
                          log_counts: np.ndarray) -> dict[str, float]:
        """Validation NDCG@k of these (uncorrected) scores for every correction of POPULARITY_GRID."""
        sums = np.zeros(len(POPULARITY_GRID))
        mine = np.arange(dist_.rank, len(validation.queries), dist_.world)
        counts = torch.from_numpy(log_counts).to(self.device)
        for chunk in by_length([validation.queries[r] for r in mine], validation.batch_size):
            rows = mine[chunk]
            raw = self.score_tensor([validation.queries[r] for r in rows])
            for i, c in enumerate(POPULARITY_GRID):
                ranks = target_ranks(raw - c * counts, validation.targets[rows],
                                     exclude=_rows_of(validation.exclude, rows))
                sums[i] += float(ndcg_from_ranks(ranks, validation.k).sum())
        totals = np.array(all_sum([*sums.tolist(), float(len(mine))], dist_, self.device))
        ndcg = totals[:-1] / max(totals[-1], 1.0)
        return {str(c): float(v) for c, v in zip(POPULARITY_GRID, ndcg, strict=True)}


def _rows_of(exclude: Any, rows: np.ndarray) -> Any:
    if exclude is None:
        return None
    if hasattr(exclude, "tocsr"):
        return exclude.tocsr()[rows]
    return [exclude[int(r)] for r in rows]
