"""Background jobs (model training) run by a one-thread executor in the API process; state in the jobs table."""

from __future__ import annotations

import logging
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from shoprec.errors import ShoprecError
from shoprec.service.errors import NotFound
from shoprec.service.models import ModelStore, ServedModels
from shoprec.service.platform import PlatformService
from shoprec.storage import Engine, storage_errors
from shoprec.storage.serving import ServingRepo

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Job:
    """A background job as stored (JobOut): `status` queued, running, succeeded or failed; `result` the
    training answer (without the artifact path) once it succeeded, `error` once it failed."""

    job_id: str
    kind: str
    status: str
    params: dict[str, Any] | None
    result: dict[str, Any] | None
    error: str | None
    created_at: float
    updated_at: float


class JobService:
    def __init__(self, engine: Engine, platforms: PlatformService, store: ModelStore, served: ServedModels) -> None:
        self.engine, self.platforms, self.store, self.served = engine, platforms, store, served
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shoprec-job")
        self._futures: dict[str, Future[None]] = {}

    def submit_training(self, platform: str, model: str, params: dict[str, Any], activate: bool) -> Job:
        from shoprec.models.base import create_model

        create_model(model, params)  # refuse a bad model name or parameter now, with a 4xx
        job_id = uuid.uuid4().hex
        job_params = {"model": model, "params": params, "activate": activate}
        with storage_errors(self.engine, "create a job"), self.engine.begin() as conn:
            ServingRepo(conn, self.platforms.platform_id(platform)).add_job(job_id, "train", job_params, time.time())
        self._futures[job_id] = self._executor.submit(self._run, platform, job_id, job_params)
        return self.get(platform, job_id)

    def _run(self, platform: str, job_id: str, p: dict[str, Any]) -> None:
        self._update(platform, job_id, status="running")
        try:
            result = self.store.train(platform, p["model"], p["params"], activate=p["activate"])
        except ShoprecError as exc:
            self._update(platform, job_id, status="failed", error=str(exc))
            return
        except Exception as exc:  # the job fails, the server goes on
            log.exception("job %s failed", job_id)
            self._update(platform, job_id, status="failed", error=f"{type(exc).__name__}: {exc}")
            return
        answer = result.to_json()
        answer.pop("path", None)
        self._update(platform, job_id, status="succeeded", result=answer)
        if p["activate"]:
            self.served.refresh(platform, wait=True)

    def _update(self, platform: str, job_id: str, **values: Any) -> None:
        with storage_errors(self.engine, "update a job"), self.engine.begin() as conn:
            ServingRepo(conn, self.platforms.platform_id(platform)).update_job(job_id, time.time(), **values)

    def get(self, platform: str, job_id: str) -> Job:
        with storage_errors(self.engine, "read a job"), self.engine.connect() as conn:
            job = ServingRepo(conn, self.platforms.platform_id(platform)).get_job(job_id)
        if job is None:
            raise NotFound(f"no job {job_id!r} on platform {platform!r}")
        return Job(job["job_id"], job["kind"], job["status"], job["params"], job["result"], job["error"],
                   job["created_at"], job["updated_at"])

    def wait(self, job_id: str, timeout: float | None = None) -> None:
        """Block until the job has finished (tests and the CLI)."""
        future = self._futures.get(job_id)
        if future is not None:
            future.result(timeout=timeout)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
