"""Worker: claim a job, run it in a child process, renew its lease, stop it on cancel, record its outcome.

One job at a time per worker (run more workers for more, on any machines sharing the database); the database
allows one running job per platform whatever the number of workers (shoprec.storage.jobs).

While a job's child runs, the worker wakes every min(1 s, lease_s / 3): it renews the lease (and stores the
newest progress line), stops the child when a cancel was requested (the job ends `cancelled`, nothing
registered) or when the job was taken over by another worker (this worker's lease ran out), and runs the
periodic tasks when due. The child's outcome: its result (succeeded), its error (failed: a ShoprecError or an
exception in the handler is not retried), or no outcome because it died (a crash, the OOM killer: the attempt
is failed and the job requeued, up to jobs.max_attempts). On stop (SIGTERM) the running job's child is
terminated and the job given back to the queue, its attempt not counted.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from shoprec.errors import StorageError
from shoprec.logs import configure_logging
from shoprec.service import Services, build_services, telemetry
from shoprec.service.jobs import ClaimedJob
from shoprec.settings import Settings, use_settings
from shoprec.worker import handlers as default_handlers
from shoprec.worker.child import die_with_parent, job_main

log = logging.getLogger(__name__)
Handler = Callable[[Services, str, dict[str, Any], Callable[[str], None]], dict[str, Any]]
Periodic = Callable[[Services], None]
DEFAULT_HANDLERS: dict[str, Handler] = {"train": default_handlers.train, "retrain": default_handlers.retrain,
                                        "export": default_handlers.export,
                                        "pretrain": default_handlers.pretrain}
DEFAULT_PERIODIC: tuple[Periodic, ...] = (default_handlers.retraining_schedule,)
STOP_GRACE_S = 5.0  # a terminated child gets this long to exit before it is killed


def default_worker_id() -> str:
    """host:pid:random (unique even when a pid is reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class JobLog(logging.LoggerAdapter):
    """Log lines of one job: "platform=P job=J: message", with `platform` and `job_id` as record attributes."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        extra = self.extra or {}
        kwargs["extra"] = {**extra, **kwargs.get("extra", {})}
        return f"platform={extra.get('platform')} job={extra.get('job_id')}: {msg}", kwargs


class Worker:
    """Runs jobs of the kinds in `handlers` (default: DEFAULT_HANDLERS) and calls each of `periodic` with the
    services every settings.jobs.poll_s (also while a job runs, between lease renewals: a periodic task must
    be short, e.g. decide and submit a job; long work belongs in a job). `services`: the worker's own (built
    from settings when None; closed by close() only then)."""

    def __init__(self, settings: Settings, services: Services | None = None, *, worker_id: str | None = None,
                 handlers: Mapping[str, Handler] | None = None, periodic: Iterable[Periodic] | None = None) -> None:
        self.settings = settings
        self._own_services = services is None
        self.services = services if services is not None else build_services(settings, settings.serving)
        self.worker_id = worker_id or default_worker_id()
        self.handlers = dict(DEFAULT_HANDLERS if handlers is None else handlers)
        self.periodic = list(DEFAULT_PERIODIC if periodic is None else periodic)
        self.last_job: ClaimedJob | None = None
        self.last_status: str | None = None
        self._next_periodic = 0.0
        self._context = multiprocessing.get_context("spawn")

    # ------------------------------------------------------------------ loops
    def run(self, stop: threading.Event) -> None:
        """Run jobs until `stop` is set (the job in flight then goes back to the queue)."""
        log.info("worker %s started (kinds: %s)", self.worker_id, ", ".join(sorted(self.handlers)))
        poll = self.settings.jobs.poll_s
        while not stop.is_set():
            self.run_periodic()
            try:
                worked = self.run_once(stop)
            except StorageError as exc:  # the database is away: try again later
                log.warning("worker %s: %s", self.worker_id, exc)
                worked = False
            if not worked:
                stop.wait(poll)
        log.info("worker %s stopped", self.worker_id)

    def run_once(self, stop: threading.Event | None = None) -> bool:
        """Claim one job and run it to its end; False when there was none."""
        job = self.services.jobs.claim(self.worker_id, kinds=self.handlers)
        if job is None:
            return False
        self.last_job = job
        self.last_status = self._run(job, stop or threading.Event())
        return True

    def run_periodic(self, force: bool = False) -> None:
        """Call the periodic tasks when due (every settings.jobs.poll_s); one that raises is logged."""
        now = time.monotonic()
        if not self.periodic or (now < self._next_periodic and not force):
            return
        self._next_periodic = now + self.settings.jobs.poll_s
        for task in self.periodic:
            try:
                task(self.services)
            except Exception:
                log.exception("worker %s: periodic task %s failed", self.worker_id, getattr(task, "__name__", task))

    def close(self) -> None:
        if self._own_services:
            self.services.close()

    # ------------------------------------------------------------------ one job
    def _run(self, job: ClaimedJob, stop: threading.Event) -> str:
        """Run a claimed job in a child process; returns its status when this worker left it."""
        jlog = JobLog(log, {"platform": job.platform, "job_id": job.job_id})
        jobs = self.services.jobs
        handler = self.handlers[job.kind]
        receive, send = self._context.Pipe(duplex=False)
        child = self._context.Process(
            target=job_main, name=f"shoprec-job-{job.job_id[:8]}",
            args=(self.settings, handler, job.platform, job.job_id, job.params, send, os.getpid()))
        jlog.info("%s job: attempt %d in a child process (worker %s)", job.kind, job.attempts, self.worker_id)
        started = time.monotonic()
        child.start()
        send.close()
        outcome: tuple[str, Any] | None = None
        progress: str | None = None
        beat = min(1.0, self.settings.jobs.lease_s / 3)
        try:
            while True:
                child.join(timeout=beat)
                while outcome is None and receive.poll():
                    try:
                        message = receive.recv()
                    except (EOFError, OSError):
                        break
                    if message[0] == "progress":
                        progress = str(message[1])
                    else:
                        outcome = message
                if outcome is not None or child.exitcode is not None:
                    break
                try:
                    held, cancel = jobs.heartbeat(job, self.worker_id, progress)
                except StorageError as exc:  # keep going: the lease may still hold when the database is back
                    jlog.warning("could not renew the lease: %s", exc)
                    continue
                if not held:
                    jlog.warning("taken over by another worker (this worker's lease ran out): stopping")
                    return "lost"
                if cancel:
                    jlog.info("cancel requested: stopping the job's process")
                    self._stop_child(child)
                    jobs.finish(job, self.worker_id, "cancelled", error="cancelled on request while running")
                    record_job(job.kind, job.platform, "cancelled", time.monotonic() - started, None)
                    return "cancelled"
                if stop.is_set():
                    self._stop_child(child)
                    jobs.release(job, self.worker_id)
                    return "queued"
                self.run_periodic()
        finally:
            if outcome is not None:
                child.join(STOP_GRACE_S)  # it is closing its services
            self._stop_child(child)
            receive.close()
        seconds = time.monotonic() - started
        if outcome is not None and outcome[0] == "ok":
            jobs.finish(job, self.worker_id, "succeeded", result=outcome[1])
            jlog.info("succeeded in %.1f s", seconds)
            record_job(job.kind, job.platform, "succeeded", seconds, outcome[1])
            return "succeeded"
        if outcome is not None:
            jobs.finish(job, self.worker_id, "failed", error=str(outcome[1]))
            jlog.warning("failed in %.1f s: %s", seconds, outcome[1])
            record_job(job.kind, job.platform, "failed", seconds, None)
            return "failed"
        if stop.is_set():  # stopped by a signal that reached the job's process too: not the job's fault
            jobs.release(job, self.worker_id)
            return "queued"
        code = child.exitcode
        how = f"killed by signal {-code}" if code is not None and code < 0 else f"exited with code {code}"
        return jobs.fail_attempt(job, self.worker_id, f"the job's process {how} without an answer")

    @staticmethod
    def _stop_child(child: multiprocessing.process.BaseProcess) -> None:
        if child.exitcode is None and child.is_alive():
            child.terminate()
            child.join(STOP_GRACE_S)
            if child.is_alive():
                child.kill()
        child.join()


def record_job(kind: str, platform: str, status: str, seconds: float, result: Mapping[str, Any] | None) -> None:
    """The job's metrics (shoprec.service.telemetry), recorded by the worker from what the job's process answered:
    jobs by kind and status, job time, training time, the promotion gate's decision."""
    telemetry.JOBS.labels(kind=kind, status=status).inc()
    telemetry.JOB_SECONDS.labels(kind=kind).observe(seconds)
    if not result:
        return
    if "fit_seconds" in result and "model" in result:
        telemetry.TRAIN_SECONDS.labels(platform=platform, model=str(result["model"])).observe(
            float(result["fit_seconds"]))
    decision = result if kind == "retrain" else result.get("decision")  # a retrain job's result is its decision
    if isinstance(decision, Mapping) and decision.get("decision"):
        telemetry.RETRAIN_DECISIONS.labels(platform=platform, decision=str(decision["decision"])).inc()


def worker_process(settings: Settings, *, worker_id: str | None = None, periodic: Iterable[Periodic] | None = None,
                   parent_pid: int | None = None) -> None:
    """Run a worker until SIGTERM or SIGINT (a process's entry point: `shoprec worker`, or `shoprec serve`
    starting one beside the API). `parent_pid`: also stop when that process (the supervisor) dies."""
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("worker: signal %d, stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if parent_pid is not None:  # SIGTERM: the job in flight goes back to the queue
        die_with_parent(parent_pid, stop.set, signum=signal.SIGTERM)
    use_settings(settings)
    configure_logging(settings.logging)
    worker = Worker(settings, worker_id=worker_id, periodic=periodic)
    try:
        worker.run(stop)
    finally:
        worker.close()
