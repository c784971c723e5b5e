"""Small TOML / JSON documents given on the command line: model configs (`--config`) and search spaces
(`--space`) are either a .toml / .json file or inline JSON; one reader for both."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from shoprec.errors import ConfigError


def read_document(value: str | Path, what: str) -> Any:
    """The parsed document: the file `value` names (TOML for .toml, else JSON), or `value` as inline JSON.
    `what` names the option in error messages (e.g. "--config", "search space")."""
    path = Path(value)
    try:
        is_file = path.is_file()
    except OSError:  # inline JSON longer than a file name may be (ENAMETOOLONG)
        is_file = False
    if is_file:
        text = path.read_text(encoding="utf-8")
        try:
            return tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
        except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{what} {path}: cannot parse ({exc})") from None
    try:
        return json.loads(str(value))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{what}: neither a file nor valid JSON ({exc})") from None
