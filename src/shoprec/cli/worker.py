"""`shoprec worker`: run durable jobs (training) from the database queue, and the periodic tasks.

Start as many as you like, on any machines that reach the database: each runs one job at a time, at most one
job runs per platform. SIGTERM / Ctrl-C stops it; the job in flight goes back to the queue. Logs go to stderr.
"""

from __future__ import annotations

import json

import click

from shoprec.settings import Settings


@click.command("worker")
@click.option("--id", "worker_id", default=None, help="This worker's name in the jobs table (default host:pid:random).")
@click.option("--once", is_flag=True, help='Run at most one job, print {"worker", "job_id", "status"} and exit.')
@click.pass_obj
def worker_command(settings: Settings, worker_id: str | None, once: bool) -> None:
    """Run queued jobs until stopped (SIGTERM / Ctrl-C), or one job with --once."""
    from shoprec.worker import Worker, worker_process

    if not once:
        worker_process(settings, worker_id=worker_id)
        return
    worker = Worker(settings, worker_id=worker_id)
    try:
        ran = worker.run_once()
        job = worker.last_job
        click.echo(json.dumps({"worker": worker.worker_id, "job_id": job.job_id if ran and job else None,
                               "platform": job.platform if ran and job else None,
                               "status": worker.last_status if ran else None}))
    finally:
        worker.close()


commands = [worker_command]
