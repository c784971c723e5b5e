"""Continuous retraining: a per-platform policy, the schedule that fires it, and the promotion gate.

    retraining = RetrainService(engine, platforms, store, experiments, settings.retraining, enqueue=..., busy=...)
    retraining.set_policy("shop", every_hours=24, after_events=50_000, margin=0.02, action="promote")
    for platform in retraining.due():            # a worker's scheduler, every few seconds
        enqueue(platform, "retrain", {})          # ... whose job body is retraining.retrain(platform)
    retraining.history("shop", 20)               # model, time, metrics of both, decision, why

Policy. The deployment default is [retraining] in the settings (off: no every_hours, no after_events); a
platform may store its own (`set_policy`): its triggers as given (None: that trigger is off) and, where it
leaves them None, the default margin, metric, holdout fraction and action. `model` / `params`: what to train
(default: the active model's name and stored config, feature hooks included).

Schedule (`due`). A platform is due when the time since its newest model (or since a failed attempt) reaches
every_hours, or when the events stored since its newest model reach after_events. Events are counted by the
events table's primary key above a mark (the highest event id when that model was trained), stopping at
after_events rows: a check costs at most the events it counts. For a model trained outside the schedule
(`shoprec train`, the API) the mark is taken when the schedule first sees that model, and when a policy is
first looked at: events before that are not counted. A platform fires once per condition: `due` claims it
(triggered_at, one conditional UPDATE, so one of several schedulers wins) and it stays claimed until `retrain`
records its decision (or `busy(platform)` says no retrain job is queued or running, `TRIGGER_GRACE_S` after the
claim; without `busy`, until `trigger_timeout_s`). A failed retrain records a "failed" decision and moves the
mark too, so the next attempt needs a new condition rather than looping.

Gate (`gate`): the candidate against the active model on a time-based holdout, measured by
shoprec.service.promotion; promoted, kept inactive, or put into an A/B experiment (the policy's action).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from shoprec.errors import DataError, ShoprecError
from shoprec.service.errors import NotFound, RecordError, RecordErrors
from shoprec.service.experiments import ExperimentService
from shoprec.service.models import ModelStore
from shoprec.service.platform import PlatformService
from shoprec.service.promotion import compare_on_holdout, judge, metric_key, params_of
from shoprec.settings import RetrainSettings
from shoprec.storage import Engine, list_platforms, storage_errors
from shoprec.storage.retraining import RetrainRepo, platforms_with_policy
from shoprec.storage.tables import MAX_MODEL_NAME_LENGTH

log = logging.getLogger(__name__)
Progress = Callable[[str], None]
Enqueue = Callable[[str, str, dict[str, Any]], Any]  # (platform, job kind, job params) -> the queued job
Busy = Callable[[str], bool]  # platform -> whether a retrain job of it is queued or running

ACTIONS = ("promote", "experiment")
DECISIONS = ("promote", "keep", "experiment", "failed")
TRIGGER_GRACE_S = 60.0  # with `busy`: a claim this old whose job is neither queued nor running may fire again
TRIGGER_TIMEOUT_S = 6 * 3600.0  # without `busy`: a claim is released after this long (its job was lost)
MAX_HISTORY = 1000
MAX_AFTER_EVENTS = 10**12  # beyond any shop's event count, and inside every database's 64-bit integers


def _field(name: str, message: str) -> RecordErrors:
    return RecordErrors([RecordError(None, name, "invalid", message)])


@dataclass(frozen=True, slots=True)
class Policy:
    """A platform's effective retraining policy; `source` is "platform" (its own) or "default" (the settings)."""

    every_hours: float | None
    after_events: int | None
    margin: float
    metric: str
    holdout_fraction: float
    action: str
    model: str | None
    params: dict[str, Any] | None
    source: str

    @property
    def enabled(self) -> bool:
        return self.every_hours is not None or self.after_events is not None

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "enabled": self.enabled}


