"""Evaluation protocols: leave-one-out and temporal next-item ranking, k-fold / official-fold rating prediction.

All of them run in memory on Interactions (no database). Ranking protocols fit once (with a validation
split for early stopping that never contains test events) and look at the test targets once at the end.

- `loo`: `leave_one_out` split; the model is fit on train with the validation events as a
  RankingValidation; the test query of a user is its train + valid events in time order (with event
  types and timestamps); full ranking over all items; seen items excluded unless `exclude_seen=False`
  (the target itself is never excluded).
- `temporal`: train before the cut-off, test = later events of users who have training events; every
  distinct later item is relevant (later impressions, removals from cart, returns and dislikes are not).
  Validation: the last training event of each user with >= 2 training events is held out (the model is
  fit without it); `validation=False` fits on all training events.
- `cdr-cold`: cross-domain cold start on a dataset with domains (CDRIB): rank all target-domain items for
  users without target-domain training events from their other-domain history (see evaluation/cdr.py).
- `kfold` / `official-folds`: rating prediction with `model.predict(users, items)`; RMSE/MAE per fold,
  `metrics` holds their mean over folds. `valid_fraction` > 0 holds out that share of each training
  fold (seeded) as a RatingValidation.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from shoprec.data import Interactions, ItemCatalog
from shoprec.data.splits import Split, kfold, leave_one_out, temporal, to_timestamp
from shoprec.errors import ConfigError, DataError
from shoprec.evaluation import cdr
from shoprec.evaluation import metrics as M
from shoprec.evaluation.engine import ItemStats, RankingTask, evaluate_ranking, make_task
from shoprec.models.base import RankingValidation, RatingValidation, Recommender
from shoprec.models.factory import MakeModel, training_data
from shoprec.models.popular import Popular
from shoprec.types import EventType

PROTOCOLS = ("loo", "temporal", "kfold", "official-folds", "cdr-cold")
# Later events of these types are not relevant targets for the temporal protocol (they stay in histories).
NOT_RELEVANT_EVENTS = (EventType.IMPRESSION, EventType.REMOVE_FROM_CART, EventType.RETURN, EventType.DISLIKE)
RATING_PROTOCOLS = ("kfold", "official-folds")


@dataclass(frozen=True)
class EvalConfig:
    protocol: str = "loo"
    ks: tuple[int, ...] = (10, 20)
    exclude_seen: bool = True  # strict protocol: a user's seen items are not ranked (targets excepted)
    seed: int = 0
    cutoff: str | None = None  # temporal: ISO date or unix seconds
    folds: int = 5  # kfold
    valid_fraction: float = 0.0  # rating protocols: share of each training fold held out for validation
    validation: bool = True  # temporal: hold out the last training event per user for early stopping
    valid_k: int = 10  # cut-off of the RankingValidation passed to fit
    batch_size: int = 1024
    target: str | None = None  # cdr-cold: "X_Y", recommend domain-X items from domain-Y histories
    training: str = "joint"  # cdr-cold: "joint" (X + Y train) or "target-only" (X train alone)
    split: str = "test"  # cdr-cold: evaluate the "test" users, or the "valid" users (for tuning)

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ConfigError(f"unknown protocol {self.protocol!r} (valid: {', '.join(PROTOCOLS)})")
        if not self.ks or any(k <= 0 for k in self.ks):
            raise ConfigError(f"k must be positive integers, got {list(self.ks)}")
        if self.protocol == "temporal" and self.cutoff is None:
            raise ConfigError("protocol 'temporal' needs a cut-off (--cutoff DATE)")
        if self.batch_size <= 0:
            raise ConfigError(f"batch_size must be positive, got {self.batch_size}")
        if not 0.0 <= self.valid_fraction < 1.0:
            raise ConfigError(f"valid_fraction must be in [0, 1), got {self.valid_fraction}")
        if self.training not in cdr.CDR_TRAINING:
            raise ConfigError(f"training must be one of {list(cdr.CDR_TRAINING)}, got {self.training!r}")
        if self.split not in cdr.CDR_SPLITS:
            raise ConfigError(f"split must be one of {list(cdr.CDR_SPLITS)}, got {self.split!r}")


@dataclass
class EvalResult:
    """What a protocol measured. `per_user` maps unit keys (user ids, or fold:user) to per-metric arrays."""

    protocol: str
    metrics: dict[str, float]
    n_users_evaluated: int
    fit_seconds: float
    eval_seconds: float
    unit_keys: list[str]
    per_user: dict[str, np.ndarray]
    per_fold: list[dict[str, Any]] | None = None
    training_log: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    model: Recommender | None = None


@dataclass
class FoldData:
    name: str
    train: Interactions
    test: Interactions


# ---------------------------------------------------------------------------------- ranking
def evaluate_loo(data: Interactions, catalog: ItemCatalog | None, make_model: MakeModel,
                 cfg: EvalConfig, *, progress: bool = False) -> EvalResult:
    split = leave_one_out(data)
    validation = None
    if split.valid is not None and len(split.valid):
        validation = ranking_validation(split.train, split.valid, cfg)
    model = make_model().fit(*training_data(make_model, split.train, catalog), validation=validation)
    history = split.train.concat(split.valid) if split.valid is not None else split.train
    task = make_task(history, split.test, exclude_seen=cfg.exclude_seen)
    notes = ["leave-one-out: last event = test, second-to-last = validation; users with 2 events have no "
             "validation event, users with 1 event are not evaluated"]
    return _ranking_result(model, task, split.train, cfg, notes, progress)


def evaluate_temporal(data: Interactions, catalog: ItemCatalog | None, make_model: MakeModel,
                      cfg: EvalConfig, *, progress: bool = False) -> EvalResult:
    if cfg.cutoff is None:
        raise ConfigError("protocol 'temporal' needs a cut-off (--cutoff DATE)")
    split, test = temporal_holdout(data, cfg.cutoff)
    fit_train, validation = split.train, None
    if cfg.validation:
        inner = leave_one_out(split.train, validation=False)
        if len(inner.test):
            fit_train, validation = inner.train, ranking_validation(inner.train, inner.test, cfg)
    model = make_model().fit(*training_data(make_model, fit_train, catalog), validation=validation)
    task = make_task(split.train, test, exclude_seen=cfg.exclude_seen)
    notes = [_temporal_note(cfg.cutoff),
             "validation: last training event of each user held out" if validation is not None
             else "no validation split: fit on all training events"]
    return _ranking_result(model, task, split.train, cfg, notes, progress)


def temporal_holdout(data: Interactions, cutoff: int | float | str) -> tuple[Split, Interactions]:
    """The temporal protocol's split at `cutoff` and its test targets: the later events of users with training
    events, without the event types that are not relevant (NOT_RELEVANT_EVENTS). DataError when none remain."""
    split = temporal(data, cutoff)
    known = np.zeros(data.n_users, dtype=bool)
    known[split.train.user] = True
    negative = np.isin(split.test.event_type, [t.code for t in NOT_RELEVANT_EVENTS])
    test = split.test.subset(known[split.test.user] & ~negative)
    if len(test) == 0:
        raise DataError(f"temporal split at {cutoff}: no later events of users with training events")
    return split, test


def score_temporal(model: Recommender, data: Interactions, cfg: EvalConfig, *,
                   progress: bool = False) -> EvalResult:
    """An already fitted model (e.g. a stored one seen through evaluation.stored.Reindexed) scored on the
    temporal protocol's holdout at `cfg.cutoff`: the same users, targets and exclusions `evaluate_temporal`
    evaluates a fresh fit on, through the same ranking path. Nothing is fitted here."""
    if cfg.cutoff is None:
        raise ConfigError("protocol 'temporal' needs a cut-off (--cutoff DATE)")
    split, test = temporal_holdout(data, cfg.cutoff)
    task = make_task(split.train, test, exclude_seen=cfg.exclude_seen)
    notes = [_temporal_note(cfg.cutoff), "a fitted model scored as it is (not refitted on the training part)"]
    return _ranking_result(model, task, split.train, cfg, notes, progress)


def _temporal_note(cutoff: int | float | str) -> str:
    return (f"temporal: train before {cutoff} (unix {to_timestamp(cutoff)}), test = later events of "
            "users with training events; relevant = their distinct later items (events other than "
            + ", ".join(t.value for t in NOT_RELEVANT_EVENTS) + ")")


def ranking_validation(history: Interactions, targets: Interactions, cfg: EvalConfig) -> RankingValidation:
    """Next-item validation: one query per target event from the user's history, seen items excluded."""
    order = np.argsort(targets.user, kind="stable")
    users, items = targets.user[order], targets.item[order]
    if len(np.unique(users)) != len(users):
        raise DataError("validation targets: more than one target event for a user")
    task = make_task(history, targets.subset(order), exclude_seen=cfg.exclude_seen)
    return RankingValidation(queries=task.queries, targets=items.astype(np.int64), exclude=task.exclude,
                             k=cfg.valid_k, batch_size=cfg.batch_size)


