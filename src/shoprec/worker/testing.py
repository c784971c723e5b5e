"""Run the queued jobs now, for tests and scripts: a Worker over the given services (each job still runs in its
child process, as in production).

    job = services.jobs.submit_training("shop", "popular", {}, activate=True, actor="test")
    run_queued(services)                     # -> 1
"""

from __future__ import annotations

from collections.abc import Mapping

from shoprec.service import Services
from shoprec.worker.runner import Handler, Worker


def run_queued(services: Services, *, handlers: Mapping[str, Handler] | None = None, limit: int = 100,
               worker_id: str | None = None) -> int:
    """Run queued jobs (of `handlers`' kinds) until none is left or `limit` ran; returns how many ran."""
    worker = Worker(services.settings, services, handlers=handlers, worker_id=worker_id)
    ran = 0
    while ran < limit and worker.run_once():
        ran += 1
    return ran
