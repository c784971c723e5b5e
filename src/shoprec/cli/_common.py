"""Options and output shared by the commands, so that they mean the same everywhere.

- `-p/--platform` and `-m/--model` (model names listed in --help, accepted in any case: `-m EASE`);
- `--json` prints the command's JSON on stdout; `-o/--output FILE` writes it to FILE instead (see `emit_json`).
  The old spelling `--json FILE` (evaluate, tune) still works, with a deprecation note on stderr.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from shoprec.errors import DataError
from shoprec.models.base import MODEL_NAMES

F = TypeVar("F", bound=Callable[..., Any])

STDOUT = "-"


def model_option(required: bool = True, help: str = "Model") -> Callable[[F], F]:
    """`-m/--model NAME`: one of MODEL_NAMES, case-insensitive (the value is the lower-case name)."""
    return click.option("--model", "-m", "model_name", required=required,
                        type=click.Choice(MODEL_NAMES, case_sensitive=False), metavar="MODEL",
                        help=f"{help}: {', '.join(MODEL_NAMES)} (any case).")


def platform_option(required: bool = True, help: str = "Platform (shop).") -> Callable[[F], F]:
    return click.option("--platform", "-p", "platform", required=required, help=help)


def json_options(what: str = "the result") -> Callable[[F], F]:
    """`--json` (print JSON on stdout) and `-o/--output FILE` (write it to FILE)."""
    def decorate(f: F) -> F:
        f = click.option("--output", "-o", "output", type=click.Path(dir_okay=False, path_type=Path), default=None,
                         metavar="FILE", help=f"Write {what} as JSON to FILE ('-': stdout).")(f)
        return click.option("--json", "as_json", is_flag=True, help=f"Print {what} as JSON on stdout.")(f)
    return decorate


def legacy_json_option(what: str = "the result") -> Callable[[F], F]:
    """`--json` as a flag, still accepting the old `--json FILE` (use `resolve_legacy_json`); with `-o/--output`."""
    def decorate(f: F) -> F:
        f = click.option("--output", "-o", "output", type=click.Path(dir_okay=False, path_type=Path), default=None,
                         metavar="FILE", help=f"Write {what} as JSON to FILE ('-': stdout).")(f)
        return click.option("--json", "json_arg", is_flag=False, flag_value=STDOUT, default=None, metavar="",
                            help=f"Print {what} as JSON on stdout. (`--json FILE` is deprecated: use --output FILE.)"
                            )(f)
    return decorate


def resolve_legacy_json(json_arg: str | None, output: Path | None) -> tuple[bool, Path | None]:
    """(as_json, output file) from `--json [FILE]` and `--output FILE`; `--json FILE` gets a deprecation note."""
    if json_arg is None or json_arg == STDOUT:
        if output is not None and str(output) == STDOUT:
            return True, None
        return json_arg == STDOUT, output
    click.echo(f"note: `--json {json_arg}` is deprecated; use `--output {json_arg}` (--json alone prints on stdout)",
               err=True)
    if output is not None:
        raise click.UsageError("give the file once: --output FILE (not also --json FILE)")
    return False, Path(json_arg)


def write_json_file(doc: Any, output: Path) -> None:
    """`doc` as indented JSON into `output` (DataError naming the file when it cannot be written)."""
    try:
        output.write_text(json.dumps(doc, indent=1, default=str) + "\n", encoding="utf-8")
    except OSError as exc:
        raise DataError(f"cannot write {output}: {exc.strerror}") from None
    click.echo(f"wrote {output}", err=True)


def emit_json(doc: Any, as_json: bool, output: Path | None) -> bool:
    """The JSON of `doc` on stdout (`as_json`, or output '-') and/or into `output`; True when anything was
    emitted (the caller prints its human form otherwise)."""
    if output is not None and str(output) != STDOUT:
        write_json_file(doc, output)
    if as_json or (output is not None and str(output) == STDOUT):
        click.echo(json.dumps(doc, indent=2, default=str))
        return True
    return output is not None