@dataclass(frozen=True, slots=True)
class Decision:
    """One gate decision (DecisionOut): promote | keep | experiment | failed, both models' holdout metrics,
    the holdout (cut-off, sizes, what each side was trained on) and why."""

    decision_id: int
    platform: str
    candidate_model_id: str | None
    active_model_id: str | None
    decision: str
    reason: str
    metric: str
    margin: float
    candidate_metrics: dict[str, Any] | None
    active_metrics: dict[str, Any] | None
    holdout: dict[str, Any] | None
    experiment_id: str | None
    cause: str | None
    created_at: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def value(self, side: str) -> float | None:
        """The compared metric of "candidate" or "active" (None when not measured)."""
        metrics = self.candidate_metrics if side == "candidate" else self.active_metrics
        if not metrics:
            return None
        value = metrics.get(metric_key(self.metric)[0])
        return None if value is None else float(value)


def check_policy(*, every_hours: float | None, after_events: int | None, margin: float | None,
                 metric: str | None, holdout_fraction: float | None, action: str | None, model: str | None,
                 params: Mapping[str, Any] | None) -> dict[str, Any]:
    """The policy fields, validated (RecordErrors naming the first bad field)."""

    def number(name: str, value: Any) -> float | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise _field(name, f"{name} must be a finite number, got {value!r}")
        return float(value)

    hours = number("every_hours", every_hours)
    if hours is not None and hours < 0.001:
        raise _field("every_hours", f"every_hours must be at least 0.001 (3.6 s), got {every_hours!r}")
    if after_events is not None and (isinstance(after_events, bool) or not isinstance(after_events, int)
                                     or not 1 <= after_events <= MAX_AFTER_EVENTS):
        raise _field("after_events", f"after_events must be a whole number from 1 to {MAX_AFTER_EVENTS:,}, "
                                     f"got {after_events!r}")
    m = number("margin", margin)
    if m is not None and not 0.0 <= m < 1.0:
        raise _field("margin", f"margin must be in [0, 1) (a relative drop, 0.02 = 2%), got {margin!r}")
    fraction = number("holdout_fraction", holdout_fraction)
    if fraction is not None and not 0.0 < fraction < 1.0:
        raise _field("holdout_fraction", f"holdout_fraction must be in (0, 1), got {holdout_fraction!r}")
    if metric is not None:
        if not isinstance(metric, str):
            raise _field("metric", f"metric must be a string, got {metric!r}")
        metric_key(metric)
        metric = metric.strip().lower()
    if action is not None and action not in ACTIONS:
        raise _field("action", f"action must be one of {', '.join(ACTIONS)}, got {action!r}")
    if params is not None and model is None:
        raise _field("params", "params need a model (give model with params)")
    if params is not None and not isinstance(params, Mapping):
        raise _field("params", f"params must be an object of model parameters, got {params!r}")
    if model is not None:
        if not isinstance(model, str) or not 0 < len(model) <= MAX_MODEL_NAME_LENGTH:
            raise _field("model", f"model must be a model name, got {model!r}")
        from shoprec.models.factory import ModelFactory

        try:
            ModelFactory(model, params)  # an unknown model or parameter fails now
        except ShoprecError as exc:
            raise _field("params" if params and "parameter" in str(exc) else "model", str(exc)) from None
    return {"every_hours": hours, "after_events": after_events, "margin": m, "metric": metric,
            "holdout_fraction": fraction, "action": action, "model": model,
            "params": dict(params) if params is not None else None}


