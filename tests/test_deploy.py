"""The deployment files (no container runtime runs here, so they are checked, not run; the same topology runs as
plain processes in tests/test_cluster.py): compose.yaml has PostgreSQL, Redis, two API replicas and a worker; every
shoprec command in compose.yaml, the Dockerfile and the systemd units parses with the CLI; the settings file
loads."""

from __future__ import annotations

import json
import re
import shlex
import warnings
from pathlib import Path

import click
import pytest
import yaml

from shoprec.cli.main import _register, cli
from shoprec.settings import load_settings

ROOT = Path(__file__).resolve().parents[1]


def _rest(ctx: click.Context) -> list[str]:
    with warnings.catch_warnings():  # click 8.2 deprecates protected_args (9.0 puts them in args)
        warnings.simplefilter("ignore", DeprecationWarning)
        return [*ctx.protected_args, *ctx.args]


def _parse(args: list[str]) -> None:
    """Parse `shoprec ARGS` as the CLI would (options and arguments checked), without running the command."""
    _register()
    ctx = cli.make_context("shoprec", list(args))
    command: click.Command = cli
    rest = _rest(ctx)
    while isinstance(command, click.Group) and rest:
        name, sub, rest = command.resolve_command(ctx, rest)
        assert sub is not None, name
        ctx = sub.make_context(name or "", list(rest), parent=ctx)
        command, rest = sub, _rest(ctx)


def _commands() -> list[list[str]]:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    found = [list(s["command"]) for s in compose["services"].values() if s.get("image", "").startswith("shoprec")
             or "<<" in s or s.get("build")]
    docker = (ROOT / "Dockerfile").read_text()
    found.append(json.loads(re.search(r"^CMD (\[.*\])$", docker, re.M).group(1)))
    for unit in (ROOT / "deploy" / "systemd").glob("*.service"):
        line = re.search(r"^ExecStart=\S+/shoprec (.*)$", unit.read_text(), re.M).group(1)
        found.append(shlex.split(line))
    return found


def test_compose_has_the_reference_topology() -> None:
    services = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    assert {"postgres", "redis", "api", "worker"} <= set(services)
    assert services["api"]["deploy"]["replicas"] == 2
    assert services["api"]["command"][0] == "serve" and services["worker"]["command"] == ["worker"]


@pytest.mark.parametrize("args", _commands(), ids=lambda a: " ".join(a))
def test_every_deployment_command_parses(args: list[str]) -> None:
    _parse(args)


def test_a_bad_command_would_be_caught() -> None:
    with pytest.raises(click.UsageError):
        _parse(["serve", "--no-such-option"])


def test_the_deployment_settings_load() -> None:
    settings = load_settings(ROOT / "deploy" / "shoprec.toml", env={"SHOPREC_ADMIN_KEY": "x" * 32})
    assert settings.database_url.startswith("postgresql") and settings.artifact_store == "database"
    assert settings.redis_url and settings.retraining.after_events
