"""Feature hooks: a preprocessing step applied to the training data and catalog before a fit.

`shoprec tune` searches over them, `shoprec train --tuned` and the model service apply the tuned values,
`shoprec.models.factory.ModelFactory` carries them with a model configuration and applies them (`prepare`)
to whatever data a model of it is fitted on.

Names (in a search space with the prefix `features.`):
- `weight.<event type>` (e.g. `features.weight.purchase`): event weight of that type; when any is set,
  weights follow `shoprec.preprocess.weights.apply_event_weights` (defaults for the other types,
  ratings weigh their value).
- `recency_half_life_days`: multiply each event's weight by 0.5 ** (age / half-life), age measured from
  the newest training event; 0 turns it off.
- `text`: false blanks item titles and descriptions in the catalog the model sees (true: unchanged).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from shoprec.data import Interactions, ItemCatalog
from shoprec.errors import ConfigError
from shoprec.preprocess.weights import apply_event_weights
from shoprec.types import EventType

FEATURE_PREFIX = "features."
DAY_SECONDS = 86_400.0


def feature_names() -> list[str]:
    return ["recency_half_life_days", "text", *(f"weight.{t.value}" for t in EventType)]


def check_feature_value(name: str, value: Any) -> None:
    """ConfigError naming the feature when `value` is not valid for it."""
    full = FEATURE_PREFIX + name
    if name == "text":
        if not isinstance(value, bool):
            raise ConfigError(f"parameter {full!r} must be true or false, got {value!r}")
        return
    if name not in feature_names():
        valid = ", ".join(FEATURE_PREFIX + n for n in feature_names())
        raise ConfigError(f"unknown parameter {full!r} (valid: {valid})")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ConfigError(f"parameter {full!r} must be a number >= 0, got {value!r}")


def split_params(params: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(model parameters, feature values without the prefix) of one trial's parameters."""
    model = {k: v for k, v in params.items() if not k.startswith(FEATURE_PREFIX)}
    features = {k[len(FEATURE_PREFIX):]: v for k, v in params.items() if k.startswith(FEATURE_PREFIX)}
    return model, features


def apply_features(train: Interactions, catalog: ItemCatalog | None,
                   features: Mapping[str, Any]) -> tuple[Interactions, ItemCatalog | None]:
    """The training data and catalog a model sees under these feature values (see the module docstring)."""
    for name, value in features.items():
        check_feature_value(name, value)
    weights = {k.split(".", 1)[1]: float(v) for k, v in features.items() if k.startswith("weight.")}
    if weights:
        train = apply_event_weights(train, weights)
    half_life = float(features.get("recency_half_life_days", 0.0))
    if half_life > 0 and len(train):
        age = (train.timestamp.max() - train.timestamp).astype(np.float64) / DAY_SECONDS
        decayed = (train.weight * 0.5 ** (age / half_life)).astype(np.float32)
        train = dataclasses.replace(train, weight=decayed)
    if catalog is not None and features.get("text") is False:
        blank = [""] * len(catalog.items)
        catalog = dataclasses.replace(catalog, title=list(blank), description=list(blank))
    return train, catalog
