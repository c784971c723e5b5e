"""`shoprec.Recommender`: the library face of shoprec (fit / recommend / similar_items / explain / evaluate /
save / load, in the manner of `implicit`), over the same parts as the server.

- Data in: DataFrames parsed row by row by the import formats' parsers (shoprec.library.frames), cleaned by the
  same rules (`datasets.load_records`), weighted as training weighs a platform's events
  (`apply_event_weights(drop_zero=True)`), and fitted through THE model factory (`models.factory.ModelFactory`).
- Lists out: `shoprec.service.local.LocalRecommend`, which is RecommendService itself (filters, fallback chain,
  `ranking.top_k`, leave-one-out reasons) over an in-memory view, model and user states. Nothing is written
  to a recommendation log, no experiment is consulted: a notebook never records an exposure.
- External ids in and out; a user or item the fitted data does not know is a NotFound naming it.
- `save(dir)` / `Recommender.load(dir)`: the model's own artifact (safetensors + JSON) beside the fitted
  events and catalog (safetensors + JSON), written to a temporary directory and renamed: no pickle, nothing
  half-written.

Business rules (`filter`, `boost`, `pin`, `max_per_category`, `max_per_brand`, `diversity`) are keyword
arguments of `recommend` / `recommend_for_history`, parsed in one place (`_rules`) by shoprec.rules into the
Filters the serving path takes: the same rules, errors and reasons as the API.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import numpy as np

from shoprec.data import IdMap, Interactions, ItemCatalog
from shoprec.errors import ConfigError, DataError
from shoprec.library.frames import event_records, item_records
from shoprec.library.results import Explained, Recommendations
from shoprec.rules import Rules
from shoprec.service.config import ServingConfig
from shoprec.service.errors import NotFound
from shoprec.service.local import LocalRecommend, states_from_events, view_from_catalog
from shoprec.service.models import ServedModel
from shoprec.service.recommend import Filters

PLATFORM = "local"  # the platform name the serving path is given (one in-memory platform)
FORMAT = 1  # the saved directory's layout version
_EVENT_ARRAYS = ("user", "item", "weight", "value", "timestamp", "event_type")


@dataclass
class _Fitted:
    events: Interactions  # every cleaned event (all types): user states and popularity
    catalog: ItemCatalog
    service: LocalRecommend


class Recommender:
    """A recommender over DataFrames of events (and items). `model`: a model name (shoprec.models.MODEL_NAMES);
    `config`: its parameters (as `shoprec train --config`); `serving`: the serving settings that shape lists
    (history_length, repurchasable categories, max_k...); `cleaning`: the ingest cleaning rules
    (shoprec.preprocess.clean.CleaningConfig fields)."""

    def __init__(self, model: str = "ease", config: Mapping[str, Any] | None = None, *,
                 serving: ServingConfig | None = None, cleaning: Mapping[str, Any] | None = None,
                 features: Mapping[str, Any] | None = None) -> None:
        from shoprec.models.factory import ModelFactory

        self.factory = ModelFactory(model, config, features=features)  # an unknown model or parameter fails now
        self.serving = serving or ServingConfig()
        self.cleaning = dict(cleaning or {})
        self._fitted: _Fitted | None = None

    @property
    def model(self) -> Any:
        """The fitted shoprec model (shoprec.models.base.Recommender)."""
        served = self._require().service.served
        assert served is not None
        return served.model

    # ------------------------------------------------------------------ fitting
    def fit(self, events: Any, items: Any = None) -> Self:
        """Learn from an events DataFrame (user_id, item_id, event_type, timestamp[, value], the events file
        schema) and an optional items DataFrame (item_id[, title, description, category, brand, price,
        available, ...]). Returns self."""
        raw, catalog = _dataset(events, items, self.cleaning)
        model = self.factory.fit(_training(raw), catalog)
        self._fitted = _build(raw, catalog, model, self.serving)
        return self

    def evaluate(self, events: Any = None, items: Any = None, *, protocol: str = "loo",
                 ks: Sequence[int] = (10, 20), cutoff: str | None = None, seed: int = 0) -> dict[str, Any]:
        """Offline metrics of this model configuration (shoprec.evaluation, strict protocol: seen items are not
        ranked) on `events` (default: the fitted events): {"NDCG@10": ..., "HR@10": ..., "n_users_evaluated"}.
        `protocol`: loo (leave the last event per user out) or temporal (with `cutoff`)."""
        from shoprec.evaluation import EvalConfig, run_protocol

        if events is None:
            fitted = self._require()
            raw, catalog = fitted.events, fitted.catalog
        else:
            raw, catalog = _dataset(events, items, self.cleaning)
        cfg = EvalConfig(protocol=protocol, ks=tuple(ks), cutoff=cutoff, seed=seed)
        result = run_protocol(_training(raw), catalog, self.factory, cfg)
        return {**{k: float(v) for k, v in result.metrics.items()}, "n_users_evaluated": result.n_users_evaluated}

    # ------------------------------------------------------------------ lists
    def recommend(self, user_id: str, k: int = 10, *, category: str | None = None, min_price: float | None = None,
                  max_price: float | None = None, exclude: Iterable[str] = (), include_seen: bool = False,
                  **rules: Any) -> Recommendations:
        """Top-k items for a user of the fitted events, as GET /v1/recommendations answers: the user's
        purchases, dislikes and (unless `include_seen`) seen items left out; `category` (a path prefix),
        `min_price`/`max_price` and `exclude` filter; each item with its score and reason."""
        service = self._require().service
        user_id = self._known_user(user_id)
        filters = Filters(category, min_price, max_price, tuple(exclude), include_seen, _rules(rules))
        return Recommendations.of(service.recommend(PLATFORM, user_id, k, filters=filters))

    def recommend_for_history(self, item_ids: Sequence[str], k: int = 10, *, category: str | None = None,
                              min_price: float | None = None, max_price: float | None = None,
                              exclude: Iterable[str] = (), include_seen: bool = False,
                              **rules: Any) -> Recommendations:
        """Top-k items for an anonymous visitor who interacted with `item_ids` (oldest first), as
        POST /v1/sessions/recommendations answers; the same filters and business rules as `recommend`."""
        service = self._require().service
        history = [self._known_item(item) for item in item_ids]
        filters = Filters(category, min_price, max_price, tuple(exclude), include_seen, _rules(rules))
        return Recommendations.of(service.session(PLATFORM, history, k, filters))

    def similar_items(self, item_id: str, k: int = 10, **rules: Any) -> Recommendations:
        """Items like `item_id`: the model's item-to-item scores, then text similarity, then popular; the same
        business rules as `recommend` (GET /v1/items/{id}/similar)."""
        service = self._require().service
        return Recommendations.of(service.similar(PLATFORM, self._known_item(item_id), k, _rules(rules)))

    def explain(self, user_id: str, item_id: str) -> Explained:
        """Why `item_id` would be recommended to `user_id` (recommended or not): the model's leave-one-out
        attribution over the user's history, else the popularity fallback that would place it."""
        service = self._require().service
        user_id, item_id = self._known_user(user_id), self._known_item(item_id)
        answer = service.explain(PLATFORM, user_id, item_id)
        return Explained(user_id, item_id, answer.score, answer.reason)

    # ------------------------------------------------------------------ artifacts
    def save(self, path: str | Path) -> Path:
        """Write the fitted recommender to directory `path` (replaced whole if it is a saved recommender)."""
        from safetensors.numpy import save_file

        fitted = self._require()
        path = Path(path)
        if path.exists() and not (path / "recommender.json").exists():
            raise DataError(f"{path} exists and is not a saved shoprec Recommender: not overwriting it")
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
        try:
            self.model.save(staging / "model")
            ev, cat = fitted.events, fitted.catalog
            arrays = {f"events.{n}": np.ascontiguousarray(getattr(ev, n)) for n in _EVENT_ARRAYS}
            arrays.update({"items.price": np.asarray(cat.price, np.float32),
                           "items.available": np.asarray(cat.available, np.uint8)})
            save_file(arrays, str(staging / "data.safetensors"))
            doc = {"users": ev.users.to_list(), "items": ev.items.to_list(), "catalog_items": cat.items.to_list(),
                   **{c: list(getattr(cat, c)) for c in ("title", "description", "category", "brand", "attributes")}}
            (staging / "data.json").write_text(json.dumps(doc, default=str), encoding="utf-8")
            meta = {"format": FORMAT, "model": self.factory.name, "params": self.factory.params,
                    "features": self.factory.features, "cleaning": self.cleaning}
            (staging / "recommender.json").write_text(json.dumps(meta, indent=1, default=str), encoding="utf-8")
            if path.exists():
                shutil.rmtree(path)
            staging.rename(path)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return path

    @classmethod
    def load(cls, path: str | Path, *, serving: ServingConfig | None = None) -> Recommender:
        """A recommender `save` wrote (lists equal to the saved one's)."""
        from safetensors.numpy import load_file

        from shoprec.models.base import load_model

        path = Path(path)
        if not (path / "recommender.json").exists():
            raise DataError(f"{path}: not a saved shoprec Recommender (no recommender.json)")
        meta = json.loads((path / "recommender.json").read_text(encoding="utf-8"))
        if meta.get("format") != FORMAT:
            raise DataError(f"{path}: saved in layout {meta.get('format')!r}; this shoprec reads layout {FORMAT}")
        out = cls(meta["model"], meta["params"], serving=serving, cleaning=meta["cleaning"],
                  features=meta["features"])
        arrays, doc = load_file(str(path / "data.safetensors")), json.loads((path / "data.json").read_text("utf-8"))
        events = Interactions(users=IdMap.from_list(doc["users"]), items=IdMap.from_list(doc["items"]),
                              **{n: arrays[f"events.{n}"] for n in _EVENT_ARRAYS})
        catalog = ItemCatalog(items=IdMap.from_list(doc["catalog_items"]), title=doc["title"],
                              description=doc["description"], category=doc["category"], brand=doc["brand"],
                              price=arrays["items.price"], available=arrays["items.available"].astype(bool),
                              attributes=doc["attributes"])
        out._fitted = _build(events, catalog, load_model(path / "model"), out.serving)
        return out

    # ------------------------------------------------------------------ pieces
    def _require(self) -> _Fitted:
        if self._fitted is None:
            raise DataError("the Recommender is not fitted: call fit(events) or Recommender.load(path) first")
        return self._fitted

    def _known_user(self, user_id: Any) -> str:
        """The user's id as fitted (ids are strings: a DataFrame's integer ids are read as their text)."""
        uid = str(user_id).strip()
        if uid not in self._require().events.users:
            raise NotFound(f"no user {uid!r} in the fitted events (recommend_for_history serves a visitor "
                           "from their items)")
        return uid

    def _known_item(self, item_id: Any) -> str:
        iid = str(item_id).strip()
        if iid not in self._require().service.view.items:
            raise NotFound(f"no item {iid!r} in the fitted events or items")
        return iid


