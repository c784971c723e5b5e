"""Model store: training, registration, activation and loading of a platform's models.

ModelStore: train a model on a platform's database snapshot, evaluate it on a held-out leave-one-out
split (shoprec.evaluation, strict protocol), refit on all data, write the artifact to a staging directory,
store it in the deployment's artifact store (shoprec.service.artifacts: a directory, the database or an
fsspec URL; its reference and sha256 go to the models table), register it and optionally activate it.
Activation first loads the model: one that cannot be loaded is refused (ArtifactError) and nothing changes.

The models each worker serves (ServedModels, ServedModel, LoadFailure) are in shoprec.service.served,
re-exported here.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from shoprec.errors import ConfigError, DataError
from shoprec.service import telemetry
from shoprec.service.artifacts import ArtifactRef, ArtifactStore, DirectoryStore
from shoprec.service.audit import record_audit
from shoprec.service.errors import ArtifactError, NotFound
from shoprec.service.platform import PlatformService
from shoprec.service.served import LoadFailure, ServedModel, ServedModels
from shoprec.storage import Engine, storage_errors
from shoprec.storage.privacy import PrivacyRepo
from shoprec.storage.serving import ServingRepo

if TYPE_CHECKING:
    from shoprec.models.base import Recommender
    from shoprec.models.transformer import Transformer

log = logging.getLogger(__name__)
Progress = Callable[[str], None]
__all__ = ["LoadFailure", "ModelInfo", "ModelStore", "ServedModel", "ServedModels", "TrainedModel"]


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """A registered model (ModelOut): its config and offline metrics as stored, whether it is served."""

    model_id: str
    name: str
    config: dict[str, Any] | None
    metrics: dict[str, Any] | None
    active: bool
    created_at: float
    activated_at: float | None


@dataclass(frozen=True, slots=True)
class TrainedModel:
    """A model `ModelStore.train` stored: its id and name, offline metrics (empty without evaluation), whether it
    was activated, fit time, artifact path, and (when used) feature hooks, transfer facts and the DP budget."""

    model_id: str
    model: str
    metrics: dict[str, Any]
    active: bool
    fit_seconds: float
    path: str
    features: dict[str, Any] | None = None
    transfer: dict[str, Any] | None = None
    privacy: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        """The JSON answer of `shoprec train` and a training job's result (optional parts only when set)."""
        out: dict[str, Any] = {"model_id": self.model_id, "model": self.model, "metrics": self.metrics,
                               "active": self.active, "fit_seconds": self.fit_seconds, "path": self.path}
        for key in ("features", "transfer", "privacy"):
            if getattr(self, key):
                out[key] = getattr(self, key)
        return out


