"""`shoprec demo`: synthetic shops -> a fresh SQLite database through the ingest pipeline -> a summary.

The demo is a list of steps (STEPS). Each step is a function `(DemoRun) -> None` that reads what the
earlier steps left on the run (data, engine, import reports) and records its own results in
`run.summary`; a later issue adds training, evaluation or serving by appending a Step.
Progress and step messages go to stderr; the summary (a table, or JSON with --json) to stdout.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from shoprec.data.synthetic import SyntheticConfig, SyntheticData, generate
from shoprec.errors import DataError, StorageError
from shoprec.ingest.pipeline import ingest
from shoprec.ingest.report import ImportReport
from shoprec.settings import Settings
from shoprec.storage import (
    PlatformRepo,
    create_db,
    current_revision,
    describe_url,
    find_platform,
    make_engine,
    storage_errors,
)

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

DEFAULT_DB_PATH = Path("shoprec-demo.db")
BATCH_SIZE = 2000  # rows per transaction: small enough for a smooth progress bar
_SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


@dataclass(frozen=True)
class DemoOptions:
    """What `shoprec demo` was asked to do."""

    db_path: Path = DEFAULT_DB_PATH
    users: int = 500
    items: int = 300
    platforms: int = 2
    seed: int = 0
    noise: float = 0.02
    reuse: bool = False
    database: str | None = None  # the global --db: import into this database (never removed) instead of db_path
    model_dir: Path | None = None  # with `database`: where the demo's models go (the settings' model_dir)

    def synthetic_config(self) -> SyntheticConfig:
        """The generator config these options stand for (tests rebuild the same data with it)."""
        return SyntheticConfig(n_users=self.users, n_items=self.items, n_platforms=self.platforms,
                               seed=self.seed, noise_rate=self.noise)

    @property
    def database_url(self) -> str:
        return self.database or f"sqlite:///{self.db_path}"

    @property
    def models(self) -> Path:
        if self.database is not None and self.model_dir is not None:
            return self.model_dir
        return self.db_path.parent / (self.db_path.stem + "-models")


@dataclass
class DemoRun:
    """State shared by the steps of one demo run."""

    options: DemoOptions
    console: Console  # stderr
    data: SyntheticData | None = None
    engine: Engine | None = None
    imports: dict[str, ImportReport] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)

    def require_data(self) -> SyntheticData:
        if self.data is None:
            raise DataError("demo step order: the data has not been generated yet")
        return self.data

    def require_engine(self) -> Engine:
        if self.engine is None:
            raise DataError("demo step order: the database has not been created yet")
        return self.engine


@dataclass(frozen=True)
class Step:
    name: str
    description: str
    run: Callable[[DemoRun], None]


# ------------------------------------------------------------------------------ steps
def generate_step(run: DemoRun) -> None:
    """Generate the synthetic shops."""
    run.data = generate(run.options.synthetic_config())
    data = run.data
    events = sum(len(p.events) for p in data.platforms.values())
    noise = sum(len(p.noise) for p in data.platforms.values())
    run.console.print(f"generated {len(data.platforms)} platform(s), {len(data.person_ids):,} people, "
                      f"{events:,} events (+{noise:,} planted dirty events)")


def database_step(run: DemoRun) -> None:
    """Create the SQLite database (removing an earlier demo database unless --reuse) and migrate it."""
    path = run.options.db_path
    if run.options.database is not None:
        run.console.print(f"importing into {describe_url(run.options.database)} (--db: nothing is removed; "
                          "records already there are skipped as duplicates)", markup=False)
    else:
        if path.exists() and not run.options.reuse:
            _remove_demo_database(path)
            run.console.print(f"removed the previous demo database {path}")
        path.parent.mkdir(parents=True, exist_ok=True)
    run.engine = create_db(run.options.database_url)
    run.summary["database"] = describe_url(run.options.database_url)


def ingest_step(run: DemoRun) -> None:
    """Load every platform's records through the ingest pipeline, with a progress bar on stderr."""
    data, engine = run.require_data(), run.require_engine()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=run.console, transient=True) as bar:
        for name, platform in data.platforms.items():
            task = bar.add_task(f"importing {name}", total=len(platform.stream))
            run.imports[name] = ingest(engine, name, platform.records(), batch_size=BATCH_SIZE,
                                       source="synthetic", fmt="synthetic", progress=_advance(bar, task))
    for report in run.imports.values():
        run.console.print(report.render(), markup=False)


