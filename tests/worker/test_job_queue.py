"""The durable job queue on SQLite, PostgreSQL and MariaDB: atomic claims (one running job per platform),
lease takeover and max_attempts, the queue cap, cancellation of queued jobs, parameter caps. No child
processes here: a "worker" is whoever calls claim / heartbeat / finish (test_worker.py runs real ones)."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from job_handlers import register

from shoprec.errors import ConfigError
from shoprec.service import Services, ServingConfig, build_services
from shoprec.service.errors import Conflict, NotFound, QueueFull
from shoprec.service.jobs import ClaimedJob, check_limits
from shoprec.service.testing import TEST_ADMIN_KEY
from shoprec.settings import JobSettings, Settings
from shoprec.storage import tables as T
from shoprec.storage.testing import ServerUnavailable, scratch_database

BACKENDS = [pytest.param("sqlite", id="sqlite"),
            pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
            pytest.param("mysql", id="mysql", marks=pytest.mark.mysql)]
LEASE_S = 1.5  # long enough for a loaded machine between a claim and the next check


def make_services(url: str, directory: Path, **jobs: float) -> Services:
    values = {"lease_s": LEASE_S, "poll_s": 0.1, "max_attempts": 2, "max_queued": 3, **jobs}
    settings = Settings(database_url=url, model_dir=directory / "models", jobs=JobSettings(**values))  # type: ignore[arg-type]
    services = build_services(settings, ServingConfig(admin_key=TEST_ADMIN_KEY, model_poll_s=0.0))
    register(services)
    return services


@pytest.fixture(scope="module", params=BACKENDS)
def services(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    directory = tmp_path_factory.mktemp("queue")
    try:
        with scratch_database(request.param, directory) as url:
            svc = make_services(url, directory)
            try:
                yield svc
            finally:
                svc.close()
    except ServerUnavailable as exc:
        pytest.skip(f"{exc} (start it to run the {request.param} job queue tests)")


@pytest.fixture
def platforms(services: Services) -> Iterator[tuple[str, str]]:
    """Two fresh platforms; afterwards every job left queued or running is ended (claims see every platform)."""
    names = (f"p-{uuid.uuid4().hex[:8]}", f"q-{uuid.uuid4().hex[:8]}")
    for name in names:
        services.platforms.create(name)
    yield names
    with services.engine.begin() as conn:
        conn.execute(sa.update(T.jobs).where(T.jobs.c.status.in_(["queued", "running"])).values(status="cancelled"))


def sleep(services: Services, platform: str, **params: float) -> str:
    return services.jobs.submit(platform, "sleep", params, actor="test").job_id


def test_concurrent_claims_take_one_job_per_platform(services: Services, platforms: tuple[str, str]) -> None:
    p, q = platforms
    p_jobs = [sleep(services, p, n=i) for i in range(3)]
    q_job = sleep(services, q)
    barrier = threading.Barrier(6)
    claimed: list[ClaimedJob | None] = []

    def claim(i: int) -> None:
        barrier.wait()
        claimed.append(services.jobs.claim(f"w{i}"))

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    got = sorted((c.platform, c.job_id) for c in claimed if c is not None)
    assert got == sorted([(p, p_jobs[0]), (q, q_job)]), got  # the oldest of each platform, once
    assert [j.status for j in services.jobs.list_jobs(p)] == ["queued", "queued", "running"]
    assert services.jobs.claim("w9") is None  # both platforms busy
    first = next(c for c in claimed if c is not None and c.platform == p)
    worker = services.jobs.get(p, first.job_id).worker
    assert worker is not None and services.jobs.finish(first, worker, "succeeded", result={"ok": 1})
    nxt = services.jobs.claim("w9")
    assert nxt is not None and nxt.job_id == p_jobs[1] and nxt.attempts == 1


def test_dead_worker_is_taken_over_then_failed_after_max_attempts(services: Services,
                                                                   platforms: tuple[str, str]) -> None:
    p, _ = platforms
    job_id = sleep(services, p)
    first = services.jobs.claim("dies-1")
    assert first is not None and first.job_id == job_id
    assert services.jobs.heartbeat(first, "dies-1", "step 1") == (True, False)
    assert services.jobs.get(p, job_id).progress == "step 1"
    assert services.jobs.claim("w2") is None  # its lease holds
    time.sleep(LEASE_S + 0.3)  # dies-1 stops renewing its lease
    second = services.jobs.claim("dies-2")
    assert second is not None and second.job_id == job_id and second.attempts == 2
    assert services.jobs.heartbeat(first, "dies-1") == (False, False)  # the dead worker lost it
    assert not services.jobs.finish(first, "dies-1", "succeeded", result={})
    time.sleep(LEASE_S + 0.3)
    assert services.jobs.claim("w3") is None
    job = services.jobs.get(p, job_id)
    assert job.status == "failed" and job.attempts == 2 and job.finished_at is not None
    assert job.error is not None and job.error.startswith("worker died 2 times") and "dies-2" in job.error
    assert "jobs.max_attempts = 2" in job.error


def test_queue_cap_and_cancelling_a_queued_job(services: Services, platforms: tuple[str, str]) -> None:
    p, q = platforms
    ids = [sleep(services, p) for _ in range(3)]
    with pytest.raises(QueueFull, match=r"3 jobs queued or running.*jobs\.max_queued = 3") as full:
        sleep(services, p)
    assert full.value.retry_after_s > 0
    sleep(services, q)  # the cap is per platform
    cancelled = services.jobs.cancel(p, ids[0], actor="test")
    assert cancelled.status == "cancelled" and cancelled.finished_at is not None
    with pytest.raises(Conflict, match="has cancelled already"):
        services.jobs.cancel(p, ids[0], actor="test")
    with pytest.raises(NotFound):
        services.jobs.cancel(q, ids[1], actor="test")  # another platform's job
    sleep(services, p)  # room again
    claimed = [services.jobs.claim("w1"), services.jobs.claim("w2")]
    assert ids[0] not in {c.job_id for c in claimed if c is not None}
    assert [j.job_id for j in services.jobs.list_jobs(p, status="cancelled")] == [ids[0]]
    with pytest.raises(Exception, match="unknown job status 'done'"):
        services.jobs.list_jobs(p, status="done")


def test_cancel_of_a_running_job_is_seen_by_its_worker(services: Services, platforms: tuple[str, str]) -> None:
    p, _ = platforms
    job_id = sleep(services, p)
    job = services.jobs.claim("w1")
    assert job is not None and job.job_id == job_id
    running = services.jobs.cancel(p, job_id, actor="test")
    assert running.status == "running" and running.cancel_requested
    assert services.jobs.heartbeat(job, "w1") == (True, True)
    assert services.jobs.finish(job, "w1", "cancelled", error="cancelled on request")
    assert services.jobs.get(p, job_id).status == "cancelled"


def test_parameters_over_their_cap_and_unknown_models_are_refused(services: Services,
                                                                  platforms: tuple[str, str]) -> None:
    p, _ = platforms
    with pytest.raises(ConfigError, match=r"params\.epochs = 100000 .* limit of 500 \(setting limits\.epochs\)"):
        services.jobs.submit_training(p, "bpr", {"epochs": 100_000}, activate=False, actor="test")
    with pytest.raises(ConfigError, match=r"params\.stages\[1\]\.embedding_size = 4096"):
        check_limits({"stages": [{"embedding_size": 8}, {"embedding_size": 4096}]}, services.jobs.limits)
    with pytest.raises(ConfigError, match="nope"):
        services.jobs.submit_training(p, "nope", {}, activate=False, actor="test")
    with pytest.raises(ConfigError, match="unknown job kind 'mine'"):
        services.jobs.submit(p, "mine", {}, actor="test")
    assert services.jobs.list_jobs(p) == []  # nothing half-written
    ok = services.jobs.submit_training(p, "bpr", {"epochs": 500}, activate=False, actor="test")
    assert ok.status == "queued" and ok.params == {"model": "bpr", "params": {"epochs": 500}, "activate": False}
    assert ok.actor == "test"


def test_a_worker_runs_a_job_in_a_child_process(services: Services, platforms: tuple[str, str]) -> None:
    from job_handlers import HANDLERS

    from shoprec.worker import DEFAULT_HANDLERS, Worker
    from shoprec.worker.testing import run_queued

    p, _ = platforms
    job_id = sleep(services, p, steps=2, step_s=0.01)
    assert not Worker(services.settings, services, handlers=DEFAULT_HANDLERS).run_once()  # no handler: left
    assert run_queued(services, handlers=HANDLERS, worker_id="child-runner") == 1
    job = services.jobs.wait(p, job_id, timeout=5)
    assert job.status == "succeeded" and job.worker == "child-runner" and job.attempts == 1
    assert job.result is not None and job.result["steps"] == 2 and job.result["pid"] != os.getpid()
