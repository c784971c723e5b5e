"""Tuned parameters for `shoprec train --tuned`: a study's stored record, found by name or platform + model.

`tune` stores, on each study (Optuna user attribute "shoprec"), what it was about (model, metric, space,
platform, dataset) and, after each run, the best model parameters and feature-hook values.
"""

from __future__ import annotations

import re
import time
from typing import Any

import optuna

from shoprec.errors import ConfigError
from shoprec.tuning.study import ATTR, open_storage


def readable_study_name(model: str, dataset: str, when: float | None = None) -> str:
    """A name for a study that was not given one: `<model>-<dataset>-<UTC date and time>`, e.g.
    `ease-movielens-100k-ml-100k-20240101-120000` (the dataset's FORMAT:PATH reduced to the format and the
    file or directory name), instead of Optuna's `no-name-<uuid>`."""
    fmt, _, path = dataset.partition(":")
    base = re.split(r"[\\/]", path.rstrip("/\\"))[-1] if path else ""
    parts = [model, fmt, base.split(".")[0]] if base else [model, fmt]
    slug = "-".join(re.sub(r"[^A-Za-z0-9_]+", "-", p).strip("-") for p in parts if p)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(time.time() if when is None else when))
    return f"{slug}-{stamp}"


def platform_study_name(platform: str, model: str) -> str:
    """Default study name for a platform's data: `--tuned` finds it by this name first."""
    return f"platform:{platform}:{model}"


def tuned_record(database_url: str, *, study_name: str | None = None, platform: str | None = None,
                 model: str | None = None) -> dict[str, Any]:
    """The stored record of a tuned study (model, metric, best_params, best_features, best_value, ...).

    By `study_name`, or by `platform` + `model` (the default study name, else the most recently updated
    study recorded for them). ConfigError when nothing tuned is found."""
    storage = open_storage(database_url)
    summaries = optuna.study.get_all_study_names(storage=storage)  # type: ignore[arg-type]
    if study_name is None:
        if platform is None or model is None:
            raise ConfigError("give a study name, or a platform and a model")
        candidates = [study_name_ for study_name_ in summaries if study_name_ == platform_study_name(platform, model)]
        if not candidates:
            candidates = [n for n in summaries if _matches(storage, n, platform, model)]
    else:
        candidates = [study_name] if study_name in summaries else []
    records = [_record(storage, n) for n in candidates]
    records = [r for r in records if r.get("best_params") is not None]
    if not records:
        what = f"study {study_name!r}" if study_name else f"platform {platform!r}, model {model!r}"
        raise ConfigError(f"no tuned parameters found for {what}; run `shoprec tune` first")
    return max(records, key=lambda r: r.get("updated", 0.0))


def _record(storage: Any, name: str) -> dict[str, Any]:
    study = optuna.load_study(study_name=name, storage=storage)
    return {"study": name, **study.user_attrs.get(ATTR, {})}


def _matches(storage: Any, name: str, platform: str, model: str) -> bool:
    record = _record(storage, name)
    return record.get("platform") == platform and record.get("model") == model


def best_params(database_url: str, study_name: str | None = None, *, platform: str | None = None,
                model: str | None = None) -> dict[str, Any]:
    """Model parameters of the best configuration (ready for `create_model(model, params)`).

    Feature-hook values the study tuned (event weights, recency, text) are in `tuned_record(...)["best_features"]`
    (apply them with `shoprec.preprocess.features.apply_features`)."""
    return dict(tuned_record(database_url, study_name=study_name, platform=platform, model=model)["best_params"])
