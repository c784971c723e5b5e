"""Pre-training one transformer across shops (`shoprec pretrain`, the job kind "pretrain") and the shops it
is read from: import files (`--data FORMAT:PATH`) or platforms (`--platform`, every pair linked by both
sides' consent, as transfer needs; shoprec.service.transfer).

The model is shoprec.models.transformer.pretrain's: the shops' events joined with their ids kept apart,
items represented by their text and mappable attributes (`item_ids=False`). Early stopping holds out each
user's last event (the leave-one-out validation of `shoprec evaluate`); the model kept is the best epoch's.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from shoprec.errors import ConfigError, DataError
from shoprec.storage import Engine, load_interactions, storage_errors
from shoprec.storage.privacy import link_state

if TYPE_CHECKING:  # the model modules load torch: imported where used (the services start without them)
    from shoprec.models.transformer import Transformer
    from shoprec.models.transformer.pretrain import Shop
    from shoprec.service.models import ModelStore

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Pretrained:
    """The pre-trained model and the facts pretrain.json and the reports hold."""

    model: Transformer
    facts: dict[str, Any]


def pretrain_params(params: Mapping[str, Any] | None) -> dict[str, Any]:
    """The pre-training parameters: PRETRAIN_DEFAULTS under `params` (validated by the model factory)."""
    from shoprec.models.factory import ModelFactory
    from shoprec.models.transformer.pretrain import PRETRAIN_DEFAULTS

    merged = {**PRETRAIN_DEFAULTS, **(params or {})}
    ModelFactory("transformer", merged)  # a bad parameter fails before any data is read
    return merged


def pretrain_shops(shops: Sequence[Shop], params: Mapping[str, Any] | None = None, *, seed: int = 0,
                   progress: Progress | None = None, sources: Mapping[str, Any] | None = None) -> Pretrained:
    """One transformer trained on all `shops` (each user's last event held out for early stopping).
    `sources`: facts about where the shops came from ({"data": [...]} or {"platforms": [...]})."""
    from shoprec.data.splits import leave_one_out
    from shoprec.evaluation.protocols import EvalConfig, ranking_validation
    from shoprec.models.factory import ModelFactory
    from shoprec.models.transformer import Transformer
    from shoprec.models.transformer.pretrain import join_shops, shop_facts

    say = progress or (lambda message: None)
    merged = pretrain_params(params)
    joined, catalog = join_shops(shops)
    if len(np.unique(joined.user)) < 2:
        raise DataError("pre-training: the shops have fewer than 2 users with events")
    split = leave_one_out(joined, validation=False)
    validation = ranking_validation(split.train, split.test, EvalConfig()) if len(split.test) else None
    say(f"pre-training on {len(shops)} shops: {joined.n_users:,} users, {joined.n_items:,} items, "
        f"{len(joined):,} events ({len(split.test):,} held out for validation)")
    started = time.perf_counter()
    model = ModelFactory("transformer", merged, seed=seed)()
    assert isinstance(model, Transformer)
    model.fit(split.train, catalog, validation=validation)
    val = [e for e in model.training_log if "val_NDCG@10" in e]
    best = max((e["val_NDCG@10"] for e in val), default=None)
    facts = {"shops": shop_facts(shops), **dict(sources or {}), "seed": seed,
             "best_epoch": model.best_epoch, "val_NDCG@10": best, "epochs_run": len(model.training_log),
             "fit_seconds": round(time.perf_counter() - started, 1),
             "text_encoder": model.config.text_encoder}
    say(f"pre-trained: best epoch {model.best_epoch}, validation NDCG@10 {best}")
    return Pretrained(model, facts)


def data_shops(data: Sequence[tuple[str, str]]) -> list[Shop]:
    """Shops from import files: (format, path) pairs read by shoprec.datasets.load, named by their paths."""
    from shoprec.evaluation.offline import load_dataset
    from shoprec.models.transformer.pretrain import Shop, shop_names

    names = shop_names([path for _, path in data])
    shops = []
    for name, (fmt, path) in zip(names, data, strict=True):
        dataset = load_dataset(fmt, path)
        shops.append(Shop(name, dataset.interactions, getattr(dataset, "catalog", None)))
    return shops


def check_consent(engine: Engine, platforms: Sequence[str]) -> None:
    """DataError unless every pair of `platforms` is linked by both sides' consent (shoprec platform link)."""
    with storage_errors(engine, "read platform links"), engine.connect() as conn:
        for i, a in enumerate(platforms):
            for b in platforms[i + 1:]:
                state = link_state(conn, a, b)
                if not (state["a"] and state["b"]):
                    raise DataError(f"pre-training across platforms {a!r} and {b!r} needs a link both consented to "
                                    f"(shoprec platform link {a} {b}, and {b} {a})")


def platform_shops(engine: Engine, platforms: Sequence[str]) -> list[Shop]:
    """Shops from platforms of the database (each pair linked by both sides' consent), their events weighted
    as `shoprec train` weights them."""
    if len(set(platforms)) != len(platforms):
        raise DataError(f"--platform: each platform once, got {list(platforms)}")
    from shoprec.models.transformer.pretrain import Shop
    from shoprec.preprocess.weights import apply_event_weights

    check_consent(engine, platforms)
    shops = []
    for name in platforms:
        data, catalog = load_interactions(engine, name)
        shops.append(Shop(name, apply_event_weights(data, drop_zero=True), catalog))
    return shops


# ---------------------------------------------------------------------------------- the job kind "pretrain"
def check_pretrain(params: Mapping[str, Any], limits: Mapping[str, float]) -> dict[str, Any]:
    """A pretrain job's parameters {platforms, params, seed}, checked at submit: `platforms` (default: the job's
    platform and those listed) are the shops, `params` the transformer's (with the deployment's caps). The
    consent of the links is checked when the job runs (a link may be given or withdrawn in between)."""
    from shoprec.service.jobs import check_limits

    unknown = sorted(set(params) - {"platforms", "params", "seed"})
    if unknown:
        raise ConfigError(f"unknown pretrain job field {unknown[0]!r} (fields: platforms, params, seed)")
    platforms = params.get("platforms") or []
    if not isinstance(platforms, list) or not all(isinstance(p, str) and p for p in platforms):
        raise ConfigError(f"pretrain job field 'platforms' must be a list of platform names, got {platforms!r}")
    model_params = params.get("params") or {}
    if not isinstance(model_params, Mapping):
        raise ConfigError(f"pretrain job field 'params' must be an object, got {type(model_params).__name__}")
    seed = params.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ConfigError(f"pretrain job field 'seed' must be an integer, got {seed!r}")
    check_limits(dict(model_params), limits)
    pretrain_params(model_params)
    return {"platforms": list(dict.fromkeys(platforms)), "params": dict(model_params), "seed": seed}


def run_pretrain_job(engine: Engine, store: ModelStore, platform: str, params: Mapping[str, Any],
                     progress: Progress | None = None) -> dict[str, Any]:
    """Pre-train on `platform` and the job's other platforms (each pair linked by both sides' consent) and
    register the model as an inactive model of `platform`; another platform starts from it with
    `--init-from MODEL_ID` when it is linked with every platform it was pre-trained on."""
    platforms = list(dict.fromkeys([platform, *params.get("platforms", [])]))
    shops = platform_shops(engine, platforms)
    result = pretrain_shops(shops, params.get("params") or {}, seed=int(params.get("seed", 0)), progress=progress,
                            sources={"platforms": platforms})
    model_id = store.register(platform, result.model, {"pretrain": result.facts})
    return {"model_id": model_id, "model": "transformer", "pretrain": result.facts}
