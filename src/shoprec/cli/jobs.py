"""`shoprec jobs list|show|cancel`: the durable job queue of a platform (JSON on stdout with --json)."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import TYPE_CHECKING

import click

from shoprec.settings import Settings

if TYPE_CHECKING:
    from shoprec.service.jobs import Job, JobService


def _service(settings: Settings) -> JobService:
    from shoprec.service import build_services

    return build_services(settings, settings.serving).jobs


def _when(ts: float | None) -> str:
    import datetime as dt

    return "" if ts is None else dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _line(job: Job) -> str:
    model = (job.params or {}).get("model", "") if job.kind == "train" else ""
    return (f"{job.job_id}  {job.kind:<6} {model:<12} {job.status:<10} attempts={job.attempts}  "
            f"created {_when(job.created_at)}  {job.worker or ''}  {job.error or ''}").rstrip()


@click.group("jobs")
def jobs_group() -> None:
    """A platform's jobs: list, show one, cancel one (queued: at once; running: its worker stops it)."""


@jobs_group.command("list")
@click.option("--platform", "-p", required=True)
@click.option("--status", default=None, help="Only these statuses, comma-separated (queued, running, succeeded, "
                                             "failed, cancelled).")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 1000))
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list on stdout.")
@click.pass_obj
def jobs_list(settings: Settings, platform: str, status: str | None, limit: int, as_json: bool) -> None:
    """PLATFORM's newest jobs, newest first."""
    found = _service(settings).list_jobs(platform, status, limit)
    if as_json:
        click.echo(json.dumps([asdict(j) for j in found]))
        return
    for job in found:
        click.echo(_line(job))


@jobs_group.command("show")
@click.option("--platform", "-p", required=True)
@click.argument("job_id")
@click.pass_obj
def jobs_show(settings: Settings, platform: str, job_id: str) -> None:
    """One job as JSON (params, result, error, attempts, worker, times)."""
    click.echo(json.dumps(asdict(_service(settings).get(platform, job_id)), indent=2))


@jobs_group.command("cancel")
@click.option("--platform", "-p", required=True)
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="Print the job as JSON on stdout.")
@click.pass_obj
def jobs_cancel(settings: Settings, platform: str, job_id: str, as_json: bool) -> None:
    """Cancel JOB_ID: a queued job is cancelled at once, a running one is stopped by its worker."""
    job = _service(settings).cancel(platform, job_id, actor="cli")
    if as_json:
        click.echo(json.dumps(asdict(job)))
    elif job.status == "cancelled":
        click.echo(f"job {job_id} cancelled", err=True)
    else:
        click.echo(f"job {job_id} is running: its worker stops it within a few seconds", err=True)


commands = [jobs_group]
