"""`shoprec serve` (the REST API under uvicorn), `shoprec platform create|list` (platforms, a new one with its
API key), `shoprec platform key create|list|revoke|rotate`. (`shoprec train` is in cli/train.py.)
Thin over shoprec.service; heavy imports are inside the commands so that `shoprec --help` stays fast.
JSON goes to stdout, progress to stderr.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from shoprec.cli._common import emit_json, json_options, platform_option
from shoprec.settings import Settings

if TYPE_CHECKING:
    from shoprec.service.platform import PlatformService


def _stderr(message: str) -> None:
    click.echo(message, err=True)


@click.group("platform")
def platform_group() -> None:
    """Platforms (shops) and their API keys."""


@platform_group.command("create")
@click.argument("name")
@click.option("--if-not-exists", is_flag=True,
              help="When NAME exists already: do nothing and exit 0 (with --json: print its state, no key).")
@click.option("--json", "as_json", is_flag=True, help='Print {"platform": NAME, "api_key": KEY} on stdout.')
@click.pass_obj
def platform_create(settings: Settings, name: str, if_not_exists: bool, as_json: bool) -> None:
    """Create platform NAME and print its API key (every scope; stored hashed: shown once). An existing NAME is
    an error (another key: `shoprec platform key create -p NAME`), or nothing to do with --if-not-exists."""
    from shoprec.service.cache import LocalCache
    from shoprec.service.errors import Conflict
    from shoprec.service.platform import PlatformService
    from shoprec.storage import create_db, find_platform, storage_errors

    engine = create_db(settings.database_url)
    try:
        with storage_errors(engine, f"find platform {name!r}"), engine.connect() as conn:
            exists = find_platform(conn, name) is not None
        if exists:
            if not if_not_exists:
                raise Conflict(f"platform {name!r} exists; for another key use `shoprec platform key create -p "
                               f"{name}` (or pass --if-not-exists)")
            _stderr(f"platform {name!r} exists already; nothing created")
            if as_json:
                click.echo(json.dumps({"platform": name, "created": False, **_overview(engine, [name])[0]}))
            return
        key = PlatformService(engine, LocalCache()).create(name)
    finally:
        engine.dispose()
    if as_json:
        click.echo(json.dumps({"platform": name, "api_key": key}))
    else:
        _stderr(f"platform {name!r} created; its API key (shown once, send it as X-API-Key):")
        click.echo(key)


def _overview(engine: Any, names: list[str] | None = None) -> list[dict[str, Any]]:
    """Per platform: name, created_at, users/items/events counts, keys (active / revoked) and the active model."""
    from shoprec.storage import PlatformRepo, list_platforms, platform_created, storage_errors
    from shoprec.storage.serving import ServingRepo

    out = []
    with storage_errors(engine, "list platforms"), engine.connect() as conn:
        created = platform_created(conn)
        for name, key in list_platforms(conn).items():
            if names is not None and name not in names:
                continue
            repo, serving = PlatformRepo(conn, key), ServingRepo(conn, key)
            keys = serving.list_api_keys()
            active = serving.active_model()
            out.append({"platform": name, "created_at": created.get(name), "users": repo.count_users(),
                        "items": repo.count_items(), "events": repo.count_events(),
                        "keys": {"active": sum(not k["revoked"] for k in keys),
                                 "revoked": sum(bool(k["revoked"]) for k in keys)},
                        "active_model": None if active is None else {"model_id": active[0], "model": active[1]},
                        "models": len(serving.list_models())})
    return out


@platform_group.command("list")
@json_options("the platforms")
@click.pass_obj
def platform_list(settings: Settings, as_json: bool, output: Path | None) -> None:
    """Every platform: when it was created, its users, items and events, its API keys and its active model."""
    from rich.console import Console
    from rich.table import Table

    from shoprec.storage import create_db

    engine = create_db(settings.database_url)
    try:
        rows = _overview(engine)
    finally:
        engine.dispose()
    if emit_json(rows, as_json, output):
        return
    if not rows:
        _stderr("no platform yet (create one: shoprec platform create NAME)")
        return
    table = Table("platform", "created (UTC)", "users", "items", "events", "keys", "active model")
    for r in rows:
        when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(r["created_at"])) if r["created_at"] else "-"
        keys = f"{r['keys']['active']}" + (f" (+{r['keys']['revoked']} revoked)" if r["keys"]["revoked"] else "")
        model = f"{r['active_model']['model']} {r['active_model']['model_id']}" if r["active_model"] else "-"
        table.add_row(r["platform"], when, f"{r['users']:,}", f"{r['items']:,}", f"{r['events']:,}", keys, model)
    Console(highlight=False).print(table)


@platform_group.group("key")
def key_group() -> None:
    """A platform's API keys: create (with scopes), list, revoke, rotate (a new key with the same scopes,
    then the old one revoked). Every change is written to the audit log."""


def _platform_service(settings: Settings) -> PlatformService:
    from shoprec.service.cache import LocalCache
    from shoprec.service.platform import PlatformService
    from shoprec.storage import create_db

    return PlatformService(create_db(settings.database_url), LocalCache())


@key_group.command("create")
@platform_option(help="The (existing) platform the key acts on.")
@click.option("--scopes", default="read,write,admin", show_default=True,
              help="Comma-separated scopes: read (GET), write (other methods), train (training jobs, retraining), "
                   "admin (keys, audit log), events (POST /v1/events only: the browser tracker's key).")
@click.option("--name", default=None, help="A label to recognise the key by (at most 64 characters).")
@click.option("--json", "as_json", is_flag=True, help="Print the new key as JSON on stdout.")
@click.pass_obj
def key_create(settings: Settings, platform: str, scopes: str, name: str | None, as_json: bool) -> None:
    """Create an API key for PLATFORM and print it (stored hashed: shown once)."""
    service = _platform_service(settings)
    try:
        new = service.create_key(platform, scopes, name, actor="cli")
    finally:
        service.engine.dispose()
    if as_json:
        click.echo(json.dumps({"platform": new.platform, "key_id": new.key_id, "api_key": new.key,
                               "scopes": list(new.scopes), "name": new.name, "created_at": new.created_at}))
    else:
        _stderr(f"key {new.key_id} ({','.join(new.scopes)}) created for platform {platform!r}; "
                "the key (shown once, send it as X-API-Key):")
        click.echo(new.key)


@key_group.command("revoke")
@platform_option()
@click.argument("key_id")
@click.option("--json", "as_json", is_flag=True, help='Print {"platform", "key_id", "revoked": true} on stdout.')
@click.pass_obj
def key_revoke(settings: Settings, platform: str, key_id: str, as_json: bool) -> None:
    """Revoke key KEY_ID (e.g. key_0123abcd...) of PLATFORM: refused by every server within 1 s."""
    service = _platform_service(settings)
    try:
        service.revoke_key(platform, key_id, actor="cli")
    finally:
        service.engine.dispose()
    if as_json:
        click.echo(json.dumps({"platform": platform, "key_id": key_id, "revoked": True}))
    else:
        _stderr(f"key {key_id} of platform {platform!r} revoked")


@key_group.command("rotate")
@platform_option()
@click.argument("key_id")
@click.option("--json", "as_json", is_flag=True, help="Print the new key as JSON on stdout.")
@click.pass_obj
def key_rotate(settings: Settings, platform: str, key_id: str, as_json: bool) -> None:
    """Replace KEY_ID by a new key with the same scopes and name (printed once), then revoke KEY_ID."""
    service = _platform_service(settings)
    try:
        new = service.rotate_key(platform, key_id, actor="cli")
    finally:
        service.engine.dispose()
    if as_json:
        click.echo(json.dumps({"platform": new.platform, "key_id": new.key_id, "api_key": new.key,
                               "scopes": list(new.scopes), "name": new.name, "replaces": key_id}))
    else:
        _stderr(f"key {key_id} revoked; its replacement {new.key_id} (shown once):")
        click.echo(new.key)


@key_group.command("list")
@platform_option()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list on stdout.")
@click.pass_obj
def key_list(settings: Settings, platform: str, as_json: bool) -> None:
    """List PLATFORM's keys (ids, names, scopes, revoked or not; never the keys themselves)."""
    service = _platform_service(settings)
    try:
        keys = service.list_keys(platform)
    finally:
        service.engine.dispose()
    if as_json:
        click.echo(json.dumps([asdict(k) for k in keys]))
        return
    for k in keys:
        state = "revoked" if k.revoked else "active"
        click.echo(f"{k.key_id}  {','.join(k.scopes):<16}  {state:<7}  {k.name or ''}")


