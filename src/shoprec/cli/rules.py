"""`shoprec rules show|set|clear --platform P`: a platform's saved default business rules (the same rules a
request can carry; docs/serving.md, Business rules). Thin over shoprec.service.rules; JSON to stdout.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import click

from shoprec.settings import Settings

if TYPE_CHECKING:
    from shoprec.service.rules import RulesService


@contextmanager
def _rules(settings: Settings) -> Iterator[RulesService]:
    """A RulesService over the settings' database (no server; this process's catalog view checks pins)."""
    from shoprec.service.cache import LocalCache
    from shoprec.service.catalog import CatalogViews
    from shoprec.service.platform import PlatformService
    from shoprec.service.rules import RulesService
    from shoprec.storage import create_db

    engine = create_db(settings.database_url)
    try:
        platforms = PlatformService(engine, LocalCache())
        yield RulesService(engine, platforms, CatalogViews(engine, platforms, 0.0), 0.0)
    finally:
        engine.dispose()


@click.group("rules")
def rules_group() -> None:
    """A platform's saved default business rules: show, set, clear."""


@rules_group.command("show")
@click.option("--platform", "-p", required=True, help="The platform.")
@click.pass_obj
def show_command(settings: Settings, platform: str) -> None:
    """Print the platform's saved rules as JSON (empty when none)."""
    with _rules(settings) as service:
        click.echo(json.dumps(service.get(platform).to_json(), indent=2))


@rules_group.command("set")
@click.option("--platform", "-p", required=True, help="The platform.")
@click.option("--filter", "filter_", default=None, help='Only items matching, e.g. \'category in ["Makeup"]\'.')
@click.option("--boost", multiple=True, help='EXPRESSION: WEIGHT (repeatable), e.g. \'brand == "Acme": 0.3\'.')
@click.option("--pin", multiple=True, help="ITEM_ID:POSITION (repeatable; positions from 1).")
@click.option("--max-per-category", type=int, default=None, help="At most this many items per category.")
@click.option("--max-per-brand", type=int, default=None, help="At most this many items per brand.")
@click.option("--diversity", type=float, default=None, help="MMR diversity weight, 0 (off) to 1.")
@click.pass_obj
def set_command(settings: Settings, platform: str, filter_: str | None, boost: tuple[str, ...],
                pin: tuple[str, ...], max_per_category: int | None, max_per_brand: int | None,
                diversity: float | None) -> None:
    """Replace the platform's saved rules with these (checked first: nothing is saved on an error)."""
    from shoprec.rules import Rules

    rules = Rules.parse(filter_, list(boost), list(pin), max_per_category, max_per_brand, diversity)
    with _rules(settings) as service:
        click.echo(json.dumps(service.set(platform, rules).to_json(), indent=2))


@rules_group.command("clear")
@click.option("--platform", "-p", required=True, help="The platform.")
@click.pass_obj
def clear_command(settings: Settings, platform: str) -> None:
    """Forget the platform's saved rules."""
    with _rules(settings) as service:
        click.echo(json.dumps(service.clear(platform).to_json(), indent=2))


commands: list[click.Command] = [rules_group]
