"""Durable background jobs (model training): the API, the CLI and the dashboard enqueue them here; workers
(`shoprec worker`, shoprec.worker) claim, run and finish them. Nothing here runs a job.

    job = services.jobs.submit("shop", "train", {"model": "bpr", "params": {"epochs": 20}, "activate": True},
                               actor="key_1a2b")
    services.jobs.list_jobs("shop", status="queued")
    services.jobs.cancel("shop", job.job_id, actor="key_1a2b")

    claimed = services.jobs.claim("host:1234")          # a worker: the oldest runnable job, or None
    held, cancel = services.jobs.heartbeat(claimed, "host:1234", progress="epoch 3/20")
    services.jobs.finish(claimed, "host:1234", "succeeded", result={...})

The queue lives in the `jobs` table (shoprec.storage.jobs explains how claiming stays atomic on SQLite,
PostgreSQL and MySQL). Rules, from settings [jobs] and [limits]:
- at most one running job per platform; at most `max_queued` jobs queued or running per platform (the next
  submit raises QueueFull, answered 429);
- a running job whose worker stops renewing its lease (`lease_s`) is requeued for another worker, and failed
  with the reason once it was claimed `max_attempts` times;
- a training parameter over its cap in [limits] (at any depth of the parameters) is refused by name, as is an
  unknown model name or parameter (ConfigError).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from shoprec.errors import ConfigError, DataError
from shoprec.service.audit import record_audit
from shoprec.service.errors import Conflict, NotFound, QueueFull
from shoprec.service.models import ModelStore, ServedModels
from shoprec.service.platform import PlatformService
from shoprec.settings import JobSettings, Settings
from shoprec.storage import Engine, storage_errors
from shoprec.storage import jobs as Q
from shoprec.storage.jobs import FINISHED, STATUSES, JobRepo

log = logging.getLogger(__name__)
MAX_LIST = 1000  # jobs one list answers at most
QUEUE_RETRY_AFTER_S = 30.0  # Retry-After of a 429 for a full queue: about when a short job may have finished

Validator = Callable[[Mapping[str, Any], Mapping[str, float]], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Job:
    """A background job as stored (JobOut): `status` queued, running, succeeded, failed or cancelled;
    `result` the job's answer once it succeeded (training: the model, without its artifact path), `error`
    why it failed or was cancelled (or why its last attempt was retried); `attempts` how many times a worker
    claimed it, `worker` the worker running it (or that ran it last), `progress` the newest progress line of a
    running job, `actor` who submitted it."""

    job_id: str
    kind: str
    status: str
    params: dict[str, Any] | None
    result: dict[str, Any] | None
    error: str | None
    created_at: float
    updated_at: float
    attempts: int = 0
    worker: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    cancel_requested: bool = False
    progress: str | None = None
    actor: str | None = None


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    """A job a worker has claimed (status running, under its lease)."""

    platform: str
    job_id: str
    kind: str
    params: dict[str, Any]
    attempts: int


def _job(row: Mapping[str, Any]) -> Job:
    return Job(row["job_id"], row["kind"], row["status"], row["params"], row["result"], row["error"],
               row["created_at"], row["updated_at"], row["attempts"], row["worker"], row["started_at"],
               row["finished_at"], row["cancel_requested"], row["progress"], row["actor"])


def check_limits(params: Any, limits: Mapping[str, float], where: str = "params") -> None:
    """ConfigError naming the first parameter (at any depth of dicts and lists) whose number is above its cap
    in `limits` (settings [limits]: parameter name -> cap)."""
    if isinstance(params, Mapping):
        for key, value in params.items():
            path = f"{where}.{key}"
            cap = limits.get(str(key))
            if (cap is not None and isinstance(value, int | float) and not isinstance(value, bool)
                    and value > cap):
                raise ConfigError(f"parameter {path} = {value} is over this deployment's limit of {cap:g} "
                                  f"(setting limits.{key})")
            check_limits(value, limits, path)
    elif isinstance(params, list | tuple):
        for i, value in enumerate(params):
            check_limits(value, limits, f"{where}[{i}]")


def check_train(params: Mapping[str, Any], limits: Mapping[str, float]) -> dict[str, Any]:
    """A training job's parameters {model, params, activate}, checked now (a bad one is a 4xx at submit, not a
    failed job later): the model name and its parameters (ModelFactory) and the deployment's caps."""
    from shoprec.models.factory import ModelFactory

    unknown = sorted(set(params) - {"model", "params", "activate"})
    if unknown:
        raise ConfigError(f"unknown training job field {unknown[0]!r} (fields: model, params, activate)")
    model, model_params = params.get("model"), params.get("params") or {}
    if not isinstance(model, str) or not model:
        raise ConfigError(f"a training job needs a model name, got {model!r}")
    if not isinstance(model_params, Mapping):
        raise ConfigError(f"training job params must be an object, got {type(model_params).__name__}")
    check_limits(dict(model_params), limits)
    ModelFactory(model, model_params)  # an unknown model or parameter fails now, by name
    return {"model": model, "params": dict(model_params), "activate": bool(params.get("activate", False))}


