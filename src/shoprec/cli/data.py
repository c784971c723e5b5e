"""`shoprec import` and `shoprec stats`: files into the database through the ingest pipeline, and counts.

Human reports and the progress bar go to stderr; `--json` output goes to stdout alone.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from shoprec.datasets import FORMATS, read_records
from shoprec.errors import DataError
from shoprec.ingest.pipeline import DEFAULT_BATCH_SIZE, SOURCE_ERRORS, ingest
from shoprec.ingest.report import ImportReport
from shoprec.settings import Settings
from shoprec.storage import PlatformRepo, create_db, find_platform, list_platforms, storage_errors


def _stderr() -> Console:
    return Console(stderr=True, highlight=False)


@contextmanager
def _progress(label: str) -> Iterator[Callable[[int], None]]:
    """A rich progress line on stderr counting rows; yields the callback for `ingest`."""
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TextColumn("{task.completed:,} rows"),
               TimeElapsedColumn())
    with Progress(*columns, console=_stderr(), transient=True) as bar:
        task = bar.add_task(label, total=None)
        yield lambda rows: bar.update(task, completed=rows)


def _check_source(path: Path, fmt: str) -> None:
    if fmt not in FORMATS:
        raise DataError(f"unknown format {fmt!r} (valid: {', '.join(FORMATS)})")
    if not path.exists():
        raise DataError(f"{path}: no such file or directory")


@click.command("import")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--format", "-f", "fmt", required=True, metavar="FORMAT", help=f"Input format: {', '.join(FORMATS)}.")
@click.option("--platform", "-p", required=True, help="Platform (shop) the data belongs to; created if missing.")
@click.option("--report-json", type=click.Path(path_type=Path, dir_okay=False), help="Write the JSON report here.")
@click.option("--json", "as_json", is_flag=True, help="Print the JSON report on stdout.")
@click.option("--batch-size", type=click.IntRange(min=1), default=DEFAULT_BATCH_SIZE, show_default=True,
              help="Rows per transaction.")
@click.option("--no-clean", is_flag=True, help="Skip the cleaning rules (the pipeline's own checks still run).")
@click.pass_obj
def import_command(settings: Settings, path: Path, fmt: str, platform: str, report_json: Path | None,
                   as_json: bool, batch_size: int, no_clean: bool) -> None:
    """Import PATH (a file or dataset directory) of format FORMAT into platform PLATFORM.

    Importing the same data again adds nothing (exact duplicate events are rejected as `duplicate`).
    Exits non-zero only when nothing could be imported.
    """
    from shoprec.privacy import Privacy

    _check_source(path, fmt)
    engine = create_db(settings.database_url)
    try:
        try:
            records = read_records(fmt, path)
        except SOURCE_ERRORS as exc:
            raise DataError(f"{path}: cannot read it as {fmt}: {exc}") from None
        with _progress(f"importing {path.name}") as update:
            report = ingest(engine, platform, records, cleaning=False if no_clean else None, batch_size=batch_size,
                            progress=update, source=str(path), fmt=fmt,
                            privacy=Privacy.from_settings(settings))  # pseudonymised ids, identity hashes
    finally:
        engine.dispose()
    click.echo(report.render(), err=True)
    _emit(report, report_json, as_json)
    if not report.ok:
        raise DataError(_nothing_imported(report, path))


def _emit(report: ImportReport, report_json: Path | None, as_json: bool) -> None:
    text = json.dumps(report.to_dict(), indent=2)
    if report_json is not None:
        try:
            report_json.write_text(text + "\n", encoding="utf-8")
        except OSError as exc:
            raise DataError(f"cannot write the report to {report_json}: {exc.strerror}") from None
    if as_json:
        click.echo(text)


def _nothing_imported(report: ImportReport, path: Path) -> str:
    if report.read == 0:
        return f"nothing imported: no rows read from {path}"
    reasons = ", ".join(f"{reason} {n:,}" for reason, n in sorted(report.rejected.items(), key=lambda kv: -kv[1]))
    first = next(iter(report.cleaning.rules.values())).examples[:1] if report.cleaning.rules else []
    example = f"; first: {first[0]}" if first else ""
    return f"nothing imported from {path}: all {report.read:,} rows were rejected ({reasons}){example}"


@click.command("stats")
@click.option("--platform", "-p", default=None, help="One platform (default: every platform).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON on stdout.")
@click.pass_obj
def stats_command(settings: Settings, platform: str | None, as_json: bool) -> None:
    """Counts of users, items and events (by type) of a platform, or of every platform."""
    engine = create_db(settings.database_url)
    try:
        with storage_errors(engine, "read statistics"), engine.connect() as conn:
            result = _platform_stats(conn, platform) if platform else {
                "platforms": {name: PlatformRepo(conn, key).stats() for name, key in list_platforms(conn).items()}}
    finally:
        engine.dispose()
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    per = {platform: result} if platform else result["platforms"]
    Console(highlight=False).print(_stats_table(per))


def _platform_stats(conn: Any, platform: str) -> dict[str, Any]:
    key = find_platform(conn, platform)
    if key is None:
        known = ", ".join(list_platforms(conn)) or "none yet"
        raise DataError(f"unknown platform {platform!r} (known: {known})")
    return PlatformRepo(conn, key).stats()


def _stats_table(per: dict[str, dict[str, Any]]) -> Table:
    table = Table("platform", "users", "items", "events", "events by type")
    for name, s in per.items():
        by_type = ", ".join(f"{t} {n:,}" for t, n in s["events_by_type"].items())
        table.add_row(name, f"{s['users']:,}", f"{s['items']:,}", f"{s['events']:,}", by_type)
    return table


commands: list[click.Command] = [import_command, stats_command]