def summary_step(run: DemoRun) -> None:
    """Read back what the database holds, per platform, next to what cleaning removed."""
    data, engine = run.require_data(), run.require_engine()
    platforms: dict[str, Any] = {}
    with storage_errors(engine, "read the demo statistics"), engine.connect() as conn:
        for name in data.platforms:
            key = find_platform(conn, name)
            stats = PlatformRepo(conn, key).stats() if key is not None else {}
            report = run.imports.get(name)
            platforms[name] = {**stats, **_import_summary(report)}
    memberships: dict[str, int] = {}
    for platform in data.platforms.values():
        for user in platform.users:
            memberships[user.user_id] = memberships.get(user.user_id, 0) + 1
    run.summary["platforms"] = platforms
    run.summary["people"] = len(memberships)
    run.summary["shared_users"] = sum(1 for n in memberships.values() if n > 1)


def serve_step(run: DemoRun) -> None:
    """`shoprec demo`: train and activate itemknn per demo platform, create an API key, make a first
    recommendation through the service, and print how to serve and call the API."""
    from shoprec.service import ServingConfig, build_services

    engine = run.require_engine()
    db_url = run.options.database_url
    model_dir = run.options.models
    settings = Settings(database_url=db_url, model_dir=model_dir)
    services = build_services(settings, ServingConfig(model_poll_s=0.0), engine=engine)
    serving: dict[str, Any] = {"model_dir": str(model_dir), "platforms": {}}
    for name in run.require_data().platforms:
        trained = services.store.train(name, "itemknn", {}, activate=True, progress=run.console.print)
        key = services.platforms.create(name)
        user = run.require_data().platforms[name].users[0].user_id
        first = services.recommend.recommend(name, user, k=3)
        serving["platforms"][name] = {
            "model_id": trained.model_id, "metrics": {k: v for k, v in trained.metrics.items()
                                                         if k in ("HR@10", "NDCG@10")},
            "api_key": key, "example_user": user,
            "example_items": first.item_ids}
    services.jobs.close()
    name, info = next(iter(serving["platforms"].items()))
    serving["examples"] = [
        f"SHOPREC_DATABASE_URL={db_url} SHOPREC_MODEL_DIR={model_dir} shoprec serve --port 8000",
        f"curl -H 'X-API-Key: {info['api_key']}' "
        f"'http://127.0.0.1:8000/v1/users/{info['example_user']}/recommendations?k=5'",
        f"curl -H 'X-API-Key: {info['api_key']}' -H 'Content-Type: application/json' -X POST "
        f"http://127.0.0.1:8000/v1/events -d '[{{\"user_id\": \"{info['example_user']}\", "
        f"\"item_id\": \"{info['example_items'][0]}\", \"type\": \"view\"}}]'",
    ]
    run.summary["serving"] = serving
    run.console.print("serve the demo and call it:", markup=False)
    for line in serving["examples"]:
        run.console.print("  " + line, markup=False, soft_wrap=True)


STEPS: list[Step] = [
    Step("generate", "generate synthetic shops", generate_step),
    Step("database", "create the database", database_step),
    Step("ingest", "load the records through the ingest pipeline", ingest_step),
    Step("summary", "read back the stored data", summary_step),
    Step("serve", "train a model per platform and show example API calls", serve_step),
]


def run_demo(options: DemoOptions, console: Console | None = None, steps: Sequence[Step] | None = None
             ) -> dict[str, Any]:
    """Run the steps in order and return the summary (JSON-able); the engine is disposed at the end."""
    run = DemoRun(options, console or Console(stderr=True, highlight=False))
    seconds: dict[str, float] = {}
    run.summary = {"options": _options_dict(options), "seconds": seconds}
    try:
        for step in steps if steps is not None else STEPS:
            run.console.print(f"[bold]{step.name}[/bold]: {step.description}")
            started = time.perf_counter()
            step.run(run)
            seconds[step.name] = round(time.perf_counter() - started, 3)
    finally:
        if run.engine is not None:
            run.engine.dispose()
    return run.summary


