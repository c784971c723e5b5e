"""Search spaces: which model (and feature) parameters a study varies, and over which values.

A space is a small JSON/TOML object; every key is a parameter of the model's config or a feature hook
(`features.<name>`, see `shoprec.preprocess.features`; a TOML `[features]` table works too). A value is

    [32, 64, 128]                                  choices (any JSON scalars the parameter accepts)
    {"low": 0.001, "high": 1.0, "log": true}       a numeric range (int or float by the parameter's type;
                                                   optional "step"); grid search needs choices, an int
                                                   range, or a float range with a step
    7                                              one fixed value

Every value is checked against the parameter's type now (the model's `from_dict`), so a bad space fails
before any training with a message naming the parameter.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shoprec.config import renamed_params
from shoprec.configfile import read_document
from shoprec.errors import ConfigError
from shoprec.models.base import Recommender, get_model_class
from shoprec.preprocess.features import FEATURE_PREFIX, check_feature_value, feature_names

Scalar = bool | int | float | str | None
MAX_GRID = 10_000  # grid points a study may enumerate
RANGE_KEYS = {"low", "high", "log", "step"}


@dataclass(frozen=True)
class Choice:
    """A parameter taking one of listed values."""

    name: str
    values: tuple[Scalar, ...]


@dataclass(frozen=True)
class Range:
    """A numeric parameter in [low, high]; `integer` follows the parameter's type."""

    name: str
    low: float
    high: float
    integer: bool
    log: bool = False
    step: float | None = None

    def grid(self) -> tuple[Scalar, ...]:
        """Every value of an enumerable range (int, or float with a step)."""
        step = self.step if self.step is not None else (1 if self.integer else None)
        if step is None:
            raise ConfigError(f"parameter {self.name!r}: grid search needs choices or a range with a 'step' "
                              f"(got a float range {self.low}..{self.high})")
        count = math.floor((self.high - self.low) / step + 1e-9) + 1
        if count > MAX_GRID:
            raise ConfigError(f"parameter {self.name!r}: the range has {count} grid values (at most {MAX_GRID})")
        values = [self.low + i * step for i in range(count)]
        return tuple(round(v) for v in values) if self.integer else tuple(float(v) for v in values)


Param = Choice | Range


@dataclass(frozen=True)
class SearchSpace:
    """The parameters a study varies for one model, in a fixed order."""

    model: str
    params: tuple[Param, ...]

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.params]

    def grid(self) -> dict[str, list[Scalar]]:
        """name -> every value, for Optuna's GridSampler; ConfigError when a parameter is not enumerable."""
        out = {p.name: list(p.values if isinstance(p, Choice) else p.grid()) for p in self.params}
        size = math.prod(len(v) for v in out.values())
        if size > MAX_GRID:
            raise ConfigError(f"the grid has {size} points (at most {MAX_GRID}); use --search tpe or random")
        return out

    def grid_size(self) -> int:
        return math.prod(len(v) for v in self.grid().values())

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for p in self.params:
            if isinstance(p, Choice):
                out[p.name] = list(p.values)
            else:
                out[p.name] = {"low": p.low, "high": p.high, "log": p.log,
                               **({"step": p.step} if p.step is not None else {})}
        return out


# ------------------------------------------------------------------------------ parsing
def read_space(value: str | Path | Mapping[str, Any]) -> dict[str, Any]:
    """The raw space object from a mapping, a .json/.toml file, or inline JSON."""
    if isinstance(value, Mapping):
        return dict(value)
    data = read_document(value, "search space")
    if not isinstance(data, dict):
        raise ConfigError("a search space must be an object mapping parameter names to choices or ranges")
    return data


