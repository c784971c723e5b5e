"""The promotion gate's measurement: a candidate model against the active one on the same time-based holdout.

Gate (`gate`). The holdout is the newest `holdout_fraction` of the platform's events by timestamp (the
temporal protocol of shoprec.evaluation, cut at a whole second). The candidate's side of the comparison is a
shadow fit of its configuration on the events before the cut-off (the stored candidate was fitted on
everything, the holdout included: scoring it would flatter it); the active model is scored as stored, seen
through the evaluated data's id maps (evaluation.stored.Reindexed). Both are scored by the same ranking path
on the same users and targets: full ranking, seen items excluded. When the newest fraction reaches back before
the active model was trained and at least MIN_HOLDOUT_EVENTS events are newer than that model, the cut-off
moves to the active model's training time (a smaller holdout), so neither side has seen it and both were
trained on the same events (unless older events were imported since); otherwise the decision says how many
holdout events the active model may have been trained on (its score is then optimistic: a retrain of the same
configuration on the same events tends to be kept). The candidate is promoted
unless its metric is more than `margin` (relative) below the active model's; with action "experiment" a
passing candidate starts an A/B experiment against the active model instead. No active model: promoted.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from shoprec.errors import DataError
from shoprec.service.errors import RecordError, RecordErrors
from shoprec.service.models import ModelStore
from shoprec.storage import Engine

METRIC_NAMES = {"hr": "HR", "recall": "Recall", "ndcg": "NDCG", "map": "MAP", "precision": "Precision"}
METRIC_RE = re.compile(r"^(hr|recall|ndcg|map|precision)@([1-9][0-9]{0,2})$|^mrr$")
MIN_HOLDOUT_EVENTS = 50  # the cut-off moves to the active model's training time when this many events are newer
CONFIG_ONLY_KEYS = ("features", "transfer", "chosen_on_evaluation")  # stored with a model's config, not model
# parameters (a retrain takes the chosen values from the config itself: the final fit was made with them)


def metric_key(metric: str) -> tuple[str, int]:
    """The evaluation's metric name and cut-off for a policy metric ("ndcg@10" -> ("NDCG@10", 10))."""
    text = metric.strip().lower()
    match = METRIC_RE.match(text)
    if match is None:
        raise RecordErrors([RecordError(None, "metric", "invalid", f"unknown metric {metric!r} (valid: hr@K, "
                                        "recall@K, ndcg@K, map@K, precision@K, mrr)")])
    if text == "mrr":
        return "MRR", 10
    return f"{METRIC_NAMES[match.group(1)]}@{match.group(2)}", int(match.group(2))


def compare_on_holdout(engine: Engine, store: ModelStore, platform: str, candidate: Mapping[str, Any],
                       active: Mapping[str, Any], metric: str, holdout_fraction: float) -> dict[str, Any]:
    """Both models' metrics on the same time-based holdout, and the holdout's facts."""
    from shoprec.evaluation import EvalConfig
    from shoprec.evaluation.protocols import evaluate_temporal, score_temporal
    from shoprec.evaluation.stored import Reindexed
    from shoprec.models.factory import ModelFactory
    from shoprec.preprocess.weights import apply_event_weights
    from shoprec.storage import load_interactions

    raw, catalog = load_interactions(engine, platform)
    data = apply_event_weights(raw, drop_zero=True)
    if len(data) < 2:
        raise DataError(f"platform {platform!r} has too few events for a holdout comparison")
    active_at = float(active.get("created_at") or 0.0)
    cutoff, holdout = holdout_cutoff(data.timestamp, holdout_fraction, active_at)
    _, k = metric_key(metric)
    cfg = EvalConfig(protocol="temporal", cutoff=str(cutoff), ks=tuple(sorted({k, 10})), validation=False)
    params, features = params_of(candidate.get("config"))
    shadow = evaluate_temporal(data, catalog, ModelFactory(str(candidate["name"]), params, features=features), cfg)
    stored = store.load(platform, str(active["model_id"]))  # through the artifact store, hash-verified
    view = Reindexed(stored, data.users, data.items)
    scored = score_temporal(view, data, cfg)
    train_events = int((data.timestamp < cutoff).sum())
    holdout.update({
        "users": shadow.n_users_evaluated, "train_events": train_events,
        "candidate_saw": f"a shadow fit of {candidate['name']} with the candidate's config on the "
                         f"{train_events} events before the cut-off (the stored candidate was fitted on all "
                         "events)" + (" without the transfer data it was trained with"
                                      if (candidate.get("config") or {}).get("transfer") else ""),
        "active_saw": f"the events stored before it was trained ({iso(active_at)}); it knows "
                      f"{view.known_items} of the {data.n_items} items",
        "protocol": "temporal holdout, full ranking, seen items excluded (strict)"})
    return {"candidate": _metrics(shadow.metrics, shadow.n_users_evaluated, shadow.notes),
            "active": _metrics(scored.metrics, scored.n_users_evaluated, scored.notes), "holdout": holdout}