def check_retrain(params: Mapping[str, Any], limits: Mapping[str, float]) -> dict[str, Any]:
    """A retrain job's parameters {cause}: what queued it (schedule | manual); the model and its parameters are
    the platform's retraining policy's (checked against the caps when the policy is set)."""
    unknown = sorted(set(params) - {"cause"})
    if unknown:
        raise ConfigError(f"unknown retrain job field {unknown[0]!r} (fields: cause)")
    cause = params.get("cause", "manual")
    if cause not in ("schedule", "manual"):
        raise ConfigError(f"retrain job cause must be 'schedule' or 'manual', got {cause!r}")
    return {"cause": cause}


class JobService:
    """The job queue of every platform (see the module doc). `settings`: [jobs]; `limits`: [limits]."""

    def __init__(self, engine: Engine, platforms: PlatformService, store: ModelStore, served: ServedModels,
                 settings: JobSettings | None = None, limits: Mapping[str, float] | None = None) -> None:
        self.engine, self.platforms, self.store, self.served = engine, platforms, store, served
        self.settings = settings or JobSettings()
        self.limits: dict[str, float] = dict(Settings().limits if limits is None else limits)
        self.kinds: dict[str, Validator] = {"train": check_train}

    def register_kind(self, kind: str, validator: Validator) -> None:
        """Accept jobs of `kind`, their params checked (and normalised) by `validator(params, limits)` at submit
        (a worker runs them with its handler for `kind`)."""
        self.kinds[kind] = validator

    # ------------------------------------------------------------------ submitting and reading
    def submit_training(self, platform: str, model: str, params: dict[str, Any], activate: bool, *,
                        actor: str | None = None) -> Job:
        """Enqueue training `model` with `params` on `platform` (activated when it succeeds, if `activate`)."""
        return self.submit(platform, "train", {"model": model, "params": params, "activate": activate}, actor=actor)

    def submit(self, platform: str, kind: str, params: Mapping[str, Any], *, actor: str | None = None) -> Job:
        """Enqueue a job: ConfigError for an unknown kind or bad params (named), QueueFull when the platform
        has settings.max_queued jobs queued or running, DataError for an unknown platform."""
        check = self.kinds.get(kind)
        if check is None:
            raise ConfigError(f"unknown job kind {kind!r} (kinds: {', '.join(sorted(self.kinds))})")
        if not isinstance(params, Mapping):
            raise ConfigError(f"job params must be an object, got {type(params).__name__}")
        checked = check(params, self.limits)
        platform_id = self.platforms.platform_id(platform)
        job_id = uuid.uuid4().hex
        cap = self.settings.max_queued
        with storage_errors(self.engine, "create a job"), self.engine.begin() as conn:
            repo = JobRepo(conn, platform_id)
            repo.lock_platform()  # the count and the insert are one decision across every API process
            active = repo.count_active()
            if active >= cap:
                raise QueueFull(f"platform {platform!r} has {active} jobs queued or running, the most this "
                                f"deployment allows (setting jobs.max_queued = {cap}); retry when one has finished",
                                QUEUE_RETRY_AFTER_S)
            repo.add_job(job_id, kind, checked, time.time(), actor)
            record_audit(conn, platform_id=platform_id, action="job.submit", actor=actor or "unknown",
                         subject=job_id, details={"kind": kind})
        log.info("platform=%s job=%s: %s job queued by %s", platform, job_id, kind, actor)
        return self.get(platform, job_id)

    def get(self, platform: str, job_id: str) -> Job:
        with storage_errors(self.engine, "read a job"), self.engine.connect() as conn:
            row = JobRepo(conn, self.platforms.platform_id(platform)).get_job(job_id)
        if row is None:
            raise NotFound(f"no job {job_id!r} on platform {platform!r}")
        return _job(row)

    def list_jobs(self, platform: str, status: str | Iterable[str] | None = None, limit: int = 100) -> list[Job]:
        """The platform's newest `limit` jobs, newest first; `status` one status, a comma-separated list or an
        iterable of them (DataError naming an unknown one)."""
        statuses: list[str] | None = None
        if status is not None:
            names = status.split(",") if isinstance(status, str) else list(status)
            statuses = [s.strip().lower() for s in names if s.strip()]
            bad = [s for s in statuses if s not in STATUSES]
            if bad:
                raise DataError(f"unknown job status {bad[0]!r} (statuses: {', '.join(STATUSES)})")
        if not 1 <= limit <= MAX_LIST:
            raise DataError(f"limit must be 1..{MAX_LIST}, got {limit}")
        with storage_errors(self.engine, "list jobs"), self.engine.connect() as conn:
            rows = JobRepo(conn, self.platforms.platform_id(platform)).list_jobs(statuses, limit)
        return [_job(r) for r in rows]

    def cancel(self, platform: str, job_id: str, actor: str | None = None) -> Job:
        """Cancel a job: a queued one is cancelled at once; a running one is flagged and its worker stops it
        within about a second (then it is `cancelled`, nothing registered). NotFound for an unknown job,
        Conflict for one that has finished."""
        platform_id = self.platforms.platform_id(platform)
        with storage_errors(self.engine, "cancel a job"), self.engine.begin() as conn:
            repo = JobRepo(conn, platform_id)
            row = repo.get_job(job_id)
            if row is None:
                raise NotFound(f"no job {job_id!r} on platform {platform!r}")
            if not repo.cancel(job_id, time.time()):
                raise Conflict(f"job {job_id} has {row['status']} already; only queued or running jobs can be "
                               f"cancelled")
            record_audit(conn, platform_id=platform_id, action="job.cancel", actor=actor or "unknown",
                         subject=job_id, details={"status": row["status"]})
        log.info("platform=%s job=%s: cancel requested by %s (was %s)", platform, job_id, actor, row["status"])
        return self.get(platform, job_id)

    def wait(self, platform: str, job_id: str, timeout: float = 60.0, poll_s: float = 0.05) -> Job:
        """Poll the database until the job has finished (tests, scripts); TimeoutError after `timeout` s."""
        deadline = time.monotonic() + timeout
        while True:
            job = self.get(platform, job_id)
            if job.status in FINISHED:
                return job
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} is still {job.status} after {timeout:g} s")
            time.sleep(poll_s)

    # ------------------------------------------------------------------ the worker's side
    def claim(self, worker_id: str, kinds: Collection[str] | None = None) -> ClaimedJob | None:
        """Take the oldest queued job (of `kinds`) of a platform that has no running job, after taking over
        running jobs whose lease ran out; None when there is nothing to run."""
        self.expire_leases()
        now = time.time()
        lease = self.settings.lease_s
        with storage_errors(self.engine, "look for a job"), self.engine.connect() as conn:
            candidates = Q.queued_candidates(conn, kinds=kinds)
        for platform_id, platform, job_id in candidates:
            with storage_errors(self.engine, "claim a job"), self.engine.begin() as conn:
                repo = JobRepo(conn, platform_id)
                repo.lock_platform()  # with the check below: one running job per platform, across machines
                if repo.running_job() is not None or not repo.claim(job_id, worker_id, now, lease):
                    continue
                row = repo.get_job(job_id)
            assert row is not None
            log.info("platform=%s job=%s: claimed by worker %s (attempt %d)", platform, job_id, worker_id,
                     row["attempts"])
            return ClaimedJob(platform, job_id, row["kind"], dict(row["params"] or {}), row["attempts"])
        return None

    def expire_leases(self) -> int:
        """Take over running jobs whose worker stopped renewing the lease: requeue them, or fail them (with the
        reason) once claimed max_attempts times, or end them cancelled when a cancel was requested. Returns how
        many were taken over."""
        now = time.time()
        with storage_errors(self.engine, "look for abandoned jobs"), self.engine.connect() as conn:
            expired = Q.expired_jobs(conn, now)
        done = 0
        cap = self.settings.max_attempts
        for _pid, platform, job_id, attempts, worker, cancel in expired:
            died = f"worker {worker} stopped renewing its lease (it died or lost the database)"
            if cancel:
                status, error = "cancelled", f"cancelled; {died}"
            elif attempts >= cap:
                status, error = "failed", (f"worker died {attempts} times: the last one, {died}; a job is tried "
                                           f"at most jobs.max_attempts = {cap} times")
            else:
                status, error = "queued", f"attempt {attempts}: {died}; retrying"
            with storage_errors(self.engine, "take over a job"), self.engine.begin() as conn:
                taken = Q.take_over(conn, job_id, worker, now, status=status, error=error)
            if taken:
                done += 1
                log.warning("platform=%s job=%s: %s -> %s", platform, job_id, error, status)
        return done

    def heartbeat(self, job: ClaimedJob, worker_id: str, progress: str | None = None) -> tuple[bool, bool]:
        """Renew the job's lease: (still this worker's job, cancel requested)."""
        with storage_errors(self.engine, "renew a job's lease"), self.engine.begin() as conn:
            return Q.heartbeat(conn, job.job_id, worker_id, time.time(), self.settings.lease_s, progress)

    def finish(self, job: ClaimedJob, worker_id: str, status: str, *, result: dict[str, Any] | None = None,
               error: str | None = None) -> bool:
        """End a job this worker runs: succeeded (with `result`), failed or cancelled (with `error`). False when
        the job was no longer this worker's (taken over)."""
        if status not in FINISHED:
            raise ValueError(f"a job finishes as one of {', '.join(FINISHED)}, not {status!r}")
        with storage_errors(self.engine, "finish a job"), self.engine.begin() as conn:
            done = Q.finish(conn, job.job_id, worker_id, time.time(), status, result=result, error=error)
        log.log(logging.INFO if status == "succeeded" else logging.WARNING, "platform=%s job=%s: %s%s",
                job.platform, job.job_id, status, f" ({error})" if error else "")
        return done

    def fail_attempt(self, job: ClaimedJob, worker_id: str, error: str) -> str:
        """The attempt crashed (its process died): requeue the job, or fail it once it was tried max_attempts
        times. Returns the job's new status."""
        cap = self.settings.max_attempts
        if job.attempts >= cap:
            self.finish(job, worker_id, "failed", error=f"{error}; tried {job.attempts} times "
                                                        f"(jobs.max_attempts = {cap})")
            return "failed"
        with storage_errors(self.engine, "requeue a job"), self.engine.begin() as conn:
            Q.requeue(conn, job.job_id, worker_id, time.time(), error=f"attempt {job.attempts}: {error}; retrying")
        log.warning("platform=%s job=%s: attempt %d: %s; requeued", job.platform, job.job_id, job.attempts, error)
        return "queued"

    def release(self, job: ClaimedJob, worker_id: str) -> None:
        """Give an unfinished job back to the queue without counting the attempt (the worker is stopping)."""
        with storage_errors(self.engine, "requeue a job"), self.engine.begin() as conn:
            Q.requeue(conn, job.job_id, worker_id, time.time(), count_attempt=False,
                      error=f"worker {worker_id} stopped before it finished; requeued")
        log.info("platform=%s job=%s: given back to the queue (worker %s stopping)", job.platform, job.job_id,
                 worker_id)

    def close(self) -> None:
        """Nothing to release (kept for Services.close)."""
