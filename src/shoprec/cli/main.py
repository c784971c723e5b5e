"""Entry point: the `shoprec` group, global options, and error reporting without tracebacks.

Command modules each export `commands: list[click.Command]`; they are listed in COMMAND_MODULES.
Convention: machine-readable output (JSON) goes to stdout alone; progress and logs go to stderr.
The global options (--db, --config-file, -v) may be given before or after the subcommand: ShoprecGroup
moves them in front before parsing, so the settings are still loaded in one place (the group callback).
"""

from __future__ import annotations

import importlib
import logging
import sys

import click

from shoprec import __version__
from shoprec.errors import ShoprecError
from shoprec.settings import CONFIG_ENV, load_settings, use_settings

COMMAND_MODULES = (
    "shoprec.cli.data",  # import, stats
    "shoprec.cli.demo",  # demo
    "shoprec.cli.evaluate",  # evaluate, compare
    "shoprec.cli.tune",  # tune
    "shoprec.cli.serve",  # serve, platform create / list, platform key
    "shoprec.cli.models",  # models list / show / activate
    "shoprec.cli.train",  # train
    "shoprec.cli.pretrain",  # pretrain
    "shoprec.cli.privacy",  # platform link / unlink, erase-user, export-user, purge
    "shoprec.cli.config",  # config show
    "shoprec.cli.retraining",  # retrain policy / history / run
    "shoprec.cli.rules",  # rules show / set / clear
    "shoprec.cli.worker",  # worker
    "shoprec.cli.jobs",  # jobs list / show / cancel
    "shoprec.cli.export",  # export-recommendations
)


# The global options: name -> whether it takes a value. Subcommands must not define options of these names.
GLOBAL_OPTIONS: dict[str, bool] = {"--db": True, "--config-file": True, "-v": False, "--verbose": False}


def hoist_global_options(args: list[str]) -> list[str]:
    """`args` with the global options found after the subcommand moved in front of it (before `--` only), so
    that `shoprec stats --db URL` means `shoprec --db URL stats`."""
    head: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest.extend(args[i:])
            break
        name = arg.split("=", 1)[0] if arg.startswith("--") else arg
        takes_value = GLOBAL_OPTIONS.get(name)
        if takes_value is None:
            rest.append(arg)
        elif takes_value and "=" not in arg and i + 1 < len(args):
            head.extend(args[i:i + 2])
            i += 1
        else:
            head.append(arg)
        i += 1
    return head + rest


class ShoprecGroup(click.Group):
    """The root group: accepts the global options before or after the subcommand (see hoist_global_options)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, hoist_global_options(list(args)))


@click.group(cls=ShoprecGroup, context_settings={"help_option_names": ["-h", "--help"]},
             epilog="Global options (--db, --config-file, -v) may also follow the subcommand.")
@click.version_option(__version__, prog_name="shoprec")
@click.option("--config-file", "config_file", default=None, metavar="FILE",
              help=f"Settings file (TOML; env {CONFIG_ENV}); SHOPREC_* variables override it (docs/configuration.md).")
@click.option("--db", "database_url", default=None,
              help="Database URL (default: sqlite:///shoprec.db; setting database_url, env SHOPREC_DATABASE_URL).")
@click.option("-v", "--verbose", is_flag=True, help="Log more to stderr.")
@click.pass_context
def cli(ctx: click.Context, config_file: str | None, database_url: str | None, verbose: bool) -> None:
    """shoprec: personalised recommendations for e-commerce."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")  # until the settings are read
    ctx.obj = use_settings(load_settings(config_file, database_url=database_url))
    from shoprec.logs import configure_logging

    quieter = ctx.obj.logging.level in ("critical", "error", "warning")
    configure_logging(ctx.obj.logging, level="info" if verbose and quieter else None)  # [logging]: text or JSON


def _register() -> None:
    for name in COMMAND_MODULES:
        module = importlib.import_module(name)
        for command in module.commands:
            cli.add_command(command)


def main(argv: list[str] | None = None) -> None:
    _register()
    try:
        cli.main(args=argv, prog_name="shoprec", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except ShoprecError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