def _flatten(raw: Mapping[str, Any]) -> dict[str, Any]:
    """`{"features": {"text": [...]}}` -> `{"features.text": [...]}` (TOML tables); other keys as given."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "features" and isinstance(value, Mapping) and not (set(value) & RANGE_KEYS):
            for sub, v in value.items():
                out[f"{FEATURE_PREFIX}{sub}"] = v
        else:
            out[str(key)] = value
    return out


def parse_space(model: str, raw: Mapping[str, Any], fixed: Mapping[str, Any] | None = None) -> SearchSpace:
    """Validate `raw` against model `model`'s config (and the feature hooks); see the module docstring.

    `fixed` are model parameters held constant in every trial; they are validated together with each value.
    """
    cls = get_model_class(model)
    fields = {f.name for f in dataclasses.fields(cls.Config)}
    hints = typing.get_type_hints(cls.Config)
    flat = renamed_params(cls.Config, _flatten(raw), f"search space for model {model!r}")
    fixed = renamed_params(cls.Config, fixed, f"model {model!r}") if fixed else fixed
    if not flat:
        raise ConfigError(f"the search space for model {model!r} is empty")
    valid = sorted(fields) + [FEATURE_PREFIX + n for n in feature_names()]
    params: list[Param] = []
    for name, spec in flat.items():
        is_feature = name.startswith(FEATURE_PREFIX)
        known = name[len(FEATURE_PREFIX):] in feature_names() if is_feature else name in fields
        if not known:
            raise ConfigError(f"unknown parameter {name!r} in the search space for model {model!r} "
                              f"(valid: {', '.join(valid)})")
        param = _parse_param(name, spec, None if is_feature else hints[name])
        for v in _probe_values(param):
            _check_value(cls, model, name, v, fixed)
        params.append(param)
    return SearchSpace(model=model, params=tuple(params))


def _parse_param(name: str, spec: Any, hint: Any) -> Param:
    if isinstance(spec, Mapping):
        return _parse_range(name, spec, hint)
    values = list(spec) if isinstance(spec, list | tuple) else [spec]
    if not values:
        raise ConfigError(f"parameter {name!r}: the list of choices is empty")
    for v in values:
        if not isinstance(v, bool | int | float | str) and v is not None:
            raise ConfigError(f"parameter {name!r}: choices must be numbers, strings, booleans or null, got {v!r}")
    if len(set(map(repr, values))) != len(values):
        raise ConfigError(f"parameter {name!r}: the choices {values!r} repeat a value")
    return Choice(name, tuple(values))


def _parse_range(name: str, spec: Mapping[str, Any], hint: Any) -> Range:
    extra = sorted(set(spec) - RANGE_KEYS)
    if extra or not {"low", "high"} <= set(spec):
        raise ConfigError(f"parameter {name!r}: a range needs 'low' and 'high' (optional 'log', 'step'), "
                          f"got keys {sorted(spec)}")
    low, high, log, step = spec["low"], spec["high"], spec.get("log", False), spec.get("step")
    for key, v in (("low", low), ("high", high), ("step", step)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v)):
            raise ConfigError(f"parameter {name!r}: range {key!r} must be a finite number, got {v!r}")
    if not isinstance(log, bool):
        raise ConfigError(f"parameter {name!r}: range 'log' must be true or false, got {log!r}")
    integer = _numeric_kind(name, hint, low, high)
    if low > high:
        raise ConfigError(f"parameter {name!r}: empty range (low {low} > high {high})")
    if log and low <= 0:
        raise ConfigError(f"parameter {name!r}: a log range needs low > 0, got {low}")
    if step is not None and (step <= 0 or log):
        raise ConfigError(f"parameter {name!r}: 'step' must be > 0 and cannot be combined with 'log'")
    if integer and (low != int(low) or high != int(high) or (step is not None and step != int(step))):
        raise ConfigError(f"parameter {name!r} is an integer: range bounds and step must be whole numbers")
    return Range(name, float(low), float(high), integer, log, None if step is None else float(step))


def _numeric_kind(name: str, hint: Any, low: Any, high: Any) -> bool:
    """True for an integer parameter, False for a float one; ConfigError for a non-numeric parameter."""
    kinds = {a for a in (typing.get_args(hint) or (hint,)) if a is not type(None)} if hint is not None else set()
    if hint is None:  # a feature hook: integer when both bounds are
        return isinstance(low, int) and isinstance(high, int)
    if float in kinds:
        return False
    if int in kinds and bool not in kinds:
        return True
    raise ConfigError(f"parameter {name!r} is not numeric; give a list of choices instead of a range")


def _probe_values(param: Param) -> tuple[Scalar, ...]:
    if isinstance(param, Choice):
        return param.values
    conv = int if param.integer else float
    return (conv(param.low), conv(param.high))


def _check_value(model_cls: type[Recommender], model: str, name: str, value: Scalar,
                 fixed: Mapping[str, Any] | None) -> None:
    if name.startswith(FEATURE_PREFIX):
        check_feature_value(name[len(FEATURE_PREFIX):], value)
        return
    params = {**(fixed or {}), name: value}
    try:
        model_cls.from_dict(params)  # the model's parameters and run-time options (device, ...)
    except ConfigError as exc:
        raise ConfigError(f"search space, parameter {name!r} = {value!r}: {exc}") from None


def load_space(model: str, value: str | Path | Mapping[str, Any] | None,
               fixed: Mapping[str, Any] | None = None) -> SearchSpace:
    """`value` parsed (see `read_space`), or the model's default space when it is None."""
    from shoprec.tuning.defaults import default_space

    raw = default_space(model) if value is None else read_space(value)
    return parse_space(model, raw, fixed)
