"""`shoprec config show`: the effective settings (defaults, the TOML file, SHOPREC_* variables, --db), secrets
masked."""

from __future__ import annotations

import json

import click

from shoprec.settings import Settings, settings_to_dict, settings_to_toml


@click.group("config")
def config_group() -> None:
    """The deployment's settings (one TOML file, environment overrides; docs/configuration.md)."""


@config_group.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of TOML.")
@click.option("--show-secrets", is_flag=True, help="Print secret values (secret_key, admin_key, token) unmasked.")
@click.pass_obj
def config_show(settings: Settings, as_json: bool, show_secrets: bool) -> None:
    """Print the effective configuration (secrets masked): a valid settings file for --config-file."""
    if as_json:
        click.echo(json.dumps(settings_to_dict(settings, mask=not show_secrets), indent=2))
    else:
        click.echo(settings_to_toml(settings, mask=not show_secrets), nl=False)


commands: list[click.Command] = [config_group]
