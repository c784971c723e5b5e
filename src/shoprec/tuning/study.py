"""The Optuna loop: samplers, pruners, storage on the shoprec database, resumable studies, best params.

- Storage: Optuna's RDBStorage on the same SQLAlchemy URL as shoprec's data. The shoprec schema is
  migrated first so that the database's alembic version table stays shoprec's; Optuna's tables are
  created next to it and its own schema check (which reads that version table) is skipped. A URL of
  None keeps the study in memory.
- grid: every point of the space is enqueued once (Optuna's `enqueue_trial`); on resume only the points
  without a complete or pruned trial are enqueued again, so a killed run finishes the same grid.
- random / tpe: seeded samplers; `trials` counts the study's finished trials (a resumed study runs the
  rest). Trials left RUNNING by a killed process are marked FAIL when the study is reopened (one worker
  per study).
- Pruning (MedianPruner): after each fold the running CV mean is reported (every model); models that
  train in epochs also report their first fold's validation metric after each evaluation, so a bad
  configuration can stop mid-fit.
- The study's user attributes record model, metric, space, fixed parameters and, after each run, the
  best parameters, so `tuned.best_params(url, platform=..., model=...)` finds them for `train --tuned`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import optuna
from optuna.trial import FrozenTrial, Trial, TrialState

from shoprec.data import ItemCatalog
from shoprec.errors import ConfigError, StorageError
from shoprec.models.base import RankingValidation, get_model_class
from shoprec.models.factory import ModelFactory
from shoprec.preprocess.features import split_params
from shoprec.tuning.cv import CVFold, Metric, cross_validate
from shoprec.tuning.space import Choice, SearchSpace

SEARCHES = ("grid", "random", "tpe")
DEFAULT_TRIALS = 20
EPOCH_STEPS = 100_000  # intermediate steps below this are epoch-level reports, from it on fold-level ones
ATTR = "shoprec"  # study user attribute holding shoprec's record of the study

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TuneConfig:
    search: Literal["grid", "random", "tpe"] = "tpe"
    folds: int = 3
    trials: int | None = None  # grid: at most this many trials in this run; tpe/random: study total
    timeout: float | None = None  # seconds for this run
    metric: str = "NDCG@10"
    seed: int = 0
    prune: bool | None = None  # None: on for random/tpe, off for grid
    batch_size: int = 1024

    def __post_init__(self) -> None:
        if self.search not in SEARCHES:
            raise ConfigError(f"unknown search {self.search!r} (valid: {', '.join(SEARCHES)})")
        if self.trials is not None and self.trials < 1:
            raise ConfigError(f"--trials must be at least 1, got {self.trials}")
        if self.timeout is not None and self.timeout <= 0:
            raise ConfigError(f"--timeout must be positive, got {self.timeout}")

    @property
    def pruning(self) -> bool:
        return self.prune if self.prune is not None else self.search != "grid"


# ------------------------------------------------------------------------------ storage
def open_storage(database_url: str | None) -> optuna.storages.BaseStorage | None:
    """Optuna storage on the shoprec database (migrated first); None (in memory) for a None URL."""
    if database_url is None:
        return None
    from shoprec.storage.engine import create_db, describe_url

    create_db(database_url).dispose()
    try:
        return optuna.storages.RDBStorage(database_url, skip_compatibility_check=True)
    except Exception as exc:  # optuna wraps driver errors in several types
        raise StorageError(f"cannot open the tuning storage at {describe_url(database_url)}: {exc}") from None


def study_record(model: str, space: SearchSpace, metric: Metric, cfg: TuneConfig, fixed: Mapping[str, Any],
                 extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What a study is about: resuming it with a different model, metric, space or folds is refused."""
    return {"model": model, "metric": metric.name, "direction": metric.direction, "search": cfg.search,
            "folds": cfg.folds, "space": space.to_dict(), "fixed_params": dict(fixed), **(extra or {})}


IDENTITY_KEYS = ("model", "metric", "search", "folds", "space", "fixed_params", "platform", "dataset", "protocol")


