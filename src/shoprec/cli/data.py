"""`shoprec import` and `shoprec stats`: files into the database through the ingest pipeline, and counts.

Human reports and the progress bar go to stderr; `--json` output goes to stdout alone.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from shoprec.cli._common import emit_json, json_options, platform_option
from shoprec.datasets import FORMATS, read_records
from shoprec.errors import DataError
from shoprec.ingest.pipeline import DEFAULT_BATCH_SIZE, SOURCE_ERRORS
from shoprec.ingest.report import ImportReport
from shoprec.service.file_import import BATCH_SIZE, ingest_file
from shoprec.settings import Settings
from shoprec.storage import PlatformRepo, create_db, find_platform, list_platforms, storage_errors


def _stderr() -> Console:
    return Console(stderr=True, highlight=False)


def count_lines(path: Path, limit_bytes: int = 8 << 30, gz_limit_bytes: int = 1 << 30) -> int | None:
    """The number of lines of a file (the rows an import will read, give or take a header), or None when
    unknown: a directory, or a file over `limit_bytes` (counting is ~1 GB/s). A .gz file is counted through
    its decompressed stream (~300 MB/s) when it is at most `gz_limit_bytes` compressed."""
    if not path.is_file():
        return None
    size = path.stat().st_size
    gz = path.suffix == ".gz"
    if size > (gz_limit_bytes if gz else limit_bytes):
        return None
    lines, last = 0, b"\n"
    try:
        with gzip.open(path, "rb") if gz else path.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                lines += chunk.count(b"\n")
                last = chunk[-1:]
    except (OSError, EOFError, zlib.error):  # a damaged archive: the import itself says what is wrong
        return None
    return lines + (last != b"\n")


@contextmanager
def _progress(label: str, total: int | None, enabled: bool = True) -> Iterator[Callable[[int], None]]:
    """A rich progress line on stderr counting rows, with a percentage and ETA when `total` is known; off when
    stderr is not a terminal or not `enabled` (--quiet). Yields the callback for `ingest`."""
    console = _stderr()
    if total:
        columns: tuple[Any, ...] = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                                    TextColumn("{task.completed:,}/{task.total:,} rows"), TimeElapsedColumn(),
                                    TextColumn("ETA"), TimeRemainingColumn())
    else:
        columns = (SpinnerColumn(), TextColumn("{task.description}"), TextColumn("{task.completed:,} rows"),
                   TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True, disable=not (enabled and console.is_terminal)) as bar:
        task = bar.add_task(label, total=total)
        yield lambda rows: bar.update(task, completed=min(rows, total) if total else rows)


def _check_source(path: Path, fmt: str) -> None:
    if fmt not in FORMATS:
        raise DataError(f"unknown format {fmt!r} (valid: {', '.join(FORMATS)})")
    if not path.exists():
        raise DataError(f"{path}: no such file or directory")


@click.command("import")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--format", "-f", "fmt", required=True, metavar="FORMAT", help=f"Input format: {', '.join(FORMATS)}.")
@platform_option(help="Platform (shop) the data belongs to; created if missing.")
@json_options("the import report")
@click.option("--report-json", type=click.Path(path_type=Path, dir_okay=False), hidden=True,
              help="Deprecated: --output FILE.")
@click.option("--batch-size", type=click.IntRange(min=1), default=None,
              help=f"Rows per transaction [default: {BATCH_SIZE:,} for an events-csv file the fast path reads, "
                   f"{DEFAULT_BATCH_SIZE:,} otherwise].")
@click.option("--no-clean", is_flag=True, help="Skip the cleaning rules (the pipeline's own checks still run).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar (it is shown only on a terminal anyway).")
@click.pass_obj
def import_command(settings: Settings, path: Path, fmt: str, platform: str, as_json: bool, output: Path | None,
                   report_json: Path | None, batch_size: int | None, no_clean: bool, quiet: bool) -> None:
    """Import PATH (a file or dataset directory) of format FORMAT into platform PLATFORM.

    Importing the same data again adds nothing (exact duplicate events are rejected as `duplicate`).
    Exits non-zero only when nothing could be imported.
    """
    from shoprec.privacy import Privacy

    _check_source(path, fmt)
    if report_json is not None:
        click.echo(f"note: --report-json is deprecated; use --output {report_json}", err=True)
        output = output or report_json
    total = None if quiet else count_lines(path)
    engine = create_db(settings.database_url)
    try:
        try:
            records = read_records(fmt, path)
        except SOURCE_ERRORS as exc:
            raise DataError(f"{path}: cannot read it as {fmt}: {exc}") from None
        with _progress(f"importing {path.name}", total, enabled=not quiet) as update:
            # the columnar fast path where the format allows it, the record path otherwise (same report and rows)
            report = ingest_file(engine, platform, fmt, path, records, cleaning=False if no_clean else None,
                                 batch_size=batch_size, progress=update, source=str(path),
                                 privacy=Privacy.from_settings(settings))  # pseudonymised ids, identity hashes
    finally:
        engine.dispose()
    click.echo(report.render(), err=True)
    emit_json(report.to_dict(), as_json, output)
    if not report.ok:
        raise DataError(_nothing_imported(report, path))


def _nothing_imported(report: ImportReport, path: Path) -> str:
    if report.read == 0:
        return f"nothing imported: no rows read from {path}"
    reasons = ", ".join(f"{reason} {n:,}" for reason, n in sorted(report.rejected.items(), key=lambda kv: -kv[1]))
    first = next(iter(report.cleaning.rules.values())).examples[:1] if report.cleaning.rules else []
    example = f"; first: {first[0]}" if first else ""
    return f"nothing imported from {path}: all {report.read:,} rows were rejected ({reasons}){example}"


@click.command("stats")
@platform_option(required=False, help="One platform (default: every platform).")
@json_options("the counts")
@click.pass_obj
def stats_command(settings: Settings, platform: str | None, as_json: bool, output: Path | None) -> None:
    """Counts of users, items and events (by type) of a platform, or of every platform."""
    engine = create_db(settings.database_url)
    try:
        with storage_errors(engine, "read statistics"), engine.connect() as conn:
            result = _platform_stats(conn, platform) if platform else {
                "platforms": {name: PlatformRepo(conn, key).stats() for name, key in list_platforms(conn).items()}}
    finally:
        engine.dispose()
    if emit_json(result, as_json, output):
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