def _ranking_result(model: Recommender, task: RankingTask, train: Interactions, cfg: EvalConfig,
                    notes: list[str], progress: bool) -> EvalResult:
    t0 = time.perf_counter()
    stats = ItemStats.from_train(train)
    outcome = evaluate_ranking(model, task, cfg.ks, stats, batch_size=cfg.batch_size, progress=progress)
    eval_seconds = time.perf_counter() - t0
    notes = [*notes, "full ranking over all items; " + (
        "seen items excluded (strict), relevant items never excluded" if cfg.exclude_seen else "seen items kept"),
        *stats.notes]
    if outcome.n_unscorable:
        notes.append(f"{outcome.n_unscorable} users could not be scored by the model and count as misses")
    users = model.users if model.users is not None else train.users
    return EvalResult(
        protocol=cfg.protocol, metrics=outcome.metrics, n_users_evaluated=len(task),
        fit_seconds=model.fit_seconds, eval_seconds=eval_seconds,
        unit_keys=users.externals(task.users), per_user=outcome.per_user,
        training_log=list(model.training_log), notes=notes, model=model,
    )


def evaluate_cdr_cold(domains: Mapping[str, Any] | None, catalog: ItemCatalog | None, make_model: MakeModel,
                      cfg: EvalConfig, *, progress: bool = False) -> EvalResult:
    """The cdr-cold protocol (see evaluation/cdr.py): fit once, rank all target-domain items for cold users."""
    if not domains:
        raise DataError("protocol 'cdr-cold' needs a dataset with domains (e.g. cdrib:DIR)")
    x, y = cdr.parse_target(cfg.target, domains)
    tx, sy = domains[x], domains[y]
    evaluated = tx.test if cfg.split == "test" else tx.valid
    if len(evaluated) == 0:
        raise DataError(f"cdr-cold: domain {x!r} has no {cfg.split} events")
    in_x = cdr.domain_items(tx.train.n_items, tx.train, tx.valid, tx.test)
    joint = cfg.training == "joint"
    train, source = (tx.train.concat(sy.train), sy.train) if joint else (tx.train, None)
    task = cdr.cold_task(source, evaluated, tx.train, in_x, cfg.exclude_seen)
    validation = None
    if cfg.split == "test" and joint and len(tx.valid):  # target-only: the model knows nothing of them
        valid_task = cdr.cold_task(source, tx.valid, tx.train, in_x, cfg.exclude_seen)
        validation = cdr.pair_validation(valid_task, cfg.valid_k, cfg.batch_size)
    model = make_model().fit(*training_data(make_model, train, catalog), validation=validation)
    t0 = time.perf_counter()
    stats = ItemStats.from_train(train)
    outcome = evaluate_ranking(model, task, cfg.ks, stats, batch_size=cfg.batch_size, progress=progress,
                               fallback=Popular().fit(tx.train))
    metrics = dict(outcome.metrics)
    metrics.update(cdr.pair_hit_rates(outcome.per_user, np.diff(task.relevant.indptr).astype(np.float64), cfg.ks))
    for k in cfg.ks:
        metrics[f"Coverage@{k}"] = M.catalog_coverage(outcome.topk, int(in_x.sum()), k)
    notes = cdr.cdr_notes(x, y, cfg.split, cfg.training, len(task), int(in_x.sum()), outcome.n_unscorable,
                          cdr.count_empty(task.queries))
    users = model.users if model.users is not None else train.users
    return EvalResult(
        protocol=cfg.protocol, metrics=metrics, n_users_evaluated=len(task), fit_seconds=model.fit_seconds,
        eval_seconds=time.perf_counter() - t0, unit_keys=users.externals(task.users), per_user=outcome.per_user,
        training_log=list(model.training_log), notes=[*notes, *stats.notes], model=model,
    )


