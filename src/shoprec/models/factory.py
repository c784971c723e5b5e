"""THE model factory: one model configuration (name, parameters, feature hooks) -> fresh models.

`ModelFactory(name, params, features=..., seed=...)` validates everything at construction (an unknown
model, a bad parameter or feature value fails before any data is read), then:
- `factory()` is a fresh, unfitted model (so a factory is a `Callable[[], Recommender]` wherever one is
  expected, e.g. the evaluation protocols);
- `factory.prepare(train, catalog)` is the preprocessing step its models are trained after: the feature
  hooks (`shoprec.preprocess.features`) applied to the training data and catalog;
- `factory.fit(train, catalog)` is both: a fresh model fitted on the prepared data.
The CLI (`evaluate`, `tune`, `train`), tuning, the model service and the evaluation protocols all build
models through it; `training_data(make, ...)` is the data a fit by any `make` sees.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from shoprec.config import config_to_dict
from shoprec.data import Interactions, ItemCatalog
from shoprec.models.base import RankingValidation, RatingValidation, Recommender, create_model, get_model_class
from shoprec.preprocess.features import apply_features, check_feature_value

MakeModel = Callable[[], Recommender]  # anything that returns a fresh model; a ModelFactory is one
Start = Callable[[Recommender], Recommender]  # sets a fresh model up before its fit (e.g. fine-tuning weights)


class ModelFactory:
    """Fresh models of one configuration and the feature hooks their training data goes through.

    `seed` fills the model's `seed` parameter when its config has one and `params` do not set it.
    `config` is the complete model config (defaults included) as a dict, for reports."""

    def __init__(self, name: str, params: Mapping[str, Any] | None = None, *,
                 features: Mapping[str, Any] | None = None, seed: int | None = None,
                 start: Start | None = None) -> None:
        params = dict(params or {})
        if seed is not None and "seed" not in params and "seed" in _fields(name):
            params["seed"] = seed
        self.name, self.params = name, params
        self.config: dict[str, Any] = config_to_dict(create_model(name, params).config)  # validates now
        for feature, value in (features or {}).items():  # ... and so are the feature values
            check_feature_value(feature, value)
        self.features: dict[str, Any] = dict(features or {})
        self._start = start

    def __call__(self) -> Recommender:
        """A fresh, unfitted model."""
        model = create_model(self.name, self.params)
        return self._start(model) if self._start is not None else model

    def starting_with(self, start: Start) -> ModelFactory:
        """The same configuration, each fresh model first passed through `start` (which returns it)."""
        return ModelFactory(self.name, self.params, features=self.features, start=start)

    def with_params(self, params: Mapping[str, Any]) -> ModelFactory:
        """The same factory with `params` over its own (e.g. a fitted model's chosen_params)."""
        return ModelFactory(self.name, {**self.params, **params}, features=self.features, start=self._start)

    def prepare(self, train: Interactions,
                catalog: ItemCatalog | None) -> tuple[Interactions, ItemCatalog | None]:
        """The training data and catalog a model of this factory is fitted on (feature hooks applied)."""
        return apply_features(train, catalog, self.features)

    def fit(self, train: Interactions, catalog: ItemCatalog | None = None, *,
            validation: RankingValidation | RatingValidation | None = None) -> Recommender:
        """A fresh model fitted on the prepared training data."""
        train, catalog = self.prepare(train, catalog)
        return self().fit(train, catalog, validation=validation)


def training_data(make: MakeModel, train: Interactions,
                  catalog: ItemCatalog | None) -> tuple[Interactions, ItemCatalog | None]:
    """What a model of `make` is fitted on: the factory's preprocessing step applied for a ModelFactory,
    the data as it is for any other model-making function."""
    if isinstance(make, ModelFactory):
        return make.prepare(train, catalog)
    return train, catalog


def _fields(name: str) -> set[str]:
    return {f.name for f in dataclasses.fields(get_model_class(name).Config)}