class RetrainService:
    def __init__(self, engine: Engine, platforms: PlatformService, store: ModelStore, experiments: ExperimentService,
                 settings: RetrainSettings, *, enqueue: Enqueue | None = None, busy: Busy | None = None,
                 on_decision: Callable[[Decision], None] | None = None,
                 trigger_timeout_s: float = TRIGGER_TIMEOUT_S, limits: Mapping[str, float] | None = None) -> None:
        """`enqueue(platform, "retrain", params)` queues a retrain job (`schedule`, POST /v1/retraining/run);
        `busy(platform)`: whether one is queued or running (both wired to the job queue); `on_decision(d)`:
        called after each recorded decision (e.g. a metrics counter)."""
        self.engine, self.platforms, self.store, self.experiments = engine, platforms, store, experiments
        self.settings, self.enqueue, self.busy, self.on_decision = settings, enqueue, busy, on_decision
        self.limits = dict(limits or {})  # [limits]: the deployment's caps on training parameters
        self.trigger_timeout_s = trigger_timeout_s
        check_policy(every_hours=settings.every_hours, after_events=settings.after_events, margin=settings.margin,
                     metric=settings.metric, holdout_fraction=settings.holdout_fraction, action=settings.action,
                     model=None, params=None)

    # ---------------------------------------------------------------- policy
    def policy(self, platform: str) -> Policy:
        """The platform's effective policy (its own over the deployment default)."""
        with storage_errors(self.engine, "read a retraining policy"), self.engine.connect() as conn:
            row = RetrainRepo(conn, self.platforms.platform_id(platform)).policy_row()
        return self._effective(row)

    def set_policy(self, platform: str, *, every_hours: float | None, after_events: int | None,
                   margin: float | None = None, action: str | None = None, model: str | None = None,
                   params: Mapping[str, Any] | None = None, metric: str | None = None,
                   holdout_fraction: float | None = None) -> Policy:
        """Store the platform's own policy (every_hours and after_events both None: retraining is off for it;
        margin, action, metric, holdout_fraction None: the deployment default)."""
        values = check_policy(every_hours=every_hours, after_events=after_events, margin=margin, metric=metric,
                              holdout_fraction=holdout_fraction, action=action, model=model, params=params)
        if values["params"]:
            from shoprec.service.jobs import check_limits

            try:
                check_limits(values["params"], self.limits)  # a retrain job must not train above the caps
            except ShoprecError as exc:
                raise _field("params", str(exc)) from None
        self._put_policy(platform, values)
        return self.policy(platform)

    def reset_policy(self, platform: str) -> Policy:
        """Forget the platform's own policy: the deployment default applies again."""
        self._put_policy(platform, None)
        return self.policy(platform)

    def _put_policy(self, platform: str, values: dict[str, Any] | None) -> None:
        platform_id = self.platforms.platform_id(platform)
        now = time.time()
        with storage_errors(self.engine, "store a retraining policy"), self.engine.begin() as conn:
            repo = RetrainRepo(conn, platform_id)
            repo.put_policy(values, now)
            row = repo.policy_row()
            if row is not None and row["event_mark"] is None:  # new events count from when the policy was set
                repo.put_state(now, event_mark=repo.newest_event_id(), model_at=repo.newest_model_at())

    def _effective(self, row: Mapping[str, Any] | None) -> Policy:
        d = self.settings
        if row is None or not row["custom"]:
            return Policy(d.every_hours, d.after_events, d.margin, d.metric.strip().lower(), d.holdout_fraction,
                          d.action, None, None, "default")

        def pick(name: str, default: Any) -> Any:
            return default if row[name] is None else row[name]

        after = row["after_events"]
        return Policy(row["every_hours"], None if after is None else int(after), float(pick("margin", d.margin)),
                      str(pick("metric", d.metric)).strip().lower(), float(pick("holdout_fraction",
                                                                                 d.holdout_fraction)),
                      str(pick("action", d.action)), row["model"], row["params"], "platform")

    # ---------------------------------------------------------------- schedule
    def due(self, now: float | None = None) -> list[str]:
        """Platforms whose policy says retrain now, claimed (each fires once per condition: see the module
        doc); the caller queues a retrain job for each."""
        now = time.time() if now is None else now
        with storage_errors(self.engine, "list platforms"), self.engine.connect() as conn:
            default_on = self.settings.every_hours is not None or self.settings.after_events is not None
            names = list_platforms(conn) if default_on else platforms_with_policy(conn)  # off by default: only
            # platforms with a policy of their own can be due
        fired = []
        for name, platform_id in names.items():
            try:
                if self._check(name, platform_id, now):
                    fired.append(name)
            except ShoprecError as exc:  # one platform's problem must not stop the others' schedule
                log.warning("retraining schedule: platform %s: %s", name, exc)
        return fired

    def _check(self, name: str, platform_id: int, now: float) -> bool:
        with storage_errors(self.engine, "check the retraining schedule"), self.engine.begin() as conn:
            repo = RetrainRepo(conn, platform_id)
            row = repo.policy_row()
            policy = self._effective(row)
            if not policy.enabled:
                return False
            state = dict(row) if row is not None else {}
            newest = repo.newest_model_at()
            if newest is None and policy.model is None:
                return False  # nothing to retrain: no model yet and the policy names none
            mark, mark_at, claimed = state.get("event_mark"), state.get("model_at"), state.get("triggered_at")
            if mark is None or (newest is not None and (mark_at is None or newest > mark_at)):
                # first look, or a model trained outside the schedule: count events from here
                mark, mark_at = repo.newest_event_id(), newest if mark_at is None else max(newest or 0.0, mark_at)
                if claimed is not None and newest is not None and newest >= claimed:
                    claimed = None  # the claim was served by that model
                repo.put_state(now, event_mark=mark, model_at=mark_at, triggered_at=claimed)
            if claimed is not None and not self._released(name, float(claimed), now):
                return False
            if self.busy is not None and self.busy(name):
                return False
            known = [float(v) for v in (newest, mark_at) if v is not None]
            since = max(known) if known else None  # the newest model, or a failed attempt after it
            by_time = policy.every_hours is not None and (since is None or now - since >= policy.every_hours * 3600)
            by_events = (policy.after_events is not None
                         and repo.count_events_after(int(mark), policy.after_events) >= policy.after_events)
            if not (by_time or by_events):
                return False
            won = repo.claim_trigger(now, None if claimed is None else float(claimed))
        if won:
            log.info("retraining schedule: platform %s is due (%s)", name,
                     "time" if by_time else f"{policy.after_events} new events")
        return won

    def _released(self, platform: str, claimed: float, now: float) -> bool:
        """Whether an earlier claim no longer blocks firing (its job is gone)."""
        if self.busy is not None:
            return now - claimed >= TRIGGER_GRACE_S and not self.busy(platform)
        return now - claimed >= self.trigger_timeout_s

    def release(self, platform: str) -> None:
        """Drop the platform's claim (its job could not be queued): it may fire again at the next check."""
        with storage_errors(self.engine, "update the retraining schedule"), self.engine.begin() as conn:
            RetrainRepo(conn, self.platforms.platform_id(platform)).put_state(time.time(), triggered_at=None)

    def schedule(self, now: float | None = None) -> list[str]:
        """One tick of the schedule (a worker calls it every few seconds): queue a retrain job
        (`enqueue(platform, "retrain", {"cause": "schedule"})`) for every platform that is due; returns them.
        A job that cannot be queued (e.g. the platform's queue is full) releases its claim."""
        if self.enqueue is None:
            raise DataError("the retraining schedule needs a job queue (RetrainService.enqueue)")
        queued = []
        for platform in self.due(now):
            try:
                self.enqueue(platform, "retrain", {"cause": "schedule"})
                queued.append(platform)
            except Exception as exc:  # the next check tries again
                log.warning("retraining schedule: platform %s: could not queue a retrain: %s", platform, exc)
                self.release(platform)
        return queued

    def request_run(self, platform: str) -> Any:
        """Queue a retrain job for the platform now (POST /v1/retraining/run); returns the queued job."""
        self.platforms.platform_id(platform)  # an unknown platform fails first
        if self.enqueue is None:
            raise DataError("this deployment has no job queue for retrain jobs; run `shoprec retrain run -p "
                            f"{platform}` instead")
        return self.enqueue(platform, "retrain", {"cause": "manual"})

    def run_job(self, platform: str, params: Mapping[str, Any] | None = None,
                progress: Progress | None = None) -> dict[str, Any]:
        """The body of a "retrain" job: `retrain` with the job's cause; returns the decision as the job's result."""
        cause = str((params or {}).get("cause") or "manual")
        return self.retrain(platform, progress, cause=cause).to_json()

    # ---------------------------------------------------------------- retrain and gate
    def retrain(self, platform: str, progress: Progress | None = None, *, cause: str = "manual") -> Decision:
        """Train the platform's model anew as an inactive model, then pass it through the gate (the body of a
        retrain job). A failure is recorded as a "failed" decision and raised again."""
        say = progress or (lambda msg: None)
        platform_id = self.platforms.platform_id(platform)
        policy = self.policy(platform)
        with storage_errors(self.engine, "read the event mark"), self.engine.connect() as conn:
            mark = RetrainRepo(conn, platform_id).newest_event_id()
        try:
            name, params, features = self._what_to_train(platform, policy)
            say(f"retraining {name} on platform {platform!r}")
            trained = self.store.train(platform, name, params, activate=False, evaluate=False, progress=say,
                                       features=features)
        except ShoprecError as exc:
            self._record(platform_id, platform, {
                "candidate_model_id": None, "active_model_id": self._active_id(platform), "decision": "failed",
                "reason": f"training failed: {exc}", "metric": policy.metric, "margin": policy.margin,
                "candidate_metrics": None, "active_metrics": None, "holdout": None, "experiment_id": None,
                "cause": cause}, state={"event_mark": mark, "model_at": time.time(), "triggered_at": None})
            raise
        row = self.store.get_model(platform, trained.model_id) or {}
        try:
            decision = self.gate(platform, trained.model_id, cause=cause, _policy=policy)
        except Exception as exc:  # recorded (the history says why), then the job fails with it
            self._record(platform_id, platform, {
                "candidate_model_id": trained.model_id, "active_model_id": self._active_id(platform),
                "decision": "failed", "reason": f"the comparison failed: {exc}", "metric": policy.metric,
                "margin": policy.margin, "candidate_metrics": None, "active_metrics": None, "holdout": None,
                "experiment_id": None, "cause": cause})
            raise
        finally:
            with storage_errors(self.engine, "update the retraining schedule"), self.engine.begin() as conn:
                RetrainRepo(conn, platform_id).put_state(time.time(), event_mark=mark,
                                                         model_at=row.get("created_at", time.time()),
                                                         triggered_at=None)
        say(f"decision: {decision.decision} ({decision.reason})")
        return decision

    def _what_to_train(self, platform: str, policy: Policy) -> tuple[str, dict[str, Any], dict[str, Any]]:
        if policy.model is not None:
            return policy.model, dict(policy.params or {}), {}
        active = self.store.active(platform)
        if active is None:
            raise DataError(f"platform {platform!r} has no active model to retrain and its retraining policy "
                            "names no model (set one: shoprec retrain policy -p PLATFORM --model NAME)")
        row = self.store.get_model(platform, active[0]) or {}
        params, features = params_of(row.get("config"))
        return str(row.get("name", active[1])), params, features

    def _active_id(self, platform: str) -> str | None:
        active = self.store.active(platform)
        return None if active is None else active[0]

    def gate(self, platform: str, candidate_model_id: str, *, cause: str = "gate",
             _policy: Policy | None = None) -> Decision:
        """Compare the candidate with the active model on the time-based holdout, then promote it, keep it
        inactive, or start an A/B experiment (the policy's action); the decision is recorded."""
        platform_id = self.platforms.platform_id(platform)
        policy = _policy or self.policy(platform)
        candidate = self.store.get_model(platform, candidate_model_id)
        if candidate is None:
            raise NotFound(f"no model {candidate_model_id!r} on platform {platform!r}")
        active = self.store.active(platform)
        base: dict[str, Any] = {"candidate_model_id": candidate_model_id, "metric": policy.metric,
                                "margin": policy.margin, "experiment_id": None, "cause": cause}
        if active is None:
            self.store.activate(platform, candidate_model_id, actor="retrain")
            return self._record(platform_id, platform, {
                **base, "active_model_id": None, "decision": "promote", "candidate_metrics": None,
                "active_metrics": None, "holdout": None,
                "reason": "no active model: the candidate is promoted without a comparison"})
        if active[0] == candidate_model_id:
            raise DataError(f"model {candidate_model_id!r} is already the active model of platform {platform!r}")
        active_row = self.store.get_model(platform, active[0]) or {}
        comparison = compare_on_holdout(self.engine, self.store, platform, candidate, active_row,
                                        policy.metric, policy.holdout_fraction)
        key = metric_key(policy.metric)[0]
        c, a = comparison["candidate"].get(key), comparison["active"].get(key)
        passed, reason = judge(c, a, policy.metric, policy.margin)
        decision, experiment_id = ("promote" if passed else "keep"), None
        if passed and policy.action == "experiment":
            try:
                experiment_id = self.experiments.create(platform, f"retrain {candidate_model_id[:8]}", [
                    {"name": "active", "model_id": active[0], "share": 0.5},
                    {"name": "candidate", "model_id": candidate_model_id, "share": 0.5}]).experiment_id
                decision, reason = "experiment", reason + f"; A/B experiment {experiment_id} started instead"
            except ShoprecError as exc:
                decision, reason = "keep", reason + f"; but the A/B experiment could not start ({exc}): kept"
        elif passed:
            self.store.activate(platform, candidate_model_id, actor="retrain")
            reason += ": promoted"
        else:
            reason += ": kept inactive"
        return self._record(platform_id, platform, {
            **base, "active_model_id": active[0], "decision": decision, "reason": reason,
            "candidate_metrics": comparison["candidate"], "active_metrics": comparison["active"],
            "holdout": comparison["holdout"], "experiment_id": experiment_id})

    def _record(self, platform_id: int, platform: str, values: dict[str, Any],
                state: dict[str, Any] | None = None) -> Decision:
        now = time.time()
        values = {**values, "created_at": now}
        with storage_errors(self.engine, "record a retraining decision"), self.engine.begin() as conn:
            repo = RetrainRepo(conn, platform_id)
            decision_id = repo.add_decision(values)
            if state:
                repo.put_state(now, **state)
        log.info("retraining platform %s: %s %s (%s)", platform, values["decision"], values["candidate_model_id"],
                 values["reason"])
        decision = _decision(platform, {**values, "id": decision_id})
        if self.on_decision is not None:
            try:
                self.on_decision(decision)
            except Exception:  # an observer must not undo a recorded decision
                log.exception("retraining platform %s: on_decision failed", platform)
        return decision

    # ---------------------------------------------------------------- history
    def history(self, platform: str, limit: int = 50) -> list[Decision]:
        """The platform's newest decisions, newest first (at most MAX_HISTORY)."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_HISTORY:
            raise _field("limit", f"limit must be 1..{MAX_HISTORY}, got {limit!r}")
        with storage_errors(self.engine, "read retraining decisions"), self.engine.connect() as conn:
            rows = RetrainRepo(conn, self.platforms.platform_id(platform)).decisions(limit)
        return [_decision(platform, r) for r in rows]


# ---------------------------------------------------------------- helpers
def _decision(platform: str, row: Mapping[str, Any]) -> Decision:
    return Decision(int(row["id"]), platform, row["candidate_model_id"], row["active_model_id"], row["decision"],
                    row["reason"], row["metric"], float(row["margin"]), row["candidate_metrics"],
                    row["active_metrics"], row["holdout"], row["experiment_id"], row["cause"],
                    float(row["created_at"]))
