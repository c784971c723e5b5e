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
@click.option("--metrics-port", type=click.IntRange(1, 65535), default=None,
              help="Serve this worker's Prometheus metrics (jobs, training, gate decisions) on this port.")
@click.option("--metrics-host", default="127.0.0.1", show_default=True)
@click.pass_obj
def worker_command(settings: Settings, worker_id: str | None, once: bool, metrics_port: int | None,
                   metrics_host: str) -> None:
    """Run queued jobs until stopped (SIGTERM / Ctrl-C), or one job with --once."""
    from shoprec.cli.serve import check_deployment
    from shoprec.worker import Worker, worker_process

    check_deployment(settings)  # a bad database or artifact store: one clear error, not a traceback
    if metrics_port is not None:
        from prometheus_client import start_http_server

        from shoprec.service import telemetry

        start_http_server(metrics_port, addr=metrics_host, registry=telemetry.REGISTRY)
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
