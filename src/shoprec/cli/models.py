"""`shoprec models list|show|activate`: a platform's stored models (trained with `shoprec train`).

Thin over shoprec.service.models.ModelStore: `activate` goes through ModelStore.activate, which loads the model
first and refuses one that cannot be loaded (nothing changes then). JSON on stdout, messages on stderr.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from shoprec.cli._common import emit_json, json_options, platform_option
from shoprec.settings import Settings

if TYPE_CHECKING:
    from shoprec.service.models import ModelStore


@contextmanager
def _store(settings: Settings) -> Iterator[ModelStore]:
    from shoprec.service.artifacts import open_artifact_store
    from shoprec.service.cache import LocalCache
    from shoprec.service.models import ModelStore
    from shoprec.service.platform import PlatformService
    from shoprec.storage import create_db

    engine = create_db(settings.database_url)
    try:
        yield ModelStore(engine, PlatformService(engine, LocalCache()), open_artifact_store(settings, engine))
    finally:
        engine.dispose()


def _headline(metrics: dict[str, Any] | None) -> str:
    shown = {k: v for k, v in (metrics or {}).items() if k.split("@")[0] in ("NDCG", "HR") and isinstance(v, float)}
    return ", ".join(f"{k} {v:.4f}" for k, v in list(shown.items())[:2]) or "-"


@click.group("models")
def models_group() -> None:
    """A platform's stored models: list them, show one, activate one (train new ones with `shoprec train`)."""


@models_group.command("list")
@platform_option()
@json_options("the models")
@click.pass_obj
def models_list(settings: Settings, platform: str, as_json: bool, output: Path | None) -> None:
    """PLATFORM's models, oldest first: id, model name, created, active or not, headline metrics."""
    with _store(settings) as store:
        models = store.list_models(platform)
    if emit_json([asdict(m) for m in models], as_json, output):
        return
    if not models:
        click.echo(f"platform {platform!r} has no model yet (train one: shoprec train -p {platform} -m MODEL)",
                   err=True)
        return
    for m in models:
        when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(m.created_at))
        click.echo(f"{m.model_id}  {m.name:<12} {when}  {'active' if m.active else '      '}  {_headline(m.metrics)}")


@models_group.command("show")
@platform_option()
@click.argument("model_id")
@click.pass_obj
def models_show(settings: Settings, platform: str, model_id: str) -> None:
    """Model MODEL_ID of PLATFORM as JSON: its name, configuration, metrics, active or not, dates."""
    from shoprec.service.errors import NotFound

    with _store(settings) as store:
        found = next((m for m in store.list_models(platform) if m.model_id == model_id), None)
    if found is None:
        raise NotFound(f"no model {model_id!r} on platform {platform!r} (see `shoprec models list -p {platform}`)")
    click.echo(json.dumps(asdict(found), indent=2, default=str))


@models_group.command("activate")
@platform_option()
@click.argument("model_id")
@click.option("--json", "as_json", is_flag=True, help='Print {"platform", "model_id", "active": true} on stdout.')
@click.pass_obj
def models_activate(settings: Settings, platform: str, model_id: str, as_json: bool) -> None:
    """Serve MODEL_ID for PLATFORM (servers switch within a second). The model is loaded first: one that cannot
    be loaded is refused and the current model stays."""
    with _store(settings) as store:
        store.activate(platform, model_id, actor="cli")
    if as_json:
        click.echo(json.dumps({"platform": platform, "model_id": model_id, "active": True}))
    else:
        click.echo(f"model {model_id} is now the active model of platform {platform!r}", err=True)


commands: list[click.Command] = [models_group]
