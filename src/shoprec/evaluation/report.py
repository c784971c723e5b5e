"""Evaluation results as JSON documents: build, write, read, and render them for people.

Document keys: model, config, dataset, protocol, n_users_evaluated, metrics, fit_seconds, eval_seconds,
settings, notes, training_log, data, shoprec_version, per_fold (rating protocols) and per_user, a
compact block `{"keys": [unit ids], "values": {metric: [one value per unit]}}` that `compare` pairs on.
Units are users (external ids) for ranking protocols and "fold:user" for rating protocols, whose
per-unit values are sums of squared / absolute errors (SE, AE) and rating counts (n).
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

import shoprec
from shoprec.errors import DataError
from shoprec.evaluation.protocols import EvalConfig, EvalResult

REQUIRED_KEYS = ("model", "protocol", "metrics", "per_user")


def result_to_dict(result: EvalResult, *, model_name: str, model_config: dict[str, Any], dataset: str,
                   eval_config: EvalConfig, data: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON document of one evaluation run (per-user values rounded to 6 decimals)."""
    doc: dict[str, Any] = {
        "model": model_name,
        "config": model_config,
        "dataset": dataset,
        "protocol": result.protocol,
        "n_users_evaluated": result.n_users_evaluated,
        "metrics": result.metrics,
        "fit_seconds": round(result.fit_seconds, 3),
        "eval_seconds": round(result.eval_seconds, 3),
        "settings": dataclasses.asdict(eval_config),
        "notes": result.notes,
        "training_log": result.training_log,
        "data": data or {},
        "shoprec_version": shoprec.__version__,
    }
    if result.per_fold is not None:
        doc["per_fold"] = result.per_fold
    doc["per_user"] = {
        "keys": list(result.unit_keys),
        "values": {name: np.round(v.astype(np.float64), 6) for name, v in result.per_user.items()},
    }
    return clean_json(doc)


def summary(doc: dict[str, Any]) -> dict[str, Any]:
    """The document without the bulky per-user block (what `evaluate` prints on stdout)."""
    return {k: v for k, v in doc.items() if k != "per_user"}


def clean_json(obj: Any) -> Any:
    """Plain JSON values: numpy -> Python, tuples -> lists, NaN/inf -> None."""
    if isinstance(obj, dict):
        return {str(k): clean_json(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [clean_json(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [clean_json(v) for v in obj.tolist()]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_json(doc: dict[str, Any], path: str | Path) -> Path:
    path = Path(path)
    if path.parent != Path():
        path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, separators=(",", ":"), allow_nan=False) + "\n", encoding="utf-8")
    return path


def read_json(path: str | Path) -> dict[str, Any]:
    """Read an evaluation document, checking that it has what `compare` needs."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise DataError(f"{path}: not a shoprec evaluation result (expected a JSON object)")
    missing = [k for k in REQUIRED_KEYS if k not in doc]
    if missing:
        raise DataError(f"{path}: not a shoprec evaluation result (missing key {missing[0]!r}; "
                        "write it with `shoprec evaluate --json`)")
    per_user = doc["per_user"]
    if not isinstance(per_user, dict) or "keys" not in per_user or "values" not in per_user:
        raise DataError(f"{path}: field 'per_user' must hold 'keys' and 'values'")
    n = len(per_user["keys"])
    for name, values in per_user["values"].items():
        if len(values) != n:
            raise DataError(f"{path}: per_user value {name!r} has {len(values)} entries for {n} keys")
    return doc


def render_metrics(doc: dict[str, Any]) -> str:
    """A short plain-text report for people (stderr)."""
    lines = [f"{doc['model']} on {doc.get('dataset', '?')} ({doc['protocol']}): "
             f"{doc.get('n_users_evaluated', 0)} users, fit {doc.get('fit_seconds', 0):.2f} s, "
             f"eval {doc.get('eval_seconds', 0):.2f} s"]
    for name, value in doc["metrics"].items():
        lines.append(f"  {name:<18} {_fmt(value)}")
    for fold in doc.get("per_fold") or []:
        lines.append(f"  fold {fold['fold']:<8} RMSE {_fmt(fold['RMSE'])}  MAE {_fmt(fold['MAE'])}")
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    return "n/a" if value is None else f"{value:.4f}"
