"""Tuning: search spaces, cross-validation on the training part, the Optuna loop and best parameters.

- `load_space(model, value)` / `default_space(model)`: validated search spaces (`space.py`, `defaults.py`)
- `tune(data, model, space, TuneConfig(...))`: CV search + one test of the best configuration (`run.py`)
- `best_params(database_url, study_name | platform=, model=)`: tuned parameters for `train --tuned`
"""

from shoprec.preprocess.features import apply_features
from shoprec.tuning.defaults import DEFAULT_SPACES, default_space
from shoprec.tuning.space import SearchSpace, load_space, parse_space
from shoprec.tuning.study import TuneConfig, open_storage
from shoprec.tuning.tuned import best_params, platform_study_name, tuned_record

__all__ = [
    "DEFAULT_SPACES", "SearchSpace", "TuneConfig", "apply_features", "best_params", "default_space", "load_space",
    "open_storage", "parse_space", "platform_study_name", "tuned_record",
]