# ---------------------------------------------------------------------------------- ratings
def evaluate_ratings(folds: Sequence[FoldData], catalog: ItemCatalog | None, make_model: MakeModel,
                     cfg: EvalConfig, *, progress: bool = False) -> EvalResult:
    """Fit a fresh model per fold and measure RMSE/MAE of `model.predict` on the fold's test ratings."""
    rng = np.random.default_rng(cfg.seed)
    per_fold: list[dict[str, Any]] = []
    keys: list[str] = []
    parts: list[dict[str, np.ndarray]] = []
    fit_total = eval_total = 0.0
    model: Recommender | None = None
    for fold in folds:
        train, validation = _rating_train(fold, cfg.valid_fraction, rng)
        model = make_model()
        predict = getattr(model, "predict", None)
        if not callable(predict):
            raise ConfigError(f"model {model.name!r} does not predict ratings; use protocol loo or temporal")
        model.fit(*training_data(make_model, train, catalog), validation=validation)
        t0 = time.perf_counter()
        se, ae = M.rating_errors(predict(fold.test.user, fold.test.item), _ratings(fold.test, fold.name, "test"))
        eval_s = time.perf_counter() - t0
        fit_total, eval_total = fit_total + model.fit_seconds, eval_total + eval_s
        per_fold.append({"fold": fold.name, "RMSE": M.rmse(se), "MAE": M.mae(ae), "n_ratings": len(se),
                         "fit_seconds": model.fit_seconds, "eval_seconds": eval_s})
        users, unit = _per_user_errors(fold.test.user, se, ae)
        keys.extend(f"{fold.name}:{u}" for u in fold.test.users.externals(users))
        parts.append(unit)
    if model is None:
        raise DataError("rating evaluation: no folds")
    per_user = {name: np.concatenate([p[name] for p in parts]) for name in ("SE", "AE", "n")}
    metrics = {"RMSE": float(np.mean([f["RMSE"] for f in per_fold])),
               "MAE": float(np.mean([f["MAE"] for f in per_fold]))}
    n_users = len({k.split(":", 1)[1] for k in keys})
    notes = ["rating prediction: RMSE/MAE per fold; metrics are the mean over folds",
             f"validation: {cfg.valid_fraction:.0%} of each training fold" if cfg.valid_fraction else
             "no validation split: fit on each whole training fold"]
    return EvalResult(protocol=cfg.protocol, metrics=metrics, n_users_evaluated=n_users, fit_seconds=fit_total,
                      eval_seconds=eval_total, unit_keys=keys, per_user=per_user, per_fold=per_fold,
                      training_log=list(model.training_log), notes=notes, model=model)