def judge(candidate: float | None, active: float | None, metric: str, margin: float) -> tuple[bool, str]:
    """(passes, why): the candidate passes unless its metric is more than `margin` (relative) below the
    active model's."""
    if candidate is None or not math.isfinite(candidate):
        return False, f"the candidate's {metric} could not be measured"
    if active is None or not math.isfinite(active):
        return True, f"the active model's {metric} could not be measured (candidate {candidate:.4f})"
    floor = active * (1.0 - margin)
    change = f" ({(candidate - active) / active:+.1%})" if active > 0 else ""
    head = f"candidate {metric} {candidate:.4f} vs active {active:.4f}{change}"
    if candidate >= floor:
        return True, f"{head}: not worse than the active model by more than the margin of {margin:.1%}"
    return False, f"{head}: worse than the active model by more than the margin of {margin:.1%}"


def holdout_cutoff(timestamps: np.ndarray, fraction: float, active_at: float) -> tuple[int, dict[str, Any]]:
    """The cut-off (whole unix seconds) of the newest `fraction` of the events, moved to the active model's
    training time when that leaves enough newer events (see the module doc), and the holdout's facts."""
    ts = np.sort(np.asarray(timestamps, dtype=np.float64))
    n = len(ts)
    wanted = min(max(1, round(n * fraction)), n - 1)
    cutoff = math.floor(ts[n - wanted])
    if cutoff <= ts[0]:  # every event at the same second: nothing before the cut-off
        raise DataError("the events span too little time for a time-based holdout (all in the newest second)")
    after_active = math.ceil(active_at) if active_at else None
    facts: dict[str, Any] = {"fraction": fraction}
    if after_active is not None and cutoff < after_active:
        newer = int((ts >= after_active).sum())
        if MIN_HOLDOUT_EVENTS <= newer < n:
            cutoff = after_active
            facts["cutoff_rule"] = (f"moved to the active model's training time: the {newer} events since then "
                                    "(neither model was trained on them)")
        else:
            seen = int(((ts >= cutoff) & (ts < active_at)).sum())
            facts["cutoff_rule"] = (f"the newest {fraction:.0%} of the events; the active model was trained after "
                                    f"the cut-off and may have seen {seen} of the holdout events (its score is "
                                    "optimistic)")
            facts["active_saw_holdout_events"] = seen
    else:
        facts["cutoff_rule"] = f"the newest {fraction:.0%} of the events, all after the active model was trained"
    facts.update({"cutoff": cutoff, "cutoff_iso": iso(cutoff), "events": int((ts >= cutoff).sum())})
    return cutoff, facts


def _metrics(metrics: Mapping[str, float], users: int, notes: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {k: (float(v) if math.isfinite(float(v)) else None) for k, v in metrics.items()}
    out["users_evaluated"] = int(users)
    unscorable = next((n for n in notes if "could not be scored" in n), None)
    if unscorable:
        out["note"] = unscorable
    return out


def params_of(config: Mapping[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(model parameters, feature hooks) from a model's stored config."""
    config = dict(config or {})
    features = dict(config.get("features") or {})
    return {k: v for k, v in config.items() if k not in CONFIG_ONLY_KEYS}, features


def iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(float(ts), dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
