"""Offline evaluation runs: a public dataset loaded from an import format, one model evaluated on it by a
protocol, the result as a JSON document. `shoprec evaluate`, `shoprec tune --data` and the benchmarks
use these; nothing here touches the database.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from shoprec.data import Interactions, ItemCatalog
from shoprec.errors import ConfigError, DataError
from shoprec.evaluation.protocols import EvalConfig, FoldData, run_protocol
from shoprec.models.factory import ModelFactory, Start


def load_dataset(fmt: str, path: str) -> Any:
    """`shoprec.datasets.load(fmt, path)`: a Dataset with interactions, catalog, report and (maybe) folds."""
    from shoprec import datasets

    load = getattr(datasets, "load", None)
    if load is None:
        raise ConfigError("dataset loading (shoprec.datasets.load) is not available in this build")
    return load(fmt, path)


def dataset_folds(dataset: Any) -> list[FoldData] | None:
    """Official folds of a dataset: pairs (train, test) or objects with .train/.test (named by
    `dataset.fold_names`, else u1, u2, ...), or a name -> pair dict."""
    folds = getattr(dataset, "folds", None)
    if not folds:
        return None
    names = list(getattr(dataset, "fold_names", None) or [])
    if len(names) != len(folds):
        names = [f"u{i + 1}" for i in range(len(folds))]
    named: Sequence[tuple[str, Any]] = (
        list(folds.items()) if isinstance(folds, dict) else list(zip(names, folds, strict=True)))
    out = []
    for name, fold in named:
        train, test = (fold.train, fold.test) if hasattr(fold, "train") else fold
        if not isinstance(train, Interactions) or not isinstance(test, Interactions):
            raise DataError(f"dataset fold {name}: expected a pair of Interactions")
        out.append(FoldData(str(name), train, test))
    return out


def data_stats(interactions: Interactions) -> dict[str, int]:
    return {"n_users": interactions.n_users, "n_items": interactions.n_items, "n_events": len(interactions)}


def run_evaluation(dataset: Any, dataset_name: str, model_name: str, params: dict[str, Any],
                   cfg: EvalConfig, *, progress: bool = False,
                   start: Start | None = None) -> tuple[dict[str, Any], Any]:
    """Evaluate one model on a loaded dataset; returns (the JSON document, the fitted model). `start`: sets
    each fresh model up before its fit (e.g. a pre-trained start, shoprec.service.transfer)."""
    from shoprec.evaluation.report import result_to_dict

    make_model = ModelFactory(model_name, params, seed=cfg.seed, start=start)
    interactions: Interactions = dataset.interactions
    catalog: ItemCatalog | None = getattr(dataset, "catalog", None)
    folds = dataset_folds(dataset) if cfg.protocol == "official-folds" else None
    domains = getattr(dataset, "domains", None) if cfg.protocol == "cdr-cold" else None
    result = run_protocol(interactions, catalog, make_model, cfg, folds=folds, domains=domains, progress=progress)
    doc = result_to_dict(result, model_name=model_name, model_config=make_model.config, dataset=dataset_name,
                         eval_config=cfg, data=data_stats(interactions))
    privacy = getattr(result.model, "privacy", None)
    if privacy:  # DP-SGD: what the (last fold's) model spent; every fold's model is trained to the same budget
        doc["privacy"] = privacy
    return doc, result.model
