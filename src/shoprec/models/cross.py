"""Cross-domain bridge ridge: a history in one domain (platform) -> scores for the items of every domain.

Ridge regression from a user's (scaled) history row to the user's items, learned on the "bridge" users,
solved in dual (user x user) form because bridge users are few (thousands) and items many:

    B      (n_b, n_items)  binary training rows of the bridge users (see below), n_b <= max_users, sparse
    f(r)   = r / sqrt(|r|)  a row scaled by the square root of its number of items
    K      = f(B) f(B)^T + regularization * I              (n_b, n_b) user-user kernel, dense
    score  = ((f(h) f(B)^T) K^-1) B  +  popularity_weight * s_max * popularity
           = f(h) (f(B)^T f(B) + regularization I)^-1 f(B)^T B      (the same ridge in primal, item x item form)

where h is the query's history row (binary), s_max the row's largest absolute ridge score and popularity
the training item counts scaled to [0, 1] (it breaks ties, e.g. for a history no bridge user shares).
A domain-Y history reaches domain-X items only through users who have both, hence the bridge users:
those whose training items span two or more item domains, an item's domain being the part of its external
id before `domain_separator` (CDRIB's "game:12" -> "game"; linked platforms prefix their items the same
way). Without such users (one domain) every user is a bridge user. Above `max_users`, the most active are kept.

With a RankingValidation (the cdr-cold protocol passes its validation users), `regularization` is chosen
from `regularization_grid` by validation NDCG@k (one n_b x n_b solve per value).

Artifact: K^-1, popularity, the bridge users' indices and their rows as per-user item lists
(`user_items` / `user_offsets` over all users), so erasing a user (shoprec.privacy.artifacts) empties
their row, and with it everything they contribute to a score.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from shoprec.data import IdMap, Interactions, ItemCatalog
from shoprec.models._implicit import at_least, blas_threads, history_matrix, known_history, positive
from shoprec.models.base import Query, RankingValidation, Recommender, register


@dataclass(frozen=True)
class CrossConfig:
    """Defaults chosen on the CDRIB game/video validation users (per-user NDCG@10), the same for both
    directions: lambda 3..3000 all within 0.002 on game_video, 100+ best on video_game; popularity
    weight 0.05 helped both a little, 0.5 hurt both."""

    regularization: float = 100.0  # ridge lambda on the scaled user-user kernel (its diagonal is 1)
    regularization_grid: tuple[float, ...] = ()  # tried on the validation users when given (pair NDCG@k)
    popularity_weight: float = 0.05  # popularity term, relative to the row's largest ridge score
    max_users: int = 8000  # bridge users kept (most active first): the kernel is max_users^2 floats
    domain_separator: str = ":"  # an item's domain = its external id before the first separator
    num_threads: int = 0  # BLAS threads (0: library default, all cores)

    def __post_init__(self) -> None:
        positive("cross", "regularization", self.regularization)
        for value in self.regularization_grid:
            positive("cross", "regularization_grid", value)
        at_least("cross", "popularity_weight", self.popularity_weight, 0.0)
        at_least("cross", "max_users", self.max_users, 2)
        at_least("cross", "num_threads", self.num_threads, 0)


def item_domains(items: IdMap, separator: str) -> np.ndarray:
    """int32 domain code per item (the external id's prefix before `separator`; no separator: one domain)."""
    prefixes = [ext.split(separator, 1)[0] if separator and separator in ext else "" for ext in items.to_list()]
    _, codes = np.unique(np.asarray(prefixes, dtype=object), return_inverse=True)
    return codes.astype(np.int32)


def bridge_users(x: sp.csr_matrix, domains: np.ndarray, max_users: int) -> np.ndarray:
    """Users whose items span >= 2 domains (all users when none do), at most max_users, most active first."""
    coo = x.tocoo()
    pairs = np.unique(coo.row.astype(np.int64) * (int(domains.max()) + 1) + domains[coo.col])
    spans = np.bincount(pairs // (int(domains.max()) + 1), minlength=x.shape[0])
    counts = np.diff(x.indptr)
    users = np.flatnonzero(spans >= 2)
    if len(users) == 0:
        users = np.flatnonzero(counts > 0)
    order = np.lexsort((users, -counts[users]))  # most active first, ties by lower index
    return np.sort(users[order[:max_users]])


def scale_rows(x: sp.csr_matrix) -> sp.csr_matrix:
    """f(r) = r / sqrt(number of items in r), row by row (empty rows stay empty)."""
    n = np.maximum(np.diff(x.indptr), 1).astype(np.float32)
    return sp.csr_matrix(sp.diags(1.0 / np.sqrt(n)) @ x, dtype=np.float32)


@register
class Cross(Recommender):
    name = "cross"
    Config = CrossConfig
    uses_history = True
    uses_user = False  # scores come from the history alone (a cold user has no row of its own)

    def can_score(self, query: Query) -> bool:
        return len(known_history(query, self.n_items)) > 0

    def _fit(self, train: Interactions, catalog: ItemCatalog | None, validation: Any) -> None:
        cfg = self.config
        x = train.to_csr(binary=True).astype(np.float32)
        self.bridge_users = bridge_users(x, item_domains(train.items, cfg.domain_separator), cfg.max_users)
        self._set_rows(sp.csr_matrix(x[self.bridge_users]))
        kernel = np.asarray((self.bridge @ self.bridge.T).todense(), dtype=np.float64)  # f(B) f(B)^T
        counts = np.asarray(x.sum(axis=0)).ravel().astype(np.float32)
        self.popularity = counts / max(float(counts.max()), 1.0)
        self.training_log.append({"bridge_users": len(self.bridge_users), "users": int((np.diff(x.indptr) > 0).sum())})
        self._set_regularization(kernel, self._choose(kernel, validation))

    def _set_rows(self, rows: sp.csr_matrix) -> None:
        self.rows = rows  # B (n_b, n_items)
        self.bridge = scale_rows(rows)  # f(B)

    def _set_regularization(self, kernel: np.ndarray, lam: float) -> None:
        """K^-1 for this lambda (Cholesky; K is symmetric positive definite)."""
        self.regularization = lam
        with blas_threads(self.config.num_threads):
            k = kernel + lam * np.eye(len(kernel))
            self.inverse = scipy.linalg.solve(k, np.eye(len(k)), assume_a="pos").astype(np.float32)

    def _choose(self, kernel: np.ndarray, validation: Any) -> float:
        """The regularization: the config's, or the grid value with the best validation NDCG@k."""
        if not isinstance(validation, RankingValidation) or not self.config.regularization_grid:
            return self.config.regularization
        best = (-1.0, self.config.regularization)
        for lam in self.config.regularization_grid:
            self._set_regularization(kernel, lam)
            result = validation.evaluate(self)
            self.training_log.append({"regularization": lam, **result})
            best = max(best, (result[f"NDCG@{validation.k}"], lam), key=lambda t: t[0])
        return best[1]

    def _score(self, queries: Sequence[Query]) -> np.ndarray:
        # identical histories (e.g. one validation query per target of a user) are scored once
        keys = [known_history(q, self.n_items).tobytes() for q in queries]
        _, first, inverse = np.unique(np.asarray(keys, dtype=object), return_index=True, return_inverse=True)
        h = scale_rows(history_matrix([queries[int(i)] for i in first], self.n_items, 1.0))  # f(h) (n, n_items)
        with blas_threads(self.config.num_threads):
            s = np.asarray((h @ self.bridge.T) @ self.inverse, dtype=np.float32)  # (n, n_b)
        s = np.asarray(self.rows.T.dot(s.T).T, dtype=np.float32)  # (n, n_items): s @ B
        scale = np.abs(s).max(axis=1, keepdims=True)
        s += np.float32(self.config.popularity_weight) * np.where(scale > 0, scale, 1.0) * self.popularity[None, :]
        return s[inverse.ravel()]

    def _state(self) -> dict[str, np.ndarray]:
        lengths = np.zeros(self.n_users, dtype=np.int64)
        lengths[self.bridge_users] = np.diff(self.rows.indptr)  # bridge users are sorted: rows in user order
        return {"user_items": self.rows.indices.astype(np.int32),
                "user_offsets": np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
                "bridge_users": self.bridge_users.astype(np.int64), "inverse": self.inverse,
                "popularity": self.popularity}

    def _meta(self) -> dict[str, Any]:
        return {"regularization": self.regularization}

    def _set_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        self.bridge_users, offsets = arrays["bridge_users"], arrays["user_offsets"]
        indptr = np.concatenate([[0], np.cumsum(offsets[self.bridge_users + 1] - offsets[self.bridge_users])])
        items = arrays["user_items"]
        self._set_rows(sp.csr_matrix((np.ones(len(items), dtype=np.float32), items, indptr),
                                     shape=(len(self.bridge_users), self.n_items)))
        self.inverse, self.popularity = arrays["inverse"], arrays["popularity"]
        self.regularization = float(meta.get("regularization", self.config.regularization))