class ModelStore:
    def __init__(self, engine: Engine, platforms: PlatformService, artifacts: ArtifactStore | Path) -> None:
        """`artifacts`: the deployment's store (shoprec.service.artifacts.open_artifact_store(settings, engine));
        a plain directory path is a directory store there (made absolute)."""
        if not isinstance(artifacts, ArtifactStore):
            root = Path(artifacts).expanduser().resolve()
            artifacts = DirectoryStore(root, engine, root / ".cache")
        self.engine, self.platforms, self.artifacts = engine, platforms, artifacts

    def train(self, platform: str, name: str, params: Mapping[str, Any] | None = None, *, activate: bool = False,
              evaluate: bool = True, progress: Progress | None = None,
              features: Mapping[str, Any] | None = None, from_platform: str | None = None,
              init_from: str | None = None, zero_shot: bool = False) -> TrainedModel:
        """Train, evaluate, store and register a model.

        `from_platform`: also learn from what this platform's linked users did there (transfer; needs a
        link both platforms consented to; see shoprec.service.transfer). The evaluation then runs on the
        joined data too.

        `init_from`: fine-tune (model 'transformer' only): start from the weights of this stored transformer
        of the platform or of a platform linked with it by both sides' consent (see
        shoprec.service.transfer.init_source), or of a `shoprec pretrain` directory; its network parameters
        are the defaults of `params`. `zero_shot` (with `init_from`): no training; the start model carried
        over to the platform's catalog (which may have no events yet), scoring items through their text.

        `features`: feature-hook values (event-type weights, recency decay, text on/off; see
        shoprec.preprocess.features) applied to the training data of the evaluation and of the final fit, as
        `shoprec tune` applied them; recorded with the model."""
        from shoprec.config import config_to_dict
        from shoprec.evaluation import EvalConfig, run_protocol
        from shoprec.models.factory import ModelFactory
        from shoprec.preprocess.weights import apply_event_weights
        from shoprec.storage import load_interactions

        say = progress or (lambda msg: None)
        features = dict(features or {})
        make = ModelFactory(name, params, features=features)  # a bad name, parameter or feature fails now
        platform_id = self.platforms.platform_id(platform)
        transfer: dict[str, Any] = {}
        source = None
        if init_from:
            from shoprec.service.transfer import check_inherited, is_directory_source, resolve_source

            if name != "transformer":
                raise DataError(f"--init-from fine-tunes model 'transformer', not {name!r}")
            source = resolve_source(self.engine, platform, init_from, load=self.load_ref)
            params = (check_inherited(source, params or {}) if is_directory_source(init_from)
                      else {**source.params, **(params or {})})
            make = source.factory(ModelFactory(name, params, features=features), zero_shot=zero_shot)
            transfer.update(source.facts)
            transfer.update({"zero_shot": True} if zero_shot else {})
            say(f"starting from model {source.label}" + (" (zero-shot: no training)" if zero_shot else ""))
        elif zero_shot:
            raise ConfigError("--zero-shot carries a pre-trained model over to the platform: it needs --init-from")
        say(f"reading platform {platform!r} from the database")
        if from_platform:
            from shoprec.service.transfer import linked_training_data

            joined = linked_training_data(self.engine, platform, from_platform)
            raw, catalog = joined.interactions, joined.catalog
            transfer.update(joined.facts)
            say(f"joined {transfer['events_from_platform']:,} events of {transfer['linked_users']:,} users "
                f"linked to {from_platform!r}")
        else:
            raw, catalog = load_interactions(self.engine, platform)
        data = apply_event_weights(raw, drop_zero=True)
        if zero_shot and len(data) == 0:
            evaluate = False  # a new platform: nothing to evaluate on yet
        elif len(data) == 0:
            raise DataError(f"platform {platform!r} has no positive events to train on")
        metrics: dict[str, Any] = {}
        chosen: dict[str, Any] = {}  # what the evaluated fit chose (Recommender.chosen_params)
        if evaluate:
            say(f"evaluating {name} on a leave-one-out split ({len(data):,} events)")
            result = run_protocol(data, catalog, make, EvalConfig(protocol="loo"))
            metrics = {k: float(v) for k, v in result.metrics.items()}
            metrics["n_users_evaluated"] = result.n_users_evaluated
            metrics["protocol"] = "loo, strict (seen items excluded), full ranking"
            if result.model is not None and not zero_shot:  # the final fit reuses what the evaluated fit chose
                chosen = result.model.chosen_params()
                make = make.with_params(chosen)
                compared = getattr(result.model, "initialised_from", {}).get("validation", {})
                if compared.get("kept") == "start":  # the fine-tuning validated below its start (keep_the_better)
                    zero_shot = True
                    transfer.update(zero_shot=True, kept_start=compared)
                    say("the fine-tuned model validated below its start: storing the start carried over")
        model: Recommender
        if zero_shot:  # the start model carried over to the catalog's items, no training
            say(f"carrying the start model over to {len(data.items):,} items")
            carried = cast("Transformer", make()).carry_over(data.items, catalog)
            carried.weigh_carried(None)  # a text_affinity given is used, as the evaluated fit uses it
            model = carried
        else:
            say(f"fitting {name} on all {len(data):,} events")
            model = make.fit(data, catalog)
        model_id = uuid.uuid4().hex
        config = config_to_dict(model.config)
        if features:
            config["features"] = features
        if chosen:
            config["chosen_on_evaluation"] = chosen
        if source is not None:
            transfer["fresh_weights"] = getattr(model, "initialised_from", {}).get("fresh", [])  # not copied
        if transfer:
            config["transfer"] = transfer
        ref = self._store(platform, platform_id, model_id, model, name, config, metrics, activate)
        say(f"stored model {model_id} in {ref.uri}" + (" (active)" if activate else ""))
        return TrainedModel(model_id, name, metrics, activate, round(model.fit_seconds, 3), ref.uri,
                            features=features or None, transfer=transfer or None,
                            privacy=getattr(model, "privacy", None) or None)  # privacy: the DP-SGD budget

    def register(self, platform: str, model: Recommender, config_extra: Mapping[str, Any], *,
                 metrics: Mapping[str, Any] | None = None, activate: bool = False) -> str:
        """Store and register a model fitted elsewhere (e.g. pre-trained across platforms: shoprec.service.pretrain)
        with its config plus `config_extra`; returns its id."""
        from shoprec.config import config_to_dict

        model_id = uuid.uuid4().hex
        config = {**config_to_dict(model.config), **config_extra}
        self._store(platform, self.platforms.platform_id(platform), model_id, model, model.name, config,
                    dict(metrics or {}), activate)
        return model_id

    def _store(self, platform: str, platform_id: int, model_id: str, model: Recommender, name: str,
               config: dict[str, Any], metrics: dict[str, Any], activate: bool) -> ArtifactRef:
        """Write the artifact to a staging directory, put it in the artifact store and register it, all or
        nothing: a registration that fails removes the stored artifact (database rows roll back with it)."""
        staging = Path(tempfile.mkdtemp(prefix=f".{model_id}.", dir=self.artifacts.staging_root()))
        ref: ArtifactRef | None = None
        try:
            model.save(staging / "model")
            now = time.time()
            with storage_errors(self.engine, "register the model"), self.engine.begin() as conn:
                ref = self.artifacts.put(platform, model_id, staging / "model", platform_id=platform_id, conn=conn)
                repo = ServingRepo(conn, platform_id)
                repo.add_model(model_id, name, _jsonable(config), metrics, ref.uri, now, sha256=ref.sha256)
                PrivacyRepo(conn, platform_id).clear_retrain_flag()  # trained on the data as it is now
                if activate:
                    repo.activate_model(model_id, now)
                    record_audit(conn, platform_id=platform_id, action="model.activate", actor="train",
                                 subject=model_id)
            return ref
        except BaseException:
            if ref is not None:
                try:
                    self.artifacts.delete(ref)
                except Exception as exc:  # the original error matters more
                    log.warning("model %s: cannot remove its stored artifact %s: %s", model_id, ref.uri, exc)
            raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def list_models(self, platform: str) -> list[ModelInfo]:
        """Every registered model of the platform, oldest first (without artifact paths)."""
        with storage_errors(self.engine, "list models"), self.engine.connect() as conn:
            rows = ServingRepo(conn, self.platforms.platform_id(platform)).list_models()
        return [ModelInfo(r["model_id"], r["name"], r["config"], r["metrics"], bool(r["active"]), r["created_at"],
                          r["activated_at"]) for r in rows]

    def activate(self, platform: str, model_id: str, *, actor: str = "api", check: bool = True) -> None:
        """Make `model_id` the active model (one transaction, with its audit record). With `check` (the
        default) the model is loaded first: one that cannot be loaded is refused (ArtifactError naming the model
        and why) and nothing changes."""
        platform_id = self.platforms.platform_id(platform)
        if check:
            self.load(platform, model_id)
        with storage_errors(self.engine, "activate a model"), self.engine.begin() as conn:
            if not ServingRepo(conn, platform_id).activate_model(model_id, time.time()):
                raise NotFound(f"no model {model_id!r} on platform {platform!r}")
            record_audit(conn, platform_id=platform_id, action="model.activate", actor=actor, subject=model_id)

    def artifact(self, platform: str, model_id: str) -> tuple[str, ArtifactRef]:
        """(name, artifact reference) of a model of the platform; NotFound when there is none."""
        row = self.get_model(platform, model_id)
        if row is None:
            raise NotFound(f"no model {model_id!r} on platform {platform!r}")
        return str(row["name"]), ArtifactRef(str(row["path"]), row.get("sha256"))

    def load(self, platform: str, model_id: str) -> Recommender:
        """Model `model_id` of the platform, loaded from its artifact (NotFound, or ArtifactError saying why not)."""
        return self.load_ref(platform, model_id, self.artifact(platform, model_id)[1])

    def load_ref(self, platform: str, model_id: str, ref: ArtifactRef) -> Recommender:
        """The model stored at `ref`: fetched (verified by hash) and loaded; ArtifactError naming the model."""
        from shoprec.models.base import load_model

        what = f"model {model_id} of platform {platform!r} cannot be loaded"
        start = time.perf_counter()
        try:
            model = load_model(self.artifacts.fetch(ref))
        except ArtifactError as exc:
            telemetry.MODEL_LOADS.labels(platform=platform, outcome="failed").inc()
            raise ArtifactError(f"{what}: {exc}") from None
        except Exception as exc:  # a truncated or foreign file inside the artifact
            telemetry.MODEL_LOADS.labels(platform=platform, outcome="failed").inc()
            raise ArtifactError(f"{what}: its artifact {ref.uri} is unreadable ({type(exc).__name__}: {exc})") from None
        telemetry.MODEL_LOADS.labels(platform=platform, outcome="loaded").inc()
        telemetry.MODEL_LOAD_SECONDS.labels(platform=platform).observe(time.perf_counter() - start)
        return model

    def get_model(self, platform: str, model_id: str) -> dict[str, Any] | None:
        """The registry row of one model of the platform (with its artifact path), or None."""
        with storage_errors(self.engine, "read a model"), self.engine.connect() as conn:
            return ServingRepo(conn, self.platforms.platform_id(platform)).get_model(model_id)

    def platforms_with_models(self) -> list[str]:
        """Every platform that has an active model."""
        from shoprec.storage import list_platforms

        with storage_errors(self.engine, "list platforms"), self.engine.connect() as conn:
            names = list_platforms(conn)
            return [name for name, key in names.items() if ServingRepo(conn, key).active_model() is not None]

    def active(self, platform: str) -> tuple[str, str, str] | None:
        """(model_id, name, artifact reference) of the platform's active model, or None."""
        with storage_errors(self.engine, "read the active model"), self.engine.connect() as conn:
            return ServingRepo(conn, self.platforms.platform_id(platform)).active_model()

    def active_artifact(self, platform: str) -> tuple[str, str, ArtifactRef] | None:
        """(model_id, name, artifact reference with its sha256) of the platform's active model, or None."""
        with storage_errors(self.engine, "read the active model"), self.engine.connect() as conn:
            row = ServingRepo(conn, self.platforms.platform_id(platform)).active_artifact()
        return None if row is None else (row[0], row[1], ArtifactRef(row[2], row[3]))


def _jsonable(config: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in config.items()}