RULES = ("filter", "boost", "pin", "max_per_category", "max_per_brand", "diversity")


def _rules(rules: Mapping[str, Any]) -> Rules | None:
    """The business-rule keywords of `recommend` as the serving path's Rules (shoprec.rules: the same parser,
    checks and errors as the API's query parameters); None without any."""
    for name in rules:
        if name not in RULES:
            raise ConfigError(f"got an unknown argument {name!r} (rules: {', '.join(RULES)})")
    return Rules.parse(**rules) if rules else None


def _dataset(events: Any, items: Any, cleaning: Mapping[str, Any]) -> tuple[Interactions, ItemCatalog]:
    """The cleaned events (every type) and catalog of DataFrames, as `shoprec import` would store them."""
    from shoprec.datasets import load_records

    records = [*(item_records(items) if items is not None else []), *event_records(events)]
    dataset = load_records(records, fmt="dataframe", cleaning=cleaning)
    if len(dataset.interactions) == 0:
        raise DataError("the events DataFrame has no events left after cleaning")
    return dataset.interactions, dataset.catalog


def _training(raw: Interactions) -> Interactions:
    """The events a model trains on, weighted as `shoprec train` weighs a platform's (zero-weight types out)."""
    from shoprec.preprocess.weights import apply_event_weights

    data = apply_event_weights(raw, drop_zero=True)
    if len(data) == 0:
        raise DataError("the events have no positive events (views, clicks, carts, purchases...) to train on")
    return data


def _build(events: Interactions, catalog: ItemCatalog, model: Any, serving: ServingConfig) -> _Fitted:
    served = ServedModel("local", model.name, model)
    view = view_from_catalog(catalog, events)
    states = states_from_events(events, serving.history_length)
    return _Fitted(events, catalog, LocalRecommend(serving, view, served, states))
