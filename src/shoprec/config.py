"""Typed configs from plain dicts: the one parser for every frozen config dataclass (model configs, the
cleaning config, search-space points). Unknown keys and wrong types are refused by name."""

from __future__ import annotations

import dataclasses
import types
import typing
import warnings
from collections.abc import Mapping
from typing import Any

from shoprec.errors import ConfigError


def config_to_dict(config: Any) -> dict[str, Any]:
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}


def config_from_dict(config_cls: type, data: Mapping[str, Any] | None, model: str = "", *,
                     warn_renamed: bool = True) -> Any:
    """Build a frozen config, rejecting unknown parameters and wrong types with a clear message.

    A config class may list parameters that have a new name in `RENAMED: ClassVar[dict[str, str]]` (old -> new):
    the old name still works, with a FutureWarning (`warn_renamed=False`: silently, for stored artifacts)."""
    what = f"model {model!r}" if model else config_cls.__name__
    data = renamed_params(config_cls, data, what, warn=warn_renamed)
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    hints = typing.get_type_hints(config_cls)
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"unknown parameter {unknown[0]!r} for {what} (valid: {', '.join(sorted(fields))})")
    values = {name: _coerce(name, value, hints[name], what) for name, value in data.items()}
    try:
        return config_cls(**values)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"invalid config for {what}: {exc}") from None


def _coerce(name: str, value: Any, hint: Any, what: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(name, value, arg, what)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"parameter {name!r} of {what}: bad value {value!r}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"parameter {name!r} of {what} must be one of {list(args)}, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"parameter {name!r} of {what} must be a list, got {value!r}")
        inner = args[0] if args else Any
        return tuple(_coerce(name, v, inner, what) for v in value)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"parameter {name!r} of {what} must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int | float) or float(value) != int(value):
            raise ConfigError(f"parameter {name!r} of {what} must be an integer, got {value!r}")
        return int(value)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"parameter {name!r} of {what} must be a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"parameter {name!r} of {what} must be a string, got {value!r}")
        return value
    return value


def renamed_params(config_cls: type, data: Mapping[str, Any] | None, what: str = "", *,
                   warn: bool = True) -> dict[str, Any]:
    """`data` with the config class's old parameter names (its RENAMED table) replaced by the current ones."""
    out = dict(data or {})
    for old, new in getattr(config_cls, "RENAMED", {}).items():
        if old not in out:
            continue
        if new in out:
            raise ConfigError(f"{what or config_cls.__name__}: {old!r} is the old name of {new!r}; give only {new!r}")
        if warn:
            warnings.warn(f"{what or config_cls.__name__}: parameter {old!r} is deprecated, use {new!r}",
                          FutureWarning, stacklevel=3)
        out[new] = out.pop(old)
    return out
