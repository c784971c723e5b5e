"""`shoprec platform link|unlink` (consents to share linked users), `shoprec erase-user`, `shoprec export-user`
and `shoprec purge` (retention). Thin over shoprec.service.privacy; JSON goes to stdout.

Erasure from the CLI clears the same state as the API: with SHOPREC_REDIS_URL set, the cached history and
lists in Redis; the serving workers load the rewritten model artifact within their poll interval.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import click

from shoprec.cli.serve import platform_group
from shoprec.settings import Settings

if TYPE_CHECKING:
    from shoprec.service import Services

OPERATOR = "cli"


@contextmanager
def _services(settings: Settings) -> Iterator[Services]:
    from shoprec.service import ServingConfig, build_services

    services = build_services(settings, ServingConfig.from_env())
    try:
        yield services
    finally:
        services.close()


def _emit(result: Any) -> None:
    click.echo(json.dumps(result, indent=2, default=str))


def _pairs(a: str | None, b: str | None, platform: str | None, partner: str | None) -> list[tuple[str, str]]:
    """The consents to record: both sides for `A B` (the operator speaks for both), one for --platform/--with."""
    if platform or partner:
        if a or b or not (platform and partner):
            raise click.UsageError("give either A B, or --platform A --with B")
        return [(platform, partner)]
    if not (a and b):
        raise click.UsageError("give either A B, or --platform A --with B")
    return [(a, b), (b, a)]


@platform_group.command("link")
@click.argument("a", required=False)
@click.argument("b", required=False)
@click.option("--platform", "-p", default=None, help="The consenting platform (its side of the link only).")
@click.option("--with", "partner", default=None, help="The platform it consents to link with.")
@click.pass_obj
def link_command(settings: Settings, a: str | None, b: str | None, platform: str | None, partner: str | None
                 ) -> None:
    """Link platforms A and B: models of each may learn from linked users' behaviour on the other.

    A link needs both sides' consent: `link A B` records both (the deployment operator acting for both
    admins); `link --platform A --with B` records A's consent only, and the link holds once B did the same.
    """
    with _services(settings) as services:
        results = [services.privacy.link(x, y, actor=OPERATOR) for x, y in _pairs(a, b, platform, partner)]
    _emit(asdict(results[-1]) if len(results) == 1 else {"linked": results[-1].linked,
                                                          "consents": [asdict(r) for r in results]})


@platform_group.command("unlink")
@click.argument("a", required=False)
@click.argument("b", required=False)
@click.option("--platform", "-p", default=None, help="The platform withdrawing its consent.")
@click.option("--with", "partner", default=None, help="The platform it was linked with.")
@click.pass_obj
def unlink_command(settings: Settings, a: str | None, b: str | None, platform: str | None, partner: str | None
                   ) -> None:
    """End the link of A and B (either side's withdrawal ends it: nothing crosses from then on)."""
    with _services(settings) as services:
        results = [services.privacy.unlink(x, y, actor=OPERATOR) for x, y in _pairs(a, b, platform, partner)]
    _emit(asdict(results[-1]) if len(results) == 1 else {"linked": False, "consents": [asdict(r) for r in results]})


@click.command("erase-user")
@click.option("--platform", "-p", required=True, help="The user's platform.")
@click.argument("user_id")
@click.pass_obj
def erase_user_command(settings: Settings, platform: str, user_id: str) -> None:
    """Erase USER_ID of PLATFORM everywhere at once (rows, events, identities, logs, caches, model artifacts);
    the platform's models are flagged for retraining and the erasure audited under a keyed hash."""
    with _services(settings) as services:
        _emit(asdict(services.privacy.erase(platform, user_id, actor=OPERATOR)))


@click.command("export-user")
@click.option("--platform", "-p", required=True, help="The user's platform.")
@click.argument("user_id")
@click.pass_obj
def export_user_command(settings: Settings, platform: str, user_id: str) -> None:
    """Print everything held about USER_ID of PLATFORM as JSON (as GET /v1/users/{id}/export)."""
    with _services(settings) as services:
        _emit(services.privacy.export(platform, user_id))


@click.command("purge")
@click.option("--platform", "-p", default=None, help="Only this platform (default: every platform).")
@click.option("--days", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Retention period in days (default: SHOPREC_RETENTION_DAYS).")
@click.pass_obj
def purge_command(settings: Settings, platform: str | None, days: float | None) -> None:
    """Delete events older than the retention period; prints {"days", "before", "purged": {platform: n}}."""
    with _services(settings) as services:
        _emit(asdict(services.privacy.purge(platform, days)))


commands: list[click.Command] = [erase_user_command, export_user_command, purge_command]
