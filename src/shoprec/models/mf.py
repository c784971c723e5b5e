"""Explicit-rating matrix factorisation with global mean, user/item biases and implicit feedback.

    r_ui ~ N(mu + b_u + c_i + p_u . q_i, 1/alpha)                     squared error on the observed ratings
    [p_u, b_u] ~ N(m_U + sum_{j in N(u)} |N(u)|^-1/2 y_j, 1/lambda_U)   prior mean from the items u interacted with
    [q_i, c_i] ~ N(m_I + sum_{v in N(i)} |N(i)|^-1/2 z_v, 1/lambda_I)   ... and from the users who interacted with i

The prior means carry the SVD++ idea (which items a user rated says something about the user, which
users rated an item says something about the item) on both sides; `implicit=False` drops them (plain
biased MF). N(u) holds every training event of u, also events without a rating (views, purchases).

Two solvers share the same block updates (rows x = [factors, bias], d = factors + 1):
- "als" (default): alternating least squares on the MAP objective
      sum (r_ui - prediction)^2 + regularization * (sum ||x_u - prior mean||^2 + sum ||y_j||^2 + ...)
  deterministic, about 50 sweeps. `regularization` = 25 (biases: a fifth of it) was chosen on 10%
  validation splits of the ML-100K u1..u5 base files (20 and 30 are worse by 0.001-0.002, 15 by
  0.009, the biases at the full 25 by 0.002); it suits 1-5 star ratings.
- "gibbs": Bayesian MF by Gibbs sampling (Salakhutdinov & Mnih 2008, with biases and the implicit
  prior means): the same updates plus noise; precisions and noise are sampled too, so there is no
  regularisation to tune (on ML-100K 0.005 RMSE behind the tuned als, and ~10x slower: 400 sweeps).
  Predictions average the posterior samples kept after `burn_in`, one every `thin` epochs.
- "sgd": plain biased MF (`implicit=False`) trained by minibatch Adam on the squared error plus the same
  penalty (shoprec.models.mf_sgd); with `dp_epsilon` set it trains by DP-SGD (Opacus) and reports the
  privacy spent in `privacy` and the artifact's meta (shoprec.models.dp: the unit is one rating).
The linked weights y, z are a Gaussian linear regression of the rows on N: sampled (or solved) by
conjugate gradients on the perturbed normal equations, so a sweep costs O(nnz * d^2).

Artifact: the kept samples are stacked, so that a prediction is one dot product:
    user_factors (n_users, S*f) = [p^1 .. p^S] / sqrt(S),  item_factors likewise,
    predict = global_mean + user_bias[u] + item_bias[i] + user_factors[u] . item_factors[i]
which equals the average of the S samples' predictions (als: S = 1). Memory grows with S (`epochs`/`thin`).

Data without ratings (every `value` NaN): each (user, item) event is a 1 and `negatives` random
unobserved items per event are 0, so the model still ranks (a pointwise implicit-feedback fit).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
import scipy.sparse as sp

from shoprec.data import Interactions, ItemCatalog
from shoprec.errors import ConfigError, DataError
from shoprec.models.base import Query, RankingValidation, RatingValidation, Recommender, register
from shoprec.models.dp import check_dp_config
from shoprec.models.training import check_range, train_epochs

ROW_CHUNK = 4096  # rows solved at once (bounds the (rows, d, d) Gram tensor)
BIAS_REGULARIZATION_SCALE = 0.2  # als: the biases' precision is this fraction of `regularization`


@dataclass(frozen=True)
class MFConfig:
    DP_SETTINGS: ClassVar[dict[str, Any]] = {"solver": "sgd", "implicit": False}  # what `--dp-epsilon` adds
    RENAMED: ClassVar[dict[str, str]] = {"factors": "embedding_size"}
    embedding_size: int = 10  # latent dimensions f
    solver: Literal["als", "gibbs", "sgd"] = "als"
    epochs: int | None = None  # sweeps over users and items (None: the solver's default, see `sweeps`)
    burn_in: int = 20  # gibbs: sweeps before samples are kept (at most epochs // 2)
    thin: int = 10  # gibbs: keep one sample every `thin` sweeps (and validate then)
    implicit: bool = True  # SVD++-like prior means from who-interacted-with-what
    regularization: float = 25.0  # als, sgd: precision (L2 weight) of every parameter; gibbs learns its own
    patience: int = 0  # stop after this many validations without improvement (0: never early)
    negatives: int = 4  # data without ratings only: sampled unobserved items (rated 0) per event
    init_std: float = 0.1  # standard deviation of the initial factors
    cg_tolerance: float = 1e-3  # relative residual at which the linked-weight solves stop
    learning_rate: float = 0.01  # sgd: Adam step size
    batch_size: int = 256  # sgd: ratings per step (DP: the expected size of a Poisson batch)
    dp_epsilon: float | None = None  # sgd: train by DP-SGD to this privacy budget (None: no DP)
    dp_delta: float | None = None  # DP delta (None: min(1e-5, 1 / n_ratings))
    dp_max_grad_norm: float = 1.0  # DP: per-rating gradient clipping bound
    dp_rating_range: tuple[float, ...] | None = None  # DP: public rating scale [low, high] (clips predictions)
    seed: int = 0

    def __post_init__(self) -> None:
        check_range("mf", "embedding_size", self.embedding_size, 1)
        if self.epochs is not None:
            check_range("mf", "epochs", self.epochs, 1)
        check_range("mf", "burn_in", self.burn_in, 0)
        check_range("mf", "thin", self.thin, 1)
        check_range("mf", "regularization", self.regularization, 0.0, strict_low=True)
        check_range("mf", "patience", self.patience, 0)
        check_range("mf", "negatives", self.negatives, 0)
        check_range("mf", "init_std", self.init_std, 0.0)
        check_range("mf", "cg_tolerance", self.cg_tolerance, 0.0, 1.0, strict_low=True)
        check_range("mf", "learning_rate", self.learning_rate, 0.0, strict_low=True)
        check_range("mf", "batch_size", self.batch_size, 1)
        if self.solver == "sgd" and self.implicit:
            raise ConfigError("parameter 'implicit' of model 'mf' must be false with solver 'sgd' (plain biased MF)")
        if self.dp_epsilon is not None and self.solver != "sgd":
            raise ConfigError(f"parameter 'dp_epsilon' of model 'mf' needs solver 'sgd' (DP-SGD), "
                              f"got solver {self.solver!r}")
        check_dp_config("mf", self)

    @property
    def sweeps(self) -> int:
        """`epochs`, or the solver's default: 50 for als, 400 for gibbs, 20 for sgd."""
        return self.epochs if self.epochs is not None else {"als": 50, "gibbs": 400, "sgd": 20}[self.solver]

    def keeps(self, epoch: int) -> bool:
        """Whether the gibbs solver keeps the sample of this (1-based) epoch: every `thin` after burn-in,
        and always the last one."""
        burn_in = min(self.burn_in, self.sweeps // 2)
        return epoch == self.sweeps or (epoch > burn_in and (epoch - burn_in) % self.thin == 0)


# ------------------------------------------------------------------------------ training data
@dataclass
class _Side:
    """One side (users or items) of the factorisation: its rows and their prior."""

    ratings: sp.csr_matrix  # (n, n_other) observed ratings
    pattern: sp.csr_matrix  # same sparsity, values 1
    implicit: sp.csr_matrix  # (n, n_other) N, rows scaled by |N(row)|^-1/2 (all zero when implicit=False)
    x: np.ndarray  # (n, d) rows [factors, bias]
    mean: np.ndarray  # (d,) prior mean m
    precision: np.ndarray  # (d,) prior precision lambda
    link: np.ndarray  # (n_other, d) y or z
    link_precision: np.ndarray  # (d,)
    samples: list[np.ndarray] = field(default_factory=list)  # kept x

    def prior_mean(self) -> np.ndarray:
        return self.mean + self.implicit @ self.link


def _rating_triples(train: Interactions, cfg: MFConfig, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """(users, items, ratings): the latest rating per (user, item); for data without ratings, 1s plus
    sampled 0s."""
    order = train.time_order()
    rated = order[np.isfinite(train.value[order])]
    implicit_data = len(rated) == 0
    rows = order if implicit_data else rated
    keys = train.user[rows].astype(np.int64) * train.n_items + train.item[rows]
    # keep the last occurrence of each pair (rows are in time order)
    _, last = np.unique(keys[::-1], return_index=True)
    rows = rows[::-1][last]
    u, i = train.user[rows].astype(np.int64), train.item[rows].astype(np.int64)
    r = np.ones(len(rows)) if implicit_data else train.value[rows].astype(np.float64)
    if implicit_data and cfg.negatives:
        nu, ni = _sample_negatives(u, i, train.n_items, cfg.negatives, rng)
        u, i, r = np.concatenate([u, nu]), np.concatenate([i, ni]), np.concatenate([r, np.zeros(len(nu))])
    return u, i, r


def _sample_negatives(u: np.ndarray, i: np.ndarray, n_items: int, per_event: int,
                      rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """`per_event` random items per (u, i) that u never interacted with (pairs deduplicated)."""
    seen = u * n_items + i
    cand_u = np.repeat(u, per_event)
    cand_i = rng.integers(0, n_items, size=len(cand_u))
    keys = cand_u * n_items + cand_i
    keys = np.unique(keys[~np.isin(keys, seen)])
    return keys // n_items, keys % n_items


def _implicit_matrix(train: Interactions, transpose: bool, enabled: bool) -> sp.csr_matrix:
    """N: binary who-interacted-with-what over ALL events, rows scaled by count^-1/2."""
    a, b = (train.item, train.user) if transpose else (train.user, train.item)
    shape = (train.n_items, train.n_users) if transpose else (train.n_users, train.n_items)
    if not enabled:
        return sp.csr_matrix(shape)
    m = sp.csr_matrix((np.ones(len(a)), (a, b)), shape=shape)
    m.sum_duplicates()
    m.data[:] = 1.0
    counts = np.maximum(np.diff(m.indptr), 1)
    return sp.csr_matrix(sp.diags(counts ** -0.5) @ m)


# ------------------------------------------------------------------------------ block updates
def _solve_rows(side: _Side, other: np.ndarray, offset: np.ndarray, alpha: float,
                rng: np.random.Generator | None) -> np.ndarray:
    """New rows x = [p, b] given the other side: Gaussian posterior draws (rng) or posterior means (None).

    Design of row u: z_i = [q_i, 1] for each rated i; target r_ui - offset_i (offset = mu + c_i).
    Posterior precision A_u = diag(lambda) + alpha sum z z^T; mean = A_u^-1 (lambda m_u + alpha sum z y).
    """
    n, d = side.x.shape
    z = np.concatenate([other[:, :-1], np.ones((len(other), 1))], axis=1)  # (n_other, d)
    zz = (z[:, :, None] * z[:, None, :]).reshape(len(z), d * d)
    rhs = alpha * (side.ratings @ z - side.pattern @ (z * offset[:, None])) + side.precision * side.prior_mean()
    out = np.empty((n, d))
    for start in range(0, n, ROW_CHUNK):
        rows = slice(start, min(start + ROW_CHUNK, n))
        gram = (side.pattern[rows] @ zz).reshape(-1, d, d) * alpha
        gram[:, np.arange(d), np.arange(d)] += side.precision
        chol = np.linalg.cholesky(gram)
        mean = np.linalg.solve(gram, rhs[rows, :, None])[:, :, 0]
        if rng is not None:  # x = mean + L^-T eps has covariance A^-1
            eps = rng.standard_normal((len(mean), d, 1))
            mean += np.linalg.solve(np.swapaxes(chol, 1, 2), eps)[:, :, 0]
        out[rows] = mean
    return out


def _solve_link(side: _Side, rng: np.random.Generator | None, tol: float, max_iter: int = 200) -> np.ndarray:
    """Linked weights Y given the rows: regression x - m = N Y + noise(1/lambda), prior Y ~ N(0, 1/lambda_Y).

    Per dimension: (lambda N^T N + lambda_Y I) y = lambda N^T t (+ perturbation sqrt(lambda) N^T e1 +
    sqrt(lambda_Y) e2 for an exact posterior draw), solved by conjugate gradients warm-started at Y.
    """
    lam, lam_y, n_mat = side.precision, side.link_precision, side.implicit
    target = side.x - side.mean
    rhs = n_mat.T @ (lam * target)
    if rng is not None:
        rhs += n_mat.T @ (np.sqrt(lam) * rng.standard_normal(target.shape))
        rhs += np.sqrt(lam_y) * rng.standard_normal(side.link.shape)

    def apply(v: np.ndarray) -> np.ndarray:
        return lam * (n_mat.T @ (n_mat @ v)) + lam_y * v

    y = side.link.copy()
    res = rhs - apply(y)
    direction = res.copy()
    rs = (res * res).sum(axis=0)
    stop = tol**2 * np.maximum((rhs * rhs).sum(axis=0), 1e-300)
    for _ in range(max_iter):
        if np.all(rs <= stop):
            break
        ad = apply(direction)
        step = rs / np.maximum((direction * ad).sum(axis=0), 1e-300)
        y += step * direction
        res -= step * ad
        rs_new = (res * res).sum(axis=0)
        direction = res + (rs_new / np.maximum(rs, 1e-300)) * direction
        rs = rs_new
    return y


def _sample_normal_gamma(x: np.ndarray, rng: np.random.Generator, a0: float = 1.0, b0: float = 1.0,
                         g0: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(precision, mean) per column from the Normal-Gamma conditional given the rows x."""
    n = len(x)
    centre = x.sum(axis=0) / (n + g0)
    sq = ((x - centre) ** 2).sum(axis=0) + g0 * centre**2
    precision = rng.gamma(a0 + (n + 1) / 2, 1.0 / (b0 + sq / 2))
    mean = rng.normal(centre, 1.0 / np.sqrt((n + g0) * precision))
    return precision, mean


def _stack(samples: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(mean bias, factors of all samples side by side / sqrt(S)) as float32."""
    bias = np.mean([x[:, -1] for x in samples], axis=0)
    factors = np.concatenate([x[:, :-1] for x in samples], axis=1) / np.sqrt(len(samples))
    return bias.astype(np.float32), factors.astype(np.float32)


# ------------------------------------------------------------------------------ the model
class RatingFit:
    """What a rating model that may train by DP-SGD (mf, ncf) keeps besides its weights: the epoch kept,
    the rating range its predictions are clipped to, and the privacy spent; saved in the artifact's meta."""

    best_epoch: int = 0
    rating_range: tuple[float, float] = (0.0, 1.0)
    privacy: dict[str, Any] | None = None  # DP-SGD: the PrivacyReport as a dict

    def _fit_meta(self) -> dict[str, Any]:
        meta = {"rating_range": [v if np.isfinite(v) else None for v in self.rating_range],
                "best_epoch": self.best_epoch}
        return {**meta, "privacy": self.privacy} if self.privacy else meta

    def _set_fit_meta(self, meta: dict[str, Any]) -> None:
        low, high = meta["rating_range"]
        self.rating_range = (-np.inf if low is None else float(low), np.inf if high is None else float(high))
        self.best_epoch = int(meta.get("best_epoch", 0))
        self.privacy = meta.get("privacy")


@register
class MF(RatingFit, Recommender):
    """Biased matrix factorisation for explicit ratings; `predict(users, items)` gives ratings."""

    name = "mf"
    Config = MFConfig

    # ---------------------------------------------------------------- fit
    def _fit(self, train: Interactions, catalog: ItemCatalog | None, validation: Any) -> None:
        cfg: MFConfig = self.config
        if isinstance(validation, RankingValidation):  # ranking protocols (e.g. `shoprec train`'s held-out
            validation = None  # evaluation): mf early-stops on held-out ratings only, so it fits without one
        if validation is not None and not isinstance(validation, RatingValidation):
            raise ConfigError("model 'mf' validates with a RatingValidation (held-out ratings)")
        rng = np.random.default_rng(cfg.seed)
        if cfg.solver == "sgd":
            self._fit_sgd(train, validation, rng)
            return
        u, i, r = _rating_triples(train, cfg, rng)
        self.rating_range = (float(r.min()), float(r.max()))
        self._mu, self._alpha = float(r.mean()), 1.0
        self._u, self._i, self._r = u, i, r
        self._users = self._new_side(train, u, i, r, transpose=False, rng=rng)
        self._items = self._new_side(train, i, u, r, transpose=True, rng=rng)
        self._mu_samples: list[float] = []
        gibbs = cfg.solver == "gibbs"
        outcome = train_epochs(
            self, epochs=cfg.sweeps, train_epoch=lambda epoch: self._sweep(epoch, rng if gibbs else None),
            validation=validation, patience=cfg.patience, evaluate_at=cfg.keeps if gibbs else None,
            snapshot=self._snapshot, restore=self._restore)
        self.best_epoch = outcome.best_epoch
        self._publish()
        del self._users, self._items, self._u, self._i, self._r

    def _fit_sgd(self, train: Interactions, validation: Any, rng: np.random.Generator) -> None:
        """The gradient-trained solver (and DP-SGD): see shoprec.models.mf_sgd."""
        from shoprec.models.mf_sgd import fit_sgd

        cfg: MFConfig = self.config
        private = cfg.dp_epsilon is not None
        if private and not np.isfinite(train.value).any():
            raise DataError("model 'mf': dp_epsilon needs ratings (a 'value' per event); without them the "
                            "sampled negatives would depend on the data outside DP-SGD")
        u, i, r = _rating_triples(train, cfg, rng)
        if private:
            low, high = cfg.dp_rating_range or (-np.inf, np.inf)
            self.rating_range = (float(low), float(high))
        else:
            self.rating_range = (float(r.min()), float(r.max()))
        report = fit_sgd(self, u, i, r, train.n_users, train.n_items, validation)
        self.privacy = report.to_dict() if report is not None else None

    def set_arrays(self, arrays: dict[str, Any]) -> None:
        """Publish learned arrays (global_mean, user/item bias and factors) for predict / score / save."""
        self.global_mean = np.float32(arrays["global_mean"])
        self.user_bias, self.user_factors = arrays["user_bias"], arrays["user_factors"]
        self.item_bias, self.item_factors = arrays["item_bias"], arrays["item_factors"]

    def _new_side(self, train: Interactions, rows: np.ndarray, cols: np.ndarray, r: np.ndarray,
                  transpose: bool, rng: np.random.Generator) -> _Side:
        cfg: MFConfig = self.config
        n, n_other = (train.n_items, train.n_users) if transpose else (train.n_users, train.n_items)
        d = cfg.embedding_size + 1
        ratings = sp.csr_matrix((r, (rows, cols)), shape=(n, n_other))
        pattern = sp.csr_matrix((np.ones(len(r)), (rows, cols)), shape=(n, n_other))
        x = np.zeros((n, d))
        x[:, :-1] = rng.normal(0.0, cfg.init_std, (n, cfg.embedding_size))
        reg = cfg.regularization
        als = cfg.solver == "als"
        precision = np.full(d, reg if als else 1.0)  # gibbs: initial values, then sampled
        precision[-1] *= BIAS_REGULARIZATION_SCALE if als else 1.0
        return _Side(ratings=ratings, pattern=pattern, implicit=_implicit_matrix(train, transpose, cfg.implicit),
                     x=x, mean=np.zeros(d), precision=precision,
                     link=np.zeros((n_other, d)), link_precision=np.full(d, reg if als else 10.0))

    def _sweep(self, epoch: int, rng: np.random.Generator | None) -> float:
        """One sweep: users, items, global mean, noise, linked weights, priors. Returns the training RMSE."""
        cfg: MFConfig = self.config
        users, items = self._users, self._items
        users.x = _solve_rows(users, items.x, self._mu + items.x[:, -1], self._alpha, rng)
        items.x = _solve_rows(items, users.x, self._mu + users.x[:, -1], self._alpha, rng)
        u, i, r = self._u, self._i, self._r
        res = r - (users.x[u, :-1] * items.x[i, :-1]).sum(axis=1) - users.x[u, -1] - items.x[i, -1]
        self._mu = float(res.mean()) if rng is None else float(rng.normal(res.mean(), (self._alpha * len(r)) ** -0.5))
        sse = float(((res - self._mu) ** 2).sum())
        if rng is not None:
            self._alpha = float(rng.gamma(1.0 + len(r) / 2, 1.0 / (1.0 + sse / 2)))
        for side in (users, items):
            if cfg.implicit:
                side.link = _solve_link(side, rng, cfg.cg_tolerance)
            if rng is not None:
                if cfg.implicit:
                    side.link_precision = rng.gamma(1.0 + len(side.link) / 2, 1.0 / (1.0 + (side.link**2).sum(0) / 2))
                side.precision, side.mean = _sample_normal_gamma(side.x - side.implicit @ side.link, rng)
        if rng is None or cfg.keeps(epoch):
            self._keep_sample(replace=rng is None)
        return float(np.sqrt(sse / len(r)))

    def _keep_sample(self, replace: bool) -> None:
        if replace:
            self._users.samples, self._items.samples, self._mu_samples = [], [], []
        self._users.samples.append(self._users.x.copy())
        self._items.samples.append(self._items.x.copy())
        self._mu_samples.append(self._mu)
        self._publish()

    def _snapshot(self) -> int | tuple[np.ndarray, np.ndarray, float]:
        if self.config.solver == "gibbs":
            return len(self._mu_samples)
        return self._users.x.copy(), self._items.x.copy(), self._mu

    def _restore(self, state: int | tuple[np.ndarray, np.ndarray, float]) -> None:
        if isinstance(state, int):
            for side in (self._users, self._items):
                del side.samples[state:]
            del self._mu_samples[state:]
        else:
            self._users.x, self._items.x, self._mu = state
            self._keep_sample(replace=True)

    def _publish(self) -> None:
        """Stack the kept samples into the arrays predict / score use (see the module docstring)."""
        self.global_mean = np.float32(np.mean(self._mu_samples))
        self.user_bias, self.user_factors = _stack(self._users.samples)
        self.item_bias, self.item_factors = _stack(self._items.samples)

    # ---------------------------------------------------------------- predict / score
    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Predicted ratings for (user, item) index pairs, clipped to the training range.

        An unknown user or item (index -1 or out of range) contributes nothing beyond the global mean.
        """
        self._require_fitted()
        users, items = np.asarray(users, dtype=np.int64), np.asarray(items, dtype=np.int64)
        ku = (users >= 0) & (users < len(self.user_bias))
        ki = (items >= 0) & (items < len(self.item_bias))
        uu, ii = np.where(ku, users, 0), np.where(ki, items, 0)
        dot = np.einsum("nf,nf->n", self.user_factors[uu], self.item_factors[ii])
        pred = self.global_mean + ku * self.user_bias[uu] + ki * self.item_bias[ii] + (ku & ki) * dot
        return np.clip(pred, *self.rating_range).astype(np.float32)

    def _score(self, queries: Sequence[Query]) -> np.ndarray:
        """Predicted ratings of every item for the queries' users (not clipped, so that order is kept)."""
        u = np.array([q.user for q in queries], dtype=np.int64)
        return (self.user_factors[u] @ self.item_factors.T + self.user_bias[u, None]
                + self.item_bias[None, :] + self.global_mean)

    # ---------------------------------------------------------------- artifacts
    def _state(self) -> dict[str, np.ndarray]:
        return {"global_mean": np.array([self.global_mean], dtype=np.float32), "user_bias": self.user_bias,
                "item_bias": self.item_bias, "user_factors": self.user_factors, "item_factors": self.item_factors}

    def _meta(self) -> dict[str, Any]:
        return self._fit_meta()

    def _set_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        self.global_mean = np.float32(arrays["global_mean"][0])
        self.user_bias, self.item_bias = arrays["user_bias"], arrays["item_bias"]
        self.user_factors, self.item_factors = arrays["user_factors"], arrays["item_factors"]
        self._set_fit_meta(meta)
