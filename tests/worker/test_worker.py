"""Real workers: jobs run in child processes, survive a restart, are cancelled while running, a crash fails one
attempt, two workers keep one running job per platform, and a `shoprec worker` killed with SIGKILL mid-job
is taken over by another worker (its job's process dies with it)."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from job_handlers import HANDLERS
from test_job_queue import make_services

from shoprec.service import Services
from shoprec.service.testing import synthetic_platform
from shoprec.worker import Worker
from shoprec.worker.testing import run_queued

CLI = [sys.executable, "-c", "from shoprec.cli.main import main; main()"]


def eventually(check: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    svc = make_services(f"sqlite:///{tmp_path / 'shoprec.db'}", tmp_path, lease_s=10.0)  # a loaded CI machine
    yield svc
    svc.close()


@pytest.fixture
def worker_thread(services: Services) -> Iterator[Callable[[str], Worker]]:
    """Start Workers (test job kinds and train) in threads of this process; stopped afterwards."""
    stop = threading.Event()
    threads: list[threading.Thread] = []

    def start(worker_id: str) -> Worker:
        worker = Worker(services.settings, services, worker_id=worker_id,
                        handlers={**HANDLERS, "train": Worker(services.settings, services).handlers["train"]})
        thread = threading.Thread(target=worker.run, args=(stop,), name=worker_id)
        thread.start()
        threads.append(thread)
        return worker

    yield start
    stop.set()
    for t in threads:
        t.join(30)
        assert not t.is_alive(), f"worker {t.name} did not stop"


def test_a_job_queued_before_a_restart_is_run_by_a_new_worker(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shoprec.db'}"
    before = make_services(url, tmp_path, lease_s=10.0)
    synthetic_platform(before, "shop", users=40, items=20, model=None)
    job = before.jobs.submit_training("shop", "popular", {}, activate=True, actor="test")
    before.close()  # the API process is gone; the job stays in the database
    after = make_services(url, tmp_path, lease_s=10.0)
    try:
        assert after.jobs.get("shop", job.job_id).status == "queued"
        assert run_queued(after) == 1
        done = after.jobs.get("shop", job.job_id)
        assert done.status == "succeeded", done
        assert done.attempts == 1 and done.started_at is not None and done.finished_at is not None
        assert done.result is not None and "path" not in done.result
        assert after.store.active("shop")[0] == done.result["model_id"]  # type: ignore[index]
    finally:
        after.close()


def test_cancel_stops_a_running_job_and_the_worker_goes_on(services: Services,
                                                           worker_thread: Callable[[str], Worker]) -> None:
    services.platforms.create("shop")
    job_id = services.jobs.submit("shop", "sleep", {"steps": 600, "step_s": 0.1}, actor="test").job_id
    worker_thread("w1")
    eventually(lambda: (services.jobs.get("shop", job_id).progress or "").startswith("step"), what="progress")
    asked = time.monotonic()
    assert services.jobs.cancel("shop", job_id, actor="test").status == "running"
    eventually(lambda: services.jobs.get("shop", job_id).status == "cancelled", 15, "the job to be cancelled")
    assert time.monotonic() - asked < 10
    job = services.jobs.get("shop", job_id)
    assert job.result is None and job.error == "cancelled on request while running"
    progress = job.progress
    time.sleep(0.5)
    assert services.jobs.get("shop", job_id).progress == progress  # its process is gone
    quick = services.jobs.submit("shop", "sleep", {"steps": 1}, actor="test").job_id
    assert services.jobs.wait("shop", quick, timeout=30).status == "succeeded"


def test_a_crash_fails_one_attempt_and_max_attempts_fails_the_job(services: Services) -> None:
    services.platforms.create("shop")
    job_id = services.jobs.submit("shop", "crash", {}, actor="test").job_id
    failing = services.jobs.submit("shop", "fail", {}, actor="test").job_id
    assert run_queued(services, handlers=HANDLERS) == 3  # crash twice (max_attempts = 2), fail once
    crashed = services.jobs.get("shop", job_id)
    assert crashed.status == "failed" and crashed.attempts == 2
    assert crashed.error is not None and "killed by signal 9" in crashed.error and "tried 2 times" in crashed.error
    failed = services.jobs.get("shop", failing)
    assert failed.status == "failed" and failed.attempts == 1  # a job's own error is not retried
    assert failed.error == "platform has no events of type 'purchase'"


def test_two_workers_run_one_job_per_platform_at_a_time(services: Services,
                                                        worker_thread: Callable[[str], Worker]) -> None:
    for name in ("p", "q"):
        services.platforms.create(name)
    p_jobs = [services.jobs.submit("p", "sleep", {"steps": 4, "step_s": 0.1}, actor="t").job_id for _ in range(3)]
    q_job = services.jobs.submit("q", "sleep", {"steps": 4, "step_s": 0.1}, actor="t").job_id
    worker_thread("w1")
    worker_thread("w2")
    done = [services.jobs.wait("p", j, timeout=120) for j in p_jobs] + [services.jobs.wait("q", q_job, 120)]
    assert all(j.status == "succeeded" for j in done), done
    spans = sorted((j.started_at, j.finished_at) for j in done[:3])
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert end is not None and start is not None and start >= end, spans  # never two at once on p
    assert {j.worker for j in done} <= {"w1", "w2"}


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_kill_9_of_a_worker_mid_job_is_taken_over_and_its_job_process_dies(services: Services,
                                                                           tmp_path: Path) -> None:
    synthetic_platform(services, "shop", users=40, items=20, model=None)
    job_id = services.jobs.submit_training("shop", "popular", {}, activate=True, actor="test").job_id
    env = {**os.environ, "SHOPREC_DATABASE_URL": services.settings.database_url,
           "SHOPREC_MODEL_DIR": str(tmp_path / "models"), "SHOPREC_JOBS_LEASE_S": "1.5",
           "SHOPREC_JOBS_POLL_S": "0.1"}
    env.pop("SHOPREC_REDIS_URL", None)
    proc = subprocess.Popen([*CLI, "worker", "--id", "doomed"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        eventually(lambda: services.jobs.get("shop", job_id).status == "running", 60, "the worker to claim")
        assert services.jobs.get("shop", job_id).worker == "doomed"
        children: list[int] = []
        eventually(lambda: bool(children.extend(_children(proc.pid)) or children), 10, "the job's process")
        proc.send_signal(signal.SIGKILL)  # mid-job: the child is still starting or training
        proc.wait(10)
        eventually(lambda: not any(_alive(c) for c in children), 10, "the job's process to die with its worker")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()
    assert services.jobs.get("shop", job_id).status == "running"  # until its lease runs out
    rescuer = Worker(services.settings, services, worker_id="rescuer")
    eventually(lambda: rescuer.run_once(), 30, "the lease to run out and the job to be taken over")
    job = services.jobs.get("shop", job_id)
    assert job.status == "succeeded" and job.worker == "rescuer" and job.attempts == 2, job
    assert services.store.active("shop")[0] == job.result["model_id"]  # type: ignore[index]


def test_sigterm_gives_the_running_job_back_to_the_queue(services: Services, tmp_path: Path) -> None:
    synthetic_platform(services, "shop", users=40, items=20, model=None)
    slow = {"epochs": 500, "patience": 500, "ensemble": 1, "use_text": False}  # still training at the SIGTERM
    job_id = services.jobs.submit_training("shop", "transformer", slow, activate=False, actor="test").job_id
    env = {**os.environ, "SHOPREC_DATABASE_URL": services.settings.database_url,
           "SHOPREC_MODEL_DIR": str(tmp_path / "models"), "SHOPREC_JOBS_POLL_S": "0.1"}
    env.pop("SHOPREC_REDIS_URL", None)
    proc = subprocess.Popen([*CLI, "worker", "--id", "stopping"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        eventually(lambda: services.jobs.get("shop", job_id).status == "running", 60, "the worker to claim")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    job = services.jobs.get("shop", job_id)
    assert job.status == "queued" and job.attempts == 0, job  # not counted: the job did nothing wrong
    assert job.error is not None and "stopping" in job.error
    services.jobs.cancel("shop", job_id, actor="test")  # given back whole: it can still be cancelled (or run)
    assert services.jobs.get("shop", job_id).status == "cancelled"


def test_a_jobs_log_lines_name_its_platform_and_job(services: Services, tmp_path: Path) -> None:
    import json

    synthetic_platform(services, "shop", users=40, items=20, model=None)
    job_id = services.jobs.submit_training("shop", "popular", {}, activate=False, actor="test").job_id
    env = {**os.environ, "SHOPREC_DATABASE_URL": services.settings.database_url,
           "SHOPREC_MODEL_DIR": str(tmp_path / "models"), "SHOPREC_LOGGING_FORMAT": "json",
           "SHOPREC_LOGGING_LEVEL": "info"}
    env.pop("SHOPREC_REDIS_URL", None)
    out = subprocess.run([*CLI, "worker", "--once"], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["status"] == "succeeded"
    lines = [json.loads(line) for line in out.stderr.splitlines() if line.startswith("{")]
    from_job = [line for line in lines if line.get("job_id") == job_id]
    assert from_job and all(line["platform"] == "shop" for line in from_job), out.stderr[-2000:]
    assert any("popular" in str(line["event"]) for line in from_job)  # the job's own progress lines
