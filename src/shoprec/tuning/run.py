"""One tuning run end to end: split off the test part, cross-validate on the training part, test once.

Protocols (the evaluation harness' names):
- `loo`: the test part is each user's last event; tuning sees the rest (rolling last-item folds).
- `temporal`: the test part is everything from the cut-off on; tuning sees the events before it.
- `kfold`: rating data; the test part is fold 1 of the harness' seeded k-fold split (`test_folds` folds).
- `official-folds`: rating data with official folds (MovieLens u1..u5); the test part is one named fold's test
  file and tuning sees only that fold's training file.
The chosen configuration is then evaluated once by the harness (`run_protocol` on the same split), with
the tuned feature hooks applied to whatever it trains on; its metrics are reported under "test".
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from shoprec.data import Interactions, ItemCatalog
from shoprec.data.splits import leave_one_out, temporal
from shoprec.errors import ConfigError, DataError
from shoprec.evaluation.protocols import (
    PROTOCOLS,
    RATING_PROTOCOLS,
    EvalConfig,
    FoldData,
    evaluate_ratings,
    kfold_folds,
    run_protocol,
)
from shoprec.models.base import get_model_class
from shoprec.models.factory import ModelFactory
from shoprec.preprocess.features import split_params
from shoprec.tuning.cv import CVFold, Metric, parse_metric, ranking_folds, rating_folds
from shoprec.tuning.space import SearchSpace
from shoprec.tuning.study import TuneConfig, run_study
from shoprec.tuning.tuned import readable_study_name


@dataclass
class TuneData:
    """What a tuning run works on: the data, its catalog, and (rating data) the official folds."""

    interactions: Interactions
    catalog: ItemCatalog | None = None
    folds: list[FoldData] | None = None
    name: str = ""


@dataclass
class Setup:
    train_part: Interactions
    test_fold: FoldData | None  # rating protocols: the held-out fold
    notes: list[str]


def default_protocol(metric: Metric, data: TuneData) -> str:
    if metric.rating:
        return "official-folds" if data.folds else "kfold"
    return "loo"


def split_for_tuning(data: TuneData, eval_cfg: EvalConfig, test_fold: str | None) -> Setup:
    """The training part tuning may see, and the held-out test fold for rating protocols."""
    inter = data.interactions
    if eval_cfg.protocol == "loo":
        return Setup(leave_one_out(inter, validation=False).train, None,
                     ["test part: each user's last event (harness leave-one-out); CV on the rest"])
    if eval_cfg.protocol == "temporal":
        if eval_cfg.cutoff is None:
            raise ConfigError("protocol 'temporal' needs a cut-off (--cutoff DATE)")
        return Setup(temporal(inter, eval_cfg.cutoff).train, None,
                     [f"test part: events from {eval_cfg.cutoff} on (harness temporal); CV on earlier events"])
    folds = kfold_folds(inter, eval_cfg) if eval_cfg.protocol == "kfold" else (data.folds or [])
    if not folds:
        raise DataError("protocol 'official-folds' needs a dataset with official folds (e.g. movielens-100k)")
    chosen = folds[0] if test_fold is None else next((f for f in folds if f.name == test_fold), None)
    if chosen is None:
        raise ConfigError(f"unknown test fold {test_fold!r} (available: {', '.join(f.name for f in folds)})")
    return Setup(chosen.train, chosen, [f"test part: fold {chosen.name}'s test ratings; CV on its training ratings"])


def cv_folds(setup: Setup, metric: Metric, cfg: TuneConfig, exclude_seen: bool) -> list[CVFold]:
    if metric.rating:
        return rating_folds(setup.train_part, cfg.folds, np.random.default_rng(cfg.seed))
    return ranking_folds(setup.train_part, cfg.folds, exclude_seen=exclude_seen, batch_size=cfg.batch_size)


def test_best(data: TuneData, setup: Setup, model: str, params: dict[str, Any], features: dict[str, Any],
              eval_cfg: EvalConfig) -> dict[str, Any]:
    """Fit the chosen configuration by the harness and measure it once on the test part."""
    make = ModelFactory(model, params, features=features)  # the protocol fits on the prepared data
    if setup.test_fold is not None:
        result = evaluate_ratings([setup.test_fold], data.catalog, make, eval_cfg)
    else:
        result = run_protocol(data.interactions, data.catalog, make, eval_cfg)
    return {"protocol": eval_cfg.protocol, **({"fold": setup.test_fold.name} if setup.test_fold else {}),
            "metrics": result.metrics, "n_users": result.n_users_evaluated,
            "fit_seconds": round(result.fit_seconds, 3), "eval_seconds": round(result.eval_seconds, 3)}


def trial_rows(study: optuna.Study) -> list[dict[str, Any]]:
    rows = []
    for t in study.trials:
        if t.state not in (TrialState.COMPLETE, TrialState.PRUNED):
            continue
        values = list(t.user_attrs.get("cv_values", []))
        mean = t.value if t.value is not None else (float(np.mean(values)) if values else None)
        rows.append({"number": t.number, "state": t.state.name.lower(), "params": t.params, "cv_mean": mean,
                     "cv_std": t.user_attrs.get("cv_std", float(np.std(values, ddof=1)) if len(values) > 1 else 0.0),
                     "cv_values": values, "seconds": t.user_attrs.get("seconds")})
    return rows


def tune(data: TuneData, model: str, space: SearchSpace, cfg: TuneConfig, *, eval_cfg: EvalConfig | None = None,
         fixed: Mapping[str, Any] | None = None, storage: Any = None, study_name: str | None = None,
         extra: Mapping[str, Any] | None = None, test_fold: str | None = None, run_test: bool = True,
         callback: Callable[[optuna.Study, FrozenTrial], None] | None = None,
         on_plan: Callable[[int], None] | None = None) -> tuple[dict[str, Any], optuna.Study]:
    """Cross-validated search on the training part, then one test of the best configuration.

    Returns the result document (see `shoprec tune`) and the Optuna study. An in-memory study without a name
    is named `readable_study_name(model, data.name)`; `on_plan`: see `run_study`."""
    if study_name is None and storage is None:
        study_name = readable_study_name(model, data.name)
    metric = parse_metric(cfg.metric)
    if eval_cfg is None:
        eval_cfg = EvalConfig(protocol=default_protocol(metric, data), seed=cfg.seed)
    _check_protocol(model, metric, eval_cfg)
    if metric.k and metric.k not in eval_cfg.ks:
        eval_cfg = dataclasses.replace(eval_cfg, ks=tuple(sorted({*eval_cfg.ks, metric.k})))
    fixed = dict(fixed or {})
    if "seed" in _fields(model) and "seed" not in fixed:
        fixed["seed"] = cfg.seed
    setup = split_for_tuning(data, eval_cfg, test_fold)
    folds = cv_folds(setup, metric, cfg, eval_cfg.exclude_seen)
    t0 = time.perf_counter()
    study = run_study(model, space, folds, data.catalog, metric, cfg, fixed=fixed, storage=storage,
                      study_name=study_name, extra={"protocol": eval_cfg.protocol, **(extra or {})}, callback=callback,
                      on_plan=on_plan)
    seconds = time.perf_counter() - t0
    doc = _document(study, model, cfg, metric, space, data, setup, seconds)
    if run_test and doc["best"] is not None:
        params, features = split_params(study.best_trial.params)
        doc["test"] = test_best(data, setup, model, {**fixed, **params}, features, eval_cfg)
    return doc, study


def _document(study: optuna.Study, model: str, cfg: TuneConfig, metric: Metric, space: SearchSpace,
              data: TuneData, setup: Setup, seconds: float) -> dict[str, Any]:
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    best = None
    if complete:
        bt = study.best_trial
        best = {"number": bt.number, "params": bt.params, "cv_mean": bt.value,
                "cv_std": bt.user_attrs.get("cv_std"), "cv_values": bt.user_attrs.get("cv_values")}
    return {"model": model, "search": cfg.search, "folds": cfg.folds, "metric": metric.name,
            "direction": metric.direction, "study": study.study_name, "dataset": data.name,
            "space": space.to_dict(), "trials": trial_rows(study), "best": best, "test": None,
            "seconds": round(seconds, 3), "notes": [*setup.notes, _cv_note(metric)]}


def _cv_note(metric: Metric) -> str:
    if metric.rating:
        return "CV: k-fold of the training part's ratings"
    return ("CV: rolling last-item folds of the training part (fold j: target = each user's (j+1)-th last "
            "training event, trained on earlier events)")


def _fields(model: str) -> set[str]:
    return {f.name for f in dataclasses.fields(get_model_class(model).Config)}


def _check_protocol(model: str, metric: Metric, eval_cfg: EvalConfig) -> None:
    if eval_cfg.protocol not in PROTOCOLS:
        raise ConfigError(f"unknown protocol {eval_cfg.protocol!r}")
    if eval_cfg.protocol == "cdr-cold":
        raise ConfigError("shoprec tune does not run protocol 'cdr-cold' (its CV folds are single-domain); "
                          "compare configs on the validation users: shoprec evaluate --protocol cdr-cold --split valid")
    rating_protocol = eval_cfg.protocol in RATING_PROTOCOLS
    if metric.rating != rating_protocol:
        raise ConfigError(f"metric {metric.name} does not go with protocol {eval_cfg.protocol!r} "
                          "(rating metrics RMSE/MAE need kfold or official-folds; ranking metrics loo or temporal)")
    if metric.rating and not callable(getattr(get_model_class(model), "predict", None)):
        raise ConfigError(f"model {model!r} does not predict ratings; optimise a ranking metric")
