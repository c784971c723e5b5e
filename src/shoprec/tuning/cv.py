"""Cross-validation folds built from the TRAINING part only, and one configuration scored over them.

Ranking data (next-item), rolling last-item folds: fold j (j = 0..K-1) drops the last j events of every
user from the training part and applies the harness' leave-one-out split to the rest, so its target is
the user's (j+1)-th last training event, its early-stopping validation event the one before, and its
model trains on everything earlier (never on a later event of that user). Fold 0 is what the harness'
own validation split looks like. Queries, exclusions (strict protocol) and metrics are the evaluation
engine's (`make_task` / `evaluate_ranking`).

Rating data: a seeded k-fold partition of the training part's ratings; RMSE/MAE of `model.predict`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from shoprec.data import Interactions, ItemCatalog
from shoprec.data.splits import kfold, leave_one_out, positions_from_end
from shoprec.errors import ConfigError, DataError
from shoprec.evaluation import metrics as M
from shoprec.evaluation.engine import ItemStats, RankingTask, evaluate_ranking, make_task
from shoprec.evaluation.protocols import EvalConfig, ranking_validation
from shoprec.models.base import RankingValidation, RatingValidation, Recommender
from shoprec.models.factory import MakeModel, training_data

RANKING_METRICS = ("NDCG", "HR", "Recall", "MAP", "Precision")
RATING_METRICS = ("RMSE", "MAE")


@dataclass(frozen=True)
class Metric:
    """The metric a study optimises: name (e.g. NDCG@10), cut-off k (0 for MRR / rating metrics), direction."""

    name: str
    k: int
    maximize: bool

    @property
    def rating(self) -> bool:
        return self.name in RATING_METRICS

    @property
    def direction(self) -> str:
        return "maximize" if self.maximize else "minimize"


def parse_metric(value: str) -> Metric:
    """'NDCG@10', 'HR@20', 'Recall@10', 'MAP@10', 'Precision@10', 'MRR', 'RMSE' or 'MAE'."""
    text = value.strip()
    upper = text.upper()
    for name in RATING_METRICS:
        if upper == name:
            return Metric(name, 0, False)
    if upper == "MRR":
        return Metric("MRR", 0, True)
    base, sep, k = text.partition("@")
    canonical = {m.upper(): m for m in RANKING_METRICS}.get(base.upper())
    if not sep or canonical is None or not k.isdigit() or int(k) <= 0:
        raise ConfigError(f"unknown metric {value!r} (use NDCG@K, HR@K, Recall@K, MAP@K, Precision@K, MRR, RMSE, MAE)")
    return Metric(f"{canonical}@{int(k)}", int(k), True)


@dataclass
class CVFold:
    """One fold: what the model trains on, its early-stopping validation, and what it is scored on."""

    name: str
    train: Interactions
    validation: RankingValidation | RatingValidation | None
    task: RankingTask | None = None  # ranking folds
    test: Interactions | None = None  # rating folds


# ------------------------------------------------------------------------------ folds
def ranking_folds(train_part: Interactions, k: int, *, exclude_seen: bool = True,
                  batch_size: int = 1024) -> list[CVFold]:
    """K rolling last-item folds of the training part (see the module docstring)."""
    if k < 1:
        raise ConfigError(f"--folds must be at least 1, got {k}")
    from_end, _ = positions_from_end(train_part)
    cfg = EvalConfig(protocol="loo", exclude_seen=exclude_seen, batch_size=batch_size)
    folds = []
    for j in range(k):
        split = leave_one_out(train_part.subset(from_end >= j))
        if len(split.test) == 0:
            raise DataError(f"cross-validation fold {j + 1}: no user has {j + 2} training events; use fewer folds")
        valid = split.valid if split.valid is not None and len(split.valid) else None
        validation = ranking_validation(split.train, valid, cfg) if valid is not None else None
        history = split.train.concat(valid) if valid is not None else split.train
        folds.append(CVFold(name=str(j + 1), train=split.train, validation=validation,
                            task=make_task(history, split.test, exclude_seen=exclude_seen)))
    return folds


def rating_folds(train_part: Interactions, k: int, rng: np.random.Generator) -> list[CVFold]:
    """K-fold partition of the training part's rated events (events without a rating stay in every train)."""
    if k < 2:
        raise ConfigError(f"rating cross-validation needs --folds >= 2, got {k}")
    rated = np.isfinite(train_part.value)
    if not rated.any():
        raise DataError("rating cross-validation: the training data has no rating values")
    splits = kfold(train_part.subset(rated), k, rng)
    unrated = train_part.subset(~rated)
    return [CVFold(name=str(i + 1), train=s.train.concat(unrated) if len(unrated) else s.train,
                   validation=None, test=s.test) for i, s in enumerate(splits)]


# ------------------------------------------------------------------------------ scoring
FoldHook = Callable[[int, float], None]
ValidationHook = Callable[[int, Any], Any]


def score_fold(fold: CVFold, model: Recommender, catalog: ItemCatalog | None, metric: Metric,
               batch_size: int = 1024) -> float:
    """Metric of a fitted model on one fold's held-out part."""
    if fold.test is not None:
        predict = getattr(model, "predict", None)
        if not callable(predict):
            raise ConfigError(f"model {model.name!r} does not predict ratings; optimise a ranking metric")
        se, ae = M.rating_errors(predict(fold.test.user, fold.test.item), fold.test.value.astype(np.float64))
        return M.rmse(se) if metric.name == "RMSE" else M.mae(ae)
    if fold.task is None:
        raise DataError(f"cross-validation fold {fold.name} has nothing to score")
    stats = ItemStats(n_items=fold.train.n_items, self_information=np.zeros(fold.train.n_items),
                      percentile=np.zeros(fold.train.n_items), similarity=None)
    outcome = evaluate_ranking(model, fold.task, (max(metric.k, 1),), stats, batch_size=batch_size)
    return float(outcome.metrics[metric.name])


def cross_validate(folds: Sequence[CVFold], make_model: MakeModel, catalog: ItemCatalog | None,
                   metric: Metric, *,
                   on_fold: FoldHook | None = None, wrap_validation: ValidationHook | None = None,
                   batch_size: int = 1024) -> list[float]:
    """Fit a fresh model per fold (a ModelFactory's feature hooks applied to its training data) and score it.

    `on_fold(i, value)` runs after fold i (it may raise optuna.TrialPruned); `wrap_validation(i, v)`
    may wrap the early-stopping validation of fold i (epoch-level pruning)."""
    values: list[float] = []
    for i, fold in enumerate(folds):
        train, cat = training_data(make_model, fold.train, catalog)
        validation = fold.validation
        if validation is not None and wrap_validation is not None:
            validation = wrap_validation(i, validation)
        model = make_model().fit(train, cat, validation=validation)
        values.append(score_fold(fold, model, cat, metric, batch_size))
        if on_fold is not None:
            on_fold(i, values[-1])
    return values