def kfold_folds(data: Interactions, cfg: EvalConfig) -> list[FoldData]:
    splits = kfold(data, cfg.folds, np.random.default_rng(cfg.seed))
    return [FoldData(str(i + 1), s.train, s.test) for i, s in enumerate(splits)]


def _ratings(data: Interactions, fold: str, part: str) -> np.ndarray:
    bad = np.flatnonzero(~np.isfinite(data.value))
    if len(bad):
        u, i = data.users.external(int(data.user[bad[0]])), data.items.external(int(data.item[bad[0]]))
        raise DataError(f"fold {fold} {part}: event (user {u!r}, item {i!r}) has no rating value; "
                        "rating protocols need explicit ratings")
    return data.value.astype(np.float64)


def _rating_train(fold: FoldData, fraction: float,
                  rng: np.random.Generator) -> tuple[Interactions, RatingValidation | None]:
    _ratings(fold.train, fold.name, "train")
    if fraction <= 0:
        return fold.train, None
    held = rng.random(len(fold.train)) < fraction
    valid = fold.train.subset(held)
    return fold.train.subset(~held), RatingValidation(valid.user, valid.item, valid.value.astype(np.float64))


def _per_user_errors(users: np.ndarray, se: np.ndarray, ae: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    if len(users) == 0:
        raise DataError("rating evaluation: a test fold is empty")
    present = np.unique(users)
    n = np.bincount(users, minlength=present.max() + 1)[present]
    sse = np.bincount(users, weights=se)[present]
    sae = np.bincount(users, weights=ae)[present]
    return present, {"SE": sse, "AE": sae, "n": n.astype(np.float64)}


# ---------------------------------------------------------------------------------- dispatch
def run_protocol(interactions: Interactions, catalog: ItemCatalog | None, make_model: MakeModel,
                 cfg: EvalConfig, *, folds: Sequence[FoldData] | None = None,
                 domains: Mapping[str, Any] | None = None, progress: bool = False) -> EvalResult:
    """Run `cfg.protocol`; `folds` are required for official-folds (e.g. MovieLens u1..u5), `domains`
    (name -> DomainSplit, e.g. CDRIB's) for cdr-cold."""
    if cfg.protocol == "cdr-cold":
        return evaluate_cdr_cold(domains, catalog, make_model, cfg, progress=progress)
    if cfg.protocol == "loo":
        return evaluate_loo(interactions, catalog, make_model, cfg, progress=progress)
    if cfg.protocol == "temporal":
        return evaluate_temporal(interactions, catalog, make_model, cfg, progress=progress)
    if cfg.protocol == "kfold":
        return evaluate_ratings(kfold_folds(interactions, cfg), catalog, make_model, cfg, progress=progress)
    if not folds:
        raise DataError("protocol 'official-folds' needs a dataset with official folds (e.g. movielens-100k)")
    return evaluate_ratings(folds, catalog, make_model, cfg, progress=progress)
