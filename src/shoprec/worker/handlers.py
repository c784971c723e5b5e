"""The jobs a worker knows how to run: kind -> handler(services, platform, params, progress) -> result.

A handler runs in the job's child process (so it is a module-level function: spawn pickles it by name) with
services of its own; `progress(text)` reports a line the job's row shows while it runs. What it returns is the
job's `result` (JSON); a ShoprecError it raises fails the job with its message.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from shoprec.service import Services

Progress = Callable[[str], None]


def train(services: Services, platform: str, params: dict[str, Any], progress: Progress) -> dict[str, Any]:
    """Train, evaluate and register a model ({model, params, activate}). With activate it goes through the
    promotion gate (shoprec.service.retraining): the first model of a platform is activated; a later one only
    when it is not worse than the active model on the time-based holdout by more than the policy's margin (else
    it stays inactive, the decision says why). The servers pick a new active model up by polling."""
    activate = bool(params.get("activate"))
    first = services.store.active(platform) is None
    model_params = with_deployment_limits(params["model"], params.get("params") or {}, services.settings.limits)
    trained = services.store.train(platform, params["model"], model_params, activate=activate and first,
                                   progress=progress)
    answer = trained.to_json()
    answer.pop("path", None)  # where the artifact lies is the deployment's business
    if activate and not first:
        decision = services.retraining.gate(platform, trained.model_id, cause="train")
        answer["active"] = decision.decision == "promote"
        answer["decision"] = decision.to_json()
    return answer


# the deployment's [limits] a job's model gets as TrainOptions where it takes them and the job set none: the
# training time, and caps on what "auto" sizes resolve to (numbers given are checked against the same limits)
LIMIT_OPTIONS = {"max_seconds": ("max_seconds", float), "epochs": ("max_epochs", int), "max_len": ("max_context", int)}


def with_deployment_limits(model: str, params: dict[str, Any], limits: Mapping[str, float]) -> dict[str, Any]:
    """`params` with the deployment's caps (LIMIT_OPTIONS) as training options of models that take them, where
    the job set none: a job never trains longer than the deployment allows, nor past its epochs and context
    through "auto"."""
    from shoprec.models.base import get_model_class

    options = getattr(get_model_class(model), "Options", None)
    if options is None:
        return params
    fields = {f.name for f in dataclasses.fields(options)}
    out = dict(params)
    for limit, (option, kind) in LIMIT_OPTIONS.items():
        cap = limits.get(limit)
        if cap and option in fields and not params.get(option):
            out[option] = kind(cap)
    return out


def retrain(services: Services, platform: str, params: dict[str, Any], progress: Progress) -> dict[str, Any]:
    """Retrain the platform's model and pass it through the promotion gate (a "retrain" job, queued by the
    retraining schedule or POST /v1/retraining/run); the result is the recorded decision."""
    return services.retraining.run_job(platform, params, progress)


def export(services: Services, platform: str, params: dict[str, Any], progress: Progress) -> dict[str, Any]:
    """Batch recommendations ({k, format, name, users?}; shoprec.service.export): every (or the listed) user's
    top-k written to <model_dir>/exports/<platform>/<name>.<format>; a retried job continues its parts."""
    import time

    from shoprec.service.export import export_path, export_recommendations

    last = [0.0]

    def report(done: int, total: int) -> None:
        if time.monotonic() - last[0] >= 2.0 or done == total:  # a progress line at most every 2 s
            last[0] = time.monotonic()
            progress(f"exported {done:,} of {total:,} users")

    out = export_path(services, platform, params)
    result = export_recommendations(services, platform, params["k"], out, users=params.get("users"), progress=report)
    return result.to_json()


def pretrain(services: Services, platform: str, params: dict[str, Any], progress: Progress) -> dict[str, Any]:
    """Pre-train one transformer on the platform and the job's other platforms ({platforms, params, seed}; each
    pair linked by both sides' consent) and register it as an inactive model of the platform
    (shoprec.service.pretrain.run_pretrain_job); the result names it."""
    from shoprec.service.pretrain import run_pretrain_job

    model_params = with_deployment_limits("transformer", params.get("params") or {}, services.settings.limits)
    return run_pretrain_job(services.engine, services.store, platform, {**params, "params": model_params}, progress)


def retraining_schedule(services: Services) -> None:
    """The worker's periodic task: queue a retrain job for every platform whose policy says it is due."""
    services.retraining.schedule()
