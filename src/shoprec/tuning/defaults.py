"""A sensible default search space per model: the parameters that matter most, over ranges that
worked on the public benchmarks (Beauty, ML-100K). Grid search needs choices, so ranges here carry a
step or are lists; tpe/random sample them as given. Each default is a plain JSON-able dict, parsed
and validated like a user's space (`shoprec.tuning.space.parse_space`)."""

from __future__ import annotations

import copy
from typing import Any

from shoprec.errors import ConfigError
from shoprec.models.base import MODEL_NAMES

DEFAULT_SPACES: dict[str, dict[str, Any]] = {
    "popular": {"weighted": [False, True], "recent_days": [0.0, 30.0, 180.0]},
    "itemknn": {"neighbors": [50, 200, 1000], "shrink": [0.0, 5.0, 20.0], "weighting": ["none", "bm25"],
                "history_decay": [1.0, 0.7, 0.4]},
    "ease": {"regularization": [50.0, 150.0, 400.0], "history_decay": [1.0, 0.8, 0.6]},
    "als": {"embedding_size": [32, 64, 128], "regularization": [0.01, 0.1, 1.0], "alpha": [1.0, 10.0],
            "history_decay": [1.0, 0.8]},
    "bpr": {"embedding_size": [64, 128], "learning_rate": [0.01, 0.05], "regularization": [0.001, 0.01]},
    "mf": {"embedding_size": [10, 20], "implicit": [True, False]},
    "ncf": {"embedding_size": [16, 32, 64], "dropout": [0.0, 0.1, 0.3], "learning_rate": [3e-4, 1e-3, 3e-3]},
    "gru4rec": {"embedding_size": [64, 128], "dropout": [0.1, 0.3, 0.5], "learning_rate": [1e-3, 3e-3]},
    "transformer": {"embedding_size": [64, 128], "dropout": [0.3, 0.5], "learning_rate": [1e-3, 2e-3]},
    "cross": {"regularization": [10.0, 100.0, 1000.0], "popularity_weight": [0.0, 0.05, 0.2]},
}


def default_space(model: str) -> dict[str, Any]:
    """A copy of `model`'s default space; ConfigError for an unknown model."""
    if model not in DEFAULT_SPACES:
        raise ConfigError(f"no default search space for model {model!r} (available: {', '.join(MODEL_NAMES)})")
    return copy.deepcopy(DEFAULT_SPACES[model])
