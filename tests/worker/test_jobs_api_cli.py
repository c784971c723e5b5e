"""Jobs over HTTP and the CLI: the `train` scope, 202 / 429 / 422 / 409 answers, listing and cancelling; the
`shoprec jobs` and `shoprec worker --once` commands; the migration's `train` scope for the full keys only."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from fastapi.testclient import TestClient
from test_job_queue import make_services

from shoprec.api import create_app
from shoprec.cli import jobs as jobs_cli
from shoprec.cli import worker as worker_cli
from shoprec.service import Services
from shoprec.service.testing import synthetic_platform
from shoprec.storage import create_db, current_revision
from shoprec.storage import tables as T
from shoprec.storage.engine import downgrade, migrate


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    svc = make_services(f"sqlite:///{tmp_path / 'shoprec.db'}", tmp_path, max_queued=2)
    synthetic_platform(svc, "shop", users=40, items=20, model=None)
    yield svc
    svc.close()


def client(services: Services, scopes: list[str]) -> TestClient:
    key = services.platforms.create_key("shop", scopes, "+".join(scopes)).key
    app = create_app(services.settings, services.config, services=services)
    return TestClient(app, headers={"X-API-Key": key}, raise_server_exceptions=False)


def test_training_needs_the_train_scope(services: Services) -> None:
    with client(services, ["read", "write", "admin"]) as writer:
        refused = writer.post("/v1/models/train", json={"model": "popular"})
        assert refused.status_code == 403 and "lacks the 'train' scope" in refused.json()["message"]
        assert writer.get("/v1/jobs").json() == []
    with client(services, ["train"]) as trainer:
        accepted = trainer.post("/v1/models/train", json={"model": "popular", "activate": True})
        assert accepted.status_code == 202, accepted.text
        body = accepted.json()
        assert body["status"] == "queued" and body["attempts"] == 0 and body["worker"] is None
        assert body["actor"].startswith("key_")
        assert trainer.get("/v1/jobs").status_code == 403  # reading needs `read`
    with client(services, ["read"]) as reader:
        assert reader.post(f"/v1/jobs/{body['job_id']}/cancel").status_code == 403
        listed = reader.get("/v1/jobs", params={"status": "queued"}).json()
        assert [j["job_id"] for j in listed] == [body["job_id"]]
        assert reader.get("/v1/jobs", params={"status": "bogus"}).status_code == 422


def test_queue_cap_is_429_with_retry_after_and_bad_params_are_422(services: Services) -> None:
    with client(services, ["read", "train"]) as c:
        over = c.post("/v1/models/train", json={"model": "bpr", "params": {"epochs": 501}})
        assert over.status_code == 422 and "params.epochs = 501" in over.json()["message"]
        assert "limits.epochs" in over.json()["message"]
        assert c.post("/v1/models/train", json={"model": "nope"}).status_code == 422
        ids = [c.post("/v1/models/train", json={"model": "popular"}).json()["job_id"] for _ in range(2)]
        full = c.post("/v1/models/train", json={"model": "popular"})
        assert full.status_code == 429 and full.json()["error"] == "queue_full"
        assert "jobs.max_queued = 2" in full.json()["message"] and int(full.headers["Retry-After"]) >= 1
        cancelled = c.post(f"/v1/jobs/{ids[0]}/cancel")
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
        assert c.post(f"/v1/jobs/{ids[0]}/cancel").status_code == 409
        assert c.post("/v1/jobs/feedface/cancel").status_code == 404
        assert c.post("/v1/models/train", json={"model": "popular"}).status_code == 202  # room again
        assert [j["status"] for j in c.get("/v1/jobs").json()] == ["queued", "queued", "cancelled"]


def test_cli_jobs_list_show_cancel_and_worker_once(services: Services) -> None:
    runner = CliRunner()
    settings = services.settings
    first = services.jobs.submit_training("shop", "popular", {}, activate=False, actor="test")
    second = services.jobs.submit_training("shop", "popular", {}, activate=False, actor="test")
    listed = runner.invoke(jobs_cli.jobs_group, ["list", "-p", "shop", "--json"], obj=settings)
    assert listed.exit_code == 0, listed.output
    assert [j["job_id"] for j in json.loads(listed.stdout)] == [second.job_id, first.job_id]
    cancelled = runner.invoke(jobs_cli.jobs_group, ["cancel", "-p", "shop", second.job_id, "--json"], obj=settings)
    assert cancelled.exit_code == 0 and json.loads(cancelled.stdout)["status"] == "cancelled"
    ran = runner.invoke(worker_cli.worker_command, ["--once", "--id", "cli-worker"], obj=settings)
    assert ran.exit_code == 0, ran.output
    assert json.loads(ran.stdout) == {"worker": "cli-worker", "job_id": first.job_id, "platform": "shop",
                                      "status": "succeeded"}
    shown = runner.invoke(jobs_cli.jobs_group, ["show", "-p", "shop", first.job_id], obj=settings)
    job = json.loads(shown.stdout)
    assert job["status"] == "succeeded" and job["worker"] == "cli-worker" and job["result"]["model"] == "popular"
    only = runner.invoke(jobs_cli.jobs_group, ["list", "-p", "shop", "--status", "cancelled", "--json"], obj=settings)
    assert [j["job_id"] for j in json.loads(only.stdout)] == [second.job_id]
    idle = runner.invoke(worker_cli.worker_command, ["--once"], obj=settings)
    assert json.loads(idle.stdout)["job_id"] is None
    missing = runner.invoke(jobs_cli.jobs_group, ["show", "-p", "shop", "feedface"], obj=settings)
    assert missing.exit_code != 0 and "no job 'feedface'" in str(missing.exception)


def test_migration_gives_train_to_full_keys_only_and_abandons_old_jobs(tmp_path: Path) -> None:
    engine = create_db(f"sqlite:///{tmp_path / 'old.db'}")
    downgrade(engine, "0006")
    with engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO platforms (name, created_at) VALUES ('shop', 1.0)")
        audit = "INSERT INTO audit_log (platform_id, action, actor, subject, created_at) VALUES (1, ?, 'cli', ?, 1.0)"
        key = ("INSERT INTO api_keys (platform_id, key_hash, created_at, revoked, key_id, scopes) "
               "VALUES (1, ?, 1.0, 0, ?, ?)")
        conn.exec_driver_sql(audit, ("platform.create", "shop"))
        conn.exec_driver_sql(audit, ("key.create", "key_full"))  # `platform create`: right after the platform
        conn.exec_driver_sql(key, ("h1", "key_full", "read,write,admin"))
        conn.exec_driver_sql(audit, ("key.create", "key_later"))  # `platform key create`, every scope of then
        conn.exec_driver_sql(key, ("h2", "key_later", "read,write,admin"))
        conn.exec_driver_sql(key, ("h3", "key_before_scopes", "read,write,admin"))  # no audit: before 0003
        conn.exec_driver_sql(audit, ("key.create", "key_rw"))
        conn.exec_driver_sql(key, ("h4", "key_rw", "read,write"))
        conn.exec_driver_sql("INSERT INTO jobs (platform_id, job_id, kind, status, params, created_at, updated_at) "
                             "VALUES (1, 'j1', 'train', 'queued', '{}', 1.0, 1.0)")
    migrate(engine)
    assert current_revision(engine) is not None
    with engine.connect() as conn:
        scopes = dict(conn.execute(sa.select(T.api_keys.c.key_id, T.api_keys.c.scopes)).all())
        job = conn.execute(sa.select(T.jobs.c.status, T.jobs.c.error, T.jobs.c.attempts)).one()
    assert scopes == {"key_full": "read,write,admin,train", "key_later": "read,write,admin",
                      "key_before_scopes": "read,write,admin,train", "key_rw": "read,write"}
    assert job[0] == "failed" and "migration 0009" in job[1] and job[2] == 0
    downgrade(engine, "0006")
    with engine.connect() as conn:
        assert set(dict(conn.execute(sa.text("SELECT key_id, scopes FROM api_keys")).all()).values()) == {
            "read,write,admin", "read,write"}
    engine.dispose()