def open_study(storage: optuna.storages.BaseStorage | None, name: str | None, record: dict[str, Any],
               sampler: optuna.samplers.BaseSampler, pruner: optuna.pruners.BasePruner) -> optuna.Study:
    """Create the study or reopen it (checking it is the same question); stale RUNNING trials become FAIL."""
    study = optuna.create_study(storage=storage, study_name=name, sampler=sampler, pruner=pruner,
                                direction=record["direction"], load_if_exists=True)
    stored = study.user_attrs.get(ATTR)
    if stored is None:
        study.set_user_attr(ATTR, record)
    else:
        for key in IDENTITY_KEYS:
            if _canon(stored.get(key)) != _canon(record.get(key)):
                raise ConfigError(f"study {name!r} exists with {key} = {stored.get(key)!r}, not {record.get(key)!r}; "
                                  "use another --study name")
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study.tell(t.number, state=TrialState.FAIL)
        log.warning("study %s: trial %d was left running by an earlier run; marked failed", name, t.number)
    return study


def _canon(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def make_sampler(cfg: TuneConfig, n_existing: int) -> optuna.samplers.BaseSampler:
    """Seeded sampler; the seed moves on with the study's size so a resumed run does not repeat proposals."""
    seed = cfg.seed + n_existing
    if cfg.search == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=5)
    return optuna.samplers.RandomSampler(seed=seed)  # grid: every trial is enqueued; the sampler is unused


def make_pruner(cfg: TuneConfig) -> optuna.pruners.BasePruner:
    if not cfg.pruning:
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=0)


# ------------------------------------------------------------------------------ trials
def suggest(trial: Trial, space: SearchSpace) -> dict[str, Any]:
    """One trial's parameters: categorical for choices, int/float (optionally log or stepped) for ranges."""
    out: dict[str, Any] = {}
    for p in space.params:
        if isinstance(p, Choice):
            out[p.name] = trial.suggest_categorical(p.name, list(p.values))
        elif p.integer:
            out[p.name] = trial.suggest_int(p.name, int(p.low), int(p.high), step=int(p.step or 1), log=p.log)
        else:
            out[p.name] = trial.suggest_float(p.name, p.low, p.high, step=p.step, log=p.log)
    return out


def _key(params: Mapping[str, Any]) -> str:
    return json.dumps({k: params[k] for k in sorted(params)}, default=str)


def enqueue_grid(study: optuna.Study, space: SearchSpace) -> int:
    """Enqueue every grid point without a complete/pruned/waiting trial; returns the number waiting."""
    done = {_key(t.params) for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))}
    waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    queued = {_key(t.system_attrs.get("fixed_params", {})) for t in waiting}
    grid = space.grid()
    names = list(grid)
    for point in _product(grid, names):
        if _key(point) not in done and _key(point) not in queued:
            study.enqueue_trial(point)
            queued.add(_key(point))
    return len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))


def _product(grid: Mapping[str, Sequence[Any]], names: list[str]) -> Iterator[dict[str, Any]]:
    import itertools

    for values in itertools.product(*(grid[n] for n in names)):
        yield dict(zip(names, values, strict=True))


@dataclass
class PruningValidation(RankingValidation):
    """A RankingValidation that reports each evaluation to an Optuna trial and stops a bad one early."""

    trial: Any = None
    evaluations: int = 0

    def evaluate(self, model: Any) -> dict[str, float]:
        scores = super().evaluate(model)
        self.evaluations += 1
        if self.trial is not None:
            self.trial.report(scores[f"NDCG@{self.k}"], step=self.evaluations)
            if self.trial.should_prune():
                raise optuna.TrialPruned(f"pruned after validation {self.evaluations} of the first fold")
        return scores


def trains_in_epochs(model: str) -> bool:
    return "epochs" in {f.name for f in dataclasses.fields(get_model_class(model).Config)}


