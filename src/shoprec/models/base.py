"""The Recommender protocol, queries, validation data, typed configs, registry and artifacts.

A model is built from one frozen dataclass config; `fit(train, catalog)` learns; `score(queries)`
returns an (n_queries, n_items) float32 matrix; `save(dir)` / `load(dir)` write and read an artifact
directory: config.json + weights.safetensors + idmaps.json + meta.json (never pickle).
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import scipy.sparse as sp
from safetensors.numpy import load_file, save_file

import shoprec
from shoprec.config import config_from_dict, config_to_dict, renamed_params
from shoprec.data import IdMap, Interactions, ItemCatalog
from shoprec.errors import CannotScoreError, ConfigError, DataError
from shoprec.ranking import hit_rate_from_ranks, ndcg_from_ranks, target_ranks

# Every model name shoprec knows, in the order tables list them. Module shoprec.models.<name>
# defines and registers the class; modules are imported lazily so torch loads only when needed.
MODEL_NAMES: tuple[str, ...] = (
    "popular", "itemknn", "ease", "als", "bpr", "mf", "ncf", "gru4rec", "transformer", "cross",
)
_REGISTRY: dict[str, type[Recommender]] = {}


# ---------------------------------------------------------------------------- queries
@dataclass(frozen=True)
class Query:
    """What a model scores: a known user index (or None for an anonymous visitor) and the recent
    item history, oldest first, with optional event-type codes and unix timestamps aligned to it."""

    user: int | None = None
    history: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))
    event_types: np.ndarray | None = None
    timestamps: np.ndarray | None = None


def queries_from_sequences(users: Sequence[int], sequences: Sequence[np.ndarray]) -> list[Query]:
    return [Query(user=int(u), history=np.asarray(s, dtype=np.int32)) for u, s in zip(users, sequences, strict=True)]


# ------------------------------------------------------------------------ validation
@dataclass
class RankingValidation:
    """Held-out next-item targets for early stopping / epoch choice (never the test targets)."""

    queries: list[Query]
    targets: np.ndarray
    exclude: sp.csr_matrix | Sequence[np.ndarray] | None = None
    k: int = 10
    batch_size: int = 1024

    def evaluate(self, model: Recommender) -> dict[str, float]:
        """NDCG@k and HR@k of `model` on these targets, through the shared ranking path."""
        ranks = []
        for start in range(0, len(self.queries), self.batch_size):
            stop = start + self.batch_size
            scores = model.score(self.queries[start:stop])
            excl = _slice_exclude(self.exclude, start, stop)
            ranks.append(target_ranks(scores, self.targets[start:stop], exclude=excl))
        r = np.concatenate(ranks) if ranks else np.zeros(0)
        return {f"NDCG@{self.k}": float(ndcg_from_ranks(r, self.k).mean()) if len(r) else 0.0,
                f"HR@{self.k}": float(hit_rate_from_ranks(r, self.k).mean()) if len(r) else 0.0}


@dataclass
class RatingValidation:
    """Held-out (user, item, rating) triples for rating models."""

    users: np.ndarray
    items: np.ndarray
    ratings: np.ndarray

    def evaluate(self, model: Any) -> dict[str, float]:
        pred = model.predict(self.users, self.items)
        err = pred - self.ratings
        return {"RMSE": float(np.sqrt(np.mean(err**2))), "MAE": float(np.mean(np.abs(err)))}


def _slice_exclude(exclude: Any, start: int, stop: int) -> Any:
    if exclude is None:
        return None
    if sp.issparse(exclude):
        return exclude[start:stop]
    return exclude[start:stop]


# ---------------------------------------------------------------------------- models
class Recommender(ABC):
    """Base class of every model. Subclasses set `name`, `Config`, and implement the _hooks.

    - `_fit(train, catalog, validation)`: learn; may append dicts to `self.training_log`.
    - `_score(queries)`: (n, n_items) float32 scores for queries that `can_score` accepts.
    - `_state()` / `_set_state(arrays, meta)`: the learned arrays (numpy) and JSON meta for artifacts.
    """

    name: ClassVar[str]
    Config: ClassVar[type]
    uses_history: ClassVar[bool] = False  # scores from the query's item history (sequence / item-based)
    uses_user: ClassVar[bool] = True  # needs a known user index
    # run-time options (device, threads, ...; models.training.TrainOptions) taken from the same config
    # dicts as the parameters but never saved in the artifact; None: the model has none
    Options: ClassVar[type | None] = None

    def __init__(self, config: Any = None, options: Any = None) -> None:
        self.config = config if config is not None else self.Config()
        if not isinstance(self.config, self.Config):
            raise ConfigError(f"model {self.name!r} expects a {self.Config.__name__}, got {type(self.config).__name__}")
        self.options = options if options is not None or self.Options is None else self.Options()
        self.users: IdMap | None = None
        self.items: IdMap | None = None
        self.training_log: list[dict[str, Any]] = []
        self.fit_seconds: float = 0.0

    @classmethod
    def from_dict(cls, params: Mapping[str, Any] | None = None) -> Self:
        """The model from one dict of parameters and (for a model with `Options`) run-time options."""
        if cls.Options is None:
            return cls(config_from_dict(cls.Config, params, cls.name))
        params = dict(params or {})
        names = option_names(cls)
        options = {k: params.pop(k) for k in list(params) if k in names}
        return cls(config_from_dict(cls.Config, params, cls.name), config_from_dict(cls.Options, options, cls.name))

    # ------------------------------------------------------------------ learning
    def fit(
        self,
        train: Interactions,
        catalog: ItemCatalog | None = None,
        *,
        validation: RankingValidation | RatingValidation | None = None,
    ) -> Self:
        check_trainable(train, self.name)
        self.users, self.items = train.users.copy(), train.items.copy()
        self.training_log = []
        t0 = time.perf_counter()
        self._fit(train, catalog, validation)
        self.fit_seconds = time.perf_counter() - t0
        return self

    @abstractmethod
    def _fit(self, train: Interactions, catalog: ItemCatalog | None,
             validation: RankingValidation | RatingValidation | None) -> None: ...

    def chosen_params(self) -> dict[str, Any]:
        """Parameters this fit chose itself ("auto" sizes resolved, values searched on its validation targets) that
        a refit on more data without validation targets reuses, so that the model refitted is the one evaluated
        (shoprec.service.models: the final fit after the evaluation); {} for a model that chooses nothing."""
        return {}

    # ------------------------------------------------------------------ scoring
    @property
    def n_items(self) -> int:
        self._require_fitted()
        assert self.items is not None
        return len(self.items)

    @property
    def n_users(self) -> int:
        self._require_fitted()
        assert self.users is not None
        return len(self.users)

    def can_score(self, query: Query) -> bool:
        """Whether this model can answer the query; callers fall back when it cannot."""
        if self.uses_user and query.user is not None and 0 <= query.user < self.n_users:
            return True
        return self.uses_history and len(query.history) > 0

    def score(self, queries: Sequence[Query]) -> np.ndarray:
        self._require_fitted()
        for i, q in enumerate(queries):
            if not self.can_score(q):
                raise CannotScoreError(
                    f"model {self.name!r} cannot score query {i} (user={q.user}, history length {len(q.history)})")
        if not len(queries):
            return np.zeros((0, self.n_items), dtype=np.float32)
        return np.asarray(self._score(queries), dtype=np.float32)

    @abstractmethod
    def _score(self, queries: Sequence[Query]) -> np.ndarray: ...

    def _require_fitted(self) -> None:
        if self.items is None:
            raise CannotScoreError(f"model {self.name!r} is not fitted")

    # ------------------------------------------------------------------ artifacts
    @abstractmethod
    def _state(self) -> dict[str, np.ndarray]: ...

    @abstractmethod
    def _set_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None: ...

    def _meta(self) -> dict[str, Any]:
        """Extra JSON-able facts a model needs back at load time (override to add)."""
        return {}

    def save(self, path: str | Path) -> Path:
        self._require_fitted()
        assert self.users is not None and self.items is not None
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        arrays = {k: np.ascontiguousarray(v) for k, v in self._state().items()}
        save_file(arrays, str(path / "weights.safetensors"))
        _write_json(path / "config.json", {"model": self.name, "config": config_to_dict(self.config)})
        _write_json(path / "idmaps.json", {"users": self.users.to_list(), "items": self.items.to_list()})
        _write_json(path / "meta.json", {
            "model": self.name, "shoprec_version": shoprec.__version__,
            "n_users": len(self.users), "n_items": len(self.items),
            "fit_seconds": self.fit_seconds, "training_log": self.training_log,
            "model_meta": self._meta(),
        })
        return path

    @classmethod
    def load(cls, path: str | Path) -> Recommender:
        return load_model(path)


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=1, default=_json_default), encoding="utf-8")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, tuple):
        return list(obj)
    raise TypeError(f"not JSON-serialisable: {type(obj).__name__}")


def check_trainable(train: Interactions, model: str = "") -> None:
    what = f"model {model!r}: " if model else ""
    if len(train) == 0:
        raise DataError(f"{what}the training data is empty")
    if len(np.unique(train.user)) < 2:
        raise DataError(f"{what}the training data has a single user; at least 2 are needed")
    if len(np.unique(train.item)) < 2:
        raise DataError(f"{what}the training data has a single item; at least 2 are needed")


# -------------------------------------------------------------------------- registry
def register(cls: type[Recommender]) -> type[Recommender]:
    _REGISTRY[cls.name] = cls
    return cls


def get_model_class(name: str) -> type[Recommender]:
    if name not in _REGISTRY:
        if name not in MODEL_NAMES:
            raise ConfigError(f"unknown model {name!r} (available: {', '.join(MODEL_NAMES)})")
        importlib.import_module(f"shoprec.models.{name}")
    return _REGISTRY[name]


def option_names(cls: type[Recommender]) -> frozenset[str]:
    """The run-time option keys a model takes in its config dicts (none without `Options`)."""
    return frozenset(f.name for f in dataclasses.fields(cls.Options)) if cls.Options is not None else frozenset()


def create_model(name: str, params: Mapping[str, Any] | None = None) -> Recommender:
    return get_model_class(name).from_dict(params)


def load_model(path: str | Path) -> Recommender:
    path = Path(path)
    if not (path / "config.json").exists():
        raise DataError(f"{path}: not a shoprec model artifact (no config.json)")
    cfg = json.loads((path / "config.json").read_text(encoding="utf-8"))
    cls = get_model_class(cfg["model"])
    # artifacts written before the run-time options left the config still hold them: they are dropped;
    # artifacts keep the parameter names they were saved with (renamed ones are mapped, silently)
    stored = {k: v for k, v in cfg["config"].items() if k not in option_names(cls)}
    model = cls.from_dict(renamed_params(cls.Config, stored, warn=False))
    ids = json.loads((path / "idmaps.json").read_text(encoding="utf-8"))
    meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
    model.users, model.items = IdMap.from_list(ids["users"]), IdMap.from_list(ids["items"])
    model.training_log = meta.get("training_log", [])
    model.fit_seconds = meta.get("fit_seconds", 0.0)
    model._set_state(load_file(str(path / "weights.safetensors")), meta.get("model_meta", {}))
    return model