def check_deployment(settings: Settings) -> None:
    """Migrate the database and open the artifact store: a bad database URL or an unreachable store is one clear
    error here, before any worker process starts."""
    from shoprec.service.artifacts import open_artifact_store
    from shoprec.storage import create_db

    engine = create_db(settings.database_url)
    try:
        open_artifact_store(settings, engine)
    finally:
        engine.dispose()


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="API worker processes (set SHOPREC_REDIS_URL so that they share histories and caches).")
@click.option("--log-level", default=None, type=click.Choice(["critical", "error", "warning", "info", "debug"]),
              help="[logging] level (default: the setting, warning; info with -v).")
@click.option("--access-log/--no-access-log", default=None,
              help="One log line per request ([logging] access_log).")
@click.pass_context
def serve_command(ctx: click.Context, host: str, port: int, workers: int, log_level: str | None,
                  access_log: bool | None) -> None:
    """Serve the REST API (OpenAPI docs at /docs); each worker loads every platform's active model. It never
    trains: on SQLite it starts one job worker beside the API (jobs.embedded_worker), else run `shoprec worker`.

    A supervisor process starts the workers, restarts one that dies, and stops them all on SIGTERM (requests in
    flight are answered first); the workers exit if the supervisor dies."""
    from shoprec.api.workers import Supervisor
    from shoprec.logs import configure_logging

    settings: Settings = ctx.obj
    verbose = bool(ctx.find_root().params.get("verbose"))
    logs = settings.logging
    if log_level is None and verbose and logs.level in ("critical", "error", "warning"):
        log_level = "info"
    level: Any = log_level or logs.level  # one of the click choices: LogSettings' Literal
    logs = replace(logs, level=level,
                   access_log=logs.access_log if access_log is None else access_log)
    settings = replace(settings, logging=logs)
    configure_logging(settings.logging)
    check_deployment(settings)  # migrate once, and refuse an unusable artifact store, before the workers start
    if workers > 1 and not settings.redis_url:
        _stderr("note: without SHOPREC_REDIS_URL each worker caches on its own (changes are seen within 0.5 s)")
    extra = []
    if settings.embedded and settings.jobs.embedded_worker:  # SQLite: one machine, one command does everything
        from shoprec.api.workers import Child
        from shoprec.worker import worker_process

        extra.append(Child("shoprec-job-worker", worker_process, (settings,)))
    supervisor = Supervisor(settings, host, port, workers, extra)  # the settings travel to the children
    _stderr(f"shoprec API on http://{host}:{port} (docs: http://{host}:{port}/docs), {workers} worker(s)"
            + (" and a job worker" if extra else " (training jobs: run `shoprec worker`)"))
    if supervisor.run():
        raise click.ClickException("a worker failed to start (see the messages above)")


commands: list[click.Command] = [platform_group, serve_command]
