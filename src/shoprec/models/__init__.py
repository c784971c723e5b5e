"""Recommender models. Each model lives in its own module and registers itself by name."""

from shoprec.models.base import (
    MODEL_NAMES,
    Query,
    RankingValidation,
    RatingValidation,
    Recommender,
    create_model,
    get_model_class,
    load_model,
)

__all__ = [
    "MODEL_NAMES",
    "Query",
    "RankingValidation",
    "RatingValidation",
    "Recommender",
    "create_model",
    "get_model_class",
    "load_model",
]