def make_objective(model: str, space: SearchSpace, fixed: Mapping[str, Any], folds: Sequence[CVFold],
                   catalog: ItemCatalog | None, metric: Metric, cfg: TuneConfig) -> Callable[[Trial], float]:
    """The Optuna objective: the mean of `metric` over the CV folds for the trial's parameters."""
    seeded = {"seed": cfg.seed} if "seed" in {f.name for f in dataclasses.fields(get_model_class(model).Config)} else {}
    epoch_pruning = cfg.pruning and trains_in_epochs(model)

    def objective(trial: Trial) -> float:
        model_params, features = split_params(suggest(trial, space))
        params = {**seeded, **fixed, **model_params}
        make = ModelFactory(model, params, features=features)  # a bad combination fails here, the parameter named
        values: list[float] = []

        def on_fold(i: int, value: float) -> None:
            values.append(value)
            trial.set_user_attr("cv_values", list(values))
            if cfg.pruning and i + 1 < len(folds):
                trial.report(sum(values) / len(values), step=EPOCH_STEPS + i)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"pruned after fold {i + 1}")

        def wrap(i: int, validation: Any) -> Any:
            if not epoch_pruning or i != 0 or type(validation) is not RankingValidation:
                return validation
            return PruningValidation(**{f.name: getattr(validation, f.name)
                                        for f in dataclasses.fields(RankingValidation)}, trial=trial)

        t0 = time.perf_counter()
        cross_validate(folds, make, catalog, metric, on_fold=on_fold, wrap_validation=wrap, batch_size=cfg.batch_size)
        trial.set_user_attr("seconds", round(time.perf_counter() - t0, 3))
        mean = sum(values) / len(values)
        trial.set_user_attr("cv_std", _std(values))
        return mean

    return objective


def _std(values: Sequence[float]) -> float:
    if len(values) < 2:
        return 0.0
    m = sum(values) / len(values)
    return math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))


# ------------------------------------------------------------------------------ the loop
def run_study(model: str, space: SearchSpace, folds: Sequence[CVFold], catalog: ItemCatalog | None,
              metric: Metric, cfg: TuneConfig, *, fixed: Mapping[str, Any] | None = None,
              storage: optuna.storages.BaseStorage | None = None, study_name: str | None = None,
              extra: Mapping[str, Any] | None = None,
              callback: Callable[[optuna.Study, FrozenTrial], None] | None = None,
              on_plan: Callable[[int], None] | None = None) -> optuna.Study:
    """Run (or resume) the study and record its best parameters; see the module docstring. `on_plan` is told
    how many trials this run will start (grid: the points left, capped by `cfg.trials`; tpe/random: the trials
    the study still lacks), before the first one."""
    fixed = dict(fixed or {})
    if metric.rating != any(f.test is not None for f in folds[:1]):
        raise ConfigError(f"metric {metric.name} does not fit these folds (rating metrics need rating folds)")
    record = study_record(model, space, metric, cfg, fixed, extra)
    n_existing = _existing_trials(storage, study_name)
    study = open_study(storage, study_name, record, make_sampler(cfg, n_existing), make_pruner(cfg))
    n_trials = _trials_to_run(study, space, cfg)
    objective = make_objective(model, space, fixed, folds, catalog, metric, cfg)
    callbacks = [callback] if callback is not None else []
    if on_plan is not None:
        on_plan(n_trials)
    if n_trials:
        study.optimize(objective, n_trials=n_trials, timeout=cfg.timeout, callbacks=callbacks)
    record_best(study, fixed)
    return study


def _existing_trials(storage: optuna.storages.BaseStorage | None, name: str | None) -> int:
    if storage is None or not name:
        return 0
    try:
        return len(optuna.load_study(study_name=name, storage=storage).trials)
    except KeyError:
        return 0


def _trials_to_run(study: optuna.Study, space: SearchSpace, cfg: TuneConfig) -> int:
    if cfg.search == "grid":
        waiting = enqueue_grid(study, space)
        return min(waiting, cfg.trials) if cfg.trials else waiting
    finished = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))
    total = cfg.trials if cfg.trials is not None else (10**9 if cfg.timeout else DEFAULT_TRIALS)
    return max(0, total - finished)


def record_best(study: optuna.Study, fixed: Mapping[str, Any]) -> None:
    """Store the best trial's model parameters (fixed ones included) and feature values on the study."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return
    best = study.best_trial
    model_params, features = split_params(best.params)
    record = dict(study.user_attrs.get(ATTR, {}))
    record.update({"best_params": {**fixed, **model_params}, "best_features": features,
                   "best_value": best.value, "best_trial": best.number, "updated": time.time()})
    study.set_user_attr(ATTR, record)