# ------------------------------------------------------------------------------ helpers
def _remove_demo_database(path: Path) -> None:
    """Delete an earlier demo database; refuse to delete anything that is not a shoprec database."""
    if path.is_dir():
        raise DataError(f"--db-path {path} is a directory; give a file name")
    if path.stat().st_size > 0:
        engine = make_engine(f"sqlite:///{path}")
        try:
            revision = current_revision(engine)
        except StorageError:
            revision = None
        finally:
            engine.dispose()
        if revision is None:
            raise DataError(f"--db-path {path} exists and is not a shoprec database; refusing to replace it "
                            "(choose another path or remove it yourself)")
    for suffix in ("", *_SQLITE_SIDE_FILES):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def _advance(bar: Progress, task: TaskID) -> Callable[[int], None]:
    """The ingest progress callback: rows read so far -> the task's completed count."""
    return lambda rows: bar.update(task, completed=rows)


def _import_summary(report: ImportReport | None) -> dict[str, Any]:
    if report is None:
        return {}
    return {"read": report.read, "accepted": report.accepted, "removed": report.rejected, "notes": report.notes}


def _options_dict(options: DemoOptions) -> dict[str, Any]:
    return {"db_path": str(options.db_path), "users": options.users, "items": options.items,
            "platforms": options.platforms, "seed": options.seed, "noise": options.noise, "reuse": options.reuse}


def _summary_tables(summary: dict[str, Any]) -> list[Table]:
    platforms = summary.get("platforms", {})
    stored = Table("platform", "users", "items", "events", "events by type", title="stored in the database")
    removed = Table("platform", "rule", "removed", title="removed by cleaning")
    for name, s in platforms.items():
        by_type = ", ".join(f"{t} {n:,}" for t, n in s.get("events_by_type", {}).items())
        stored.add_row(name, f"{s.get('users', 0):,}", f"{s.get('items', 0):,}", f"{s.get('events', 0):,}", by_type)
        for rule, n in s.get("removed", {}).items():
            removed.add_row(name, rule, f"{n:,}")
    return [stored, removed] if removed.row_count else [stored]


def _print_summary(summary: dict[str, Any]) -> None:
    out = Console(highlight=False)
    for table in _summary_tables(summary):
        out.print(table)
    if "shared_users" in summary:
        out.print(f"{summary['people']:,} people, {summary['shared_users']:,} of them on more than one platform")
    if "database" in summary:
        out.print(f"database: {summary['database']}  (try: shoprec --db {summary['database']} stats)")


# ------------------------------------------------------------------------------ command
@click.command("demo")
@click.option("--db-path", type=click.Path(path_type=Path, dir_okay=False), default=DEFAULT_DB_PATH,
              show_default=True, help="SQLite file for the demo; replaced on each run unless --reuse.")
@click.option("--users", type=click.IntRange(min=2), default=DemoOptions.users, show_default=True,
              help="Users per platform.")
@click.option("--items", type=click.IntRange(min=12), default=DemoOptions.items, show_default=True,
              help="Items per platform.")
@click.option("--platforms", type=click.IntRange(min=1, max=26), default=DemoOptions.platforms, show_default=True,
              help="Number of shops (people overlap between them).")
@click.option("--seed", type=int, default=DemoOptions.seed, show_default=True, help="Random seed.")
@click.option("--noise", type=click.FloatRange(0.0, 1.0), default=DemoOptions.noise, show_default=True,
              help="Share of dirty events mixed in, for the cleaning rules to remove.")
@click.option("--reuse", is_flag=True, help="Keep an existing database and import into it (duplicates are skipped).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
@click.pass_context
def demo_command(ctx: click.Context, db_path: Path, users: int, items: int, platforms: int, seed: int, noise: float,
                 reuse: bool, as_json: bool) -> None:
    """Generate synthetic shops, load them into a SQLite database through the ingest pipeline, and summarise."""
    database = ctx.find_root().params.get("database_url")  # the global --db, when given
    if database and ctx.get_parameter_source("db_path") is click.core.ParameterSource.COMMANDLINE:
        raise click.UsageError("give either --db URL (import into that database) or --db-path FILE, not both")
    settings: Settings | None = ctx.obj
    options = DemoOptions(db_path=db_path, users=users, items=items, platforms=platforms, seed=seed,
                          noise=noise, reuse=reuse, database=database or None,
                          model_dir=settings.model_dir if settings is not None else None)
    summary = run_demo(options)
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        _print_summary(summary)


commands: list[click.Command] = [demo_command]
