"""`shoprec export-recommendations`: every (or the listed) user's top-k of a platform, to Parquet or CSV.

Thin over shoprec.service.export (the serving path in batches; resumable; no exposure logged). The result's
JSON goes to stdout, a progress bar to stderr.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from shoprec.cli._common import platform_option
from shoprec.settings import Settings


@click.command("export-recommendations")
@platform_option(help="Platform whose users to export.")
@click.option("--k", "-k", "k", type=int, default=10, show_default=True, help="Items per user (1..serving max_k).")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="Output file: FILE.parquet or FILE.csv. Run again with the same FILE to continue a stopped "
                   "export.")
@click.option("--users", "users_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              metavar="FILE", help="Only these users: one user id per line (default: every user of the platform).")
@click.option("--fresh", is_flag=True, help="Start over instead of continuing a stopped export to FILE.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.option("--job", is_flag=True,
              help="Queue an `export` job for a worker instead: it writes <model_dir>/exports/PLATFORM/<FILE's name> "
                   "on the worker's disk (FILE names only the file name and format); prints the job.")
@click.pass_obj
def export_command(settings: Settings, platform: str, k: int, out: Path, users_file: Path | None, fresh: bool,
                   quiet: bool, job: bool) -> None:
    """Write the top-k recommendations of PLATFORM's users to FILE, as GET /v1/recommendations ranks them
    (the active model, else popularity; purchased, disliked and seen items left out) without logging them.

    Columns: user_id, rank, item_id, score, reason, level. Prints {"path", "users", "rows", ...} on stdout.
    """
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from shoprec.service import build_services
    from shoprec.service.export import export_recommendations, output_format, read_user_file

    output_format(out)  # a wrong suffix fails before the database is opened
    users = read_user_file(users_file) if users_file is not None else None
    console = Console(stderr=True, highlight=False)
    services = build_services(settings, settings.serving)
    if job:
        try:
            params = {"k": k, "format": output_format(out), "name": out.stem, **({"users": users} if users else {})}
            queued = services.jobs.submit(platform, "export", params, actor="cli")
        finally:
            services.close()
        click.echo(json.dumps({"job_id": queued.job_id, "kind": queued.kind, "status": queued.status}, indent=2))
        return
    try:
        columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                   TextColumn("{task.completed:,}/{task.total:,} users"), TimeElapsedColumn(), TextColumn("ETA"),
                   TimeRemainingColumn())
        with Progress(*columns, console=console, transient=True,
                      disable=quiet or not console.is_terminal) as bar:
            task = bar.add_task("exporting", total=None)
            result = export_recommendations(services, platform, k, out, users=users, fresh=fresh,
                                            progress=lambda done, total: bar.update(task, completed=done,
                                                                                    total=total))
    finally:
        services.close()
    if result.resumed_users:
        click.echo(f"continued after {result.resumed_users:,} users exported earlier", err=True)
    if result.model is None:
        click.echo(f"note: platform {platform!r} has no active model: the lists are popularity", err=True)
    click.echo(f"wrote {result.rows:,} rows for {result.users:,} users to {out} in {result.seconds:.1f} s", err=True)
    click.echo(json.dumps(result.to_json(), indent=2))


commands: list[click.Command] = [export_command]
