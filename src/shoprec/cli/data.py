"""CLI commands (filled in by their issue)."""

import click

commands: list[click.Command] = []
