"""Model store and served models.

ModelStore: train a model on a platform's database snapshot, evaluate it on a held-out leave-one-out
split (shoprec.evaluation, strict protocol), refit on all data, write the artifact to a staging directory,
store it in the deployment's artifact store (shoprec.service.artifacts: a directory, the database or an
fsspec URL; its reference and sha256 go to the models table), register it and optionally activate it.
Activation first loads the model: one that cannot be loaded is refused (ArtifactError) and nothing changes.

ServedModels: each worker's loaded active model per platform. A worker checks which model is active
at most every `poll_s` seconds; a newly activated model is fetched (database and fsspec artifacts into the
local cache, verified by hash) and loaded while the old one keeps serving, then swapped in with one
reference assignment, so no request fails during a swap. A model that cannot be loaded is recorded per
platform (`failures()`, read by the readiness check) and retried every LOAD_RETRY_S; meanwhile the last
good model keeps serving.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from shoprec.errors import ConfigError, DataError
from shoprec.service import telemetry
from shoprec.service.artifacts import ArtifactRef, ArtifactStore, DirectoryStore
from shoprec.service.audit import record_audit
from shoprec.service.background import lower_priority
from shoprec.service.errors import ArtifactError, NotFound
from shoprec.service.platform import PlatformService
from shoprec.storage import Engine, storage_errors
from shoprec.storage.privacy import PrivacyRepo
from shoprec.storage.serving import ServingRepo

if TYPE_CHECKING:
    from shoprec.models.base import Recommender
    from shoprec.models.transformer import Transformer
    from shoprec.service.ann import AnnIndex
    from shoprec.service.catalog import CatalogView
    from shoprec.service.scan import Int8Scan

log = logging.getLogger(__name__)
Progress = Callable[[str], None]
MAX_EXTRA_MODELS = 8  # non-active models (experiment variants) a worker keeps loaded
LOAD_RETRY_S = 30.0  # a model that could not be loaded is tried again after this long (a store back up)


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
        if evaluate:
            say(f"evaluating {name} on a leave-one-out split ({len(data):,} events)")
            result = run_protocol(data, catalog, make, EvalConfig(protocol="loo"))
            metrics = {k: float(v) for k, v in result.metrics.items()}
            metrics["n_users_evaluated"] = result.n_users_evaluated
            metrics["protocol"] = "loo, strict (seen items excluded), full ranking"
        model: Recommender
        if zero_shot:  # the start model carried over to the catalog's items, no training
            say(f"carrying the start model over to {len(data.items):,} items")
            model = cast("Transformer", make()).carry_over(data.items, catalog)
        else:
            say(f"fitting {name} on all {len(data):,} events")
            model = make.fit(data, catalog)
        model_id = uuid.uuid4().hex
        config = config_to_dict(model.config)
        if features:
            config["features"] = features
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


@dataclass(eq=False)
class ServedModel:
    """A loaded model and its item index map into a catalog view (model index -> catalog index, -1 if gone)."""

    model_id: str
    name: str
    model: Recommender
    ann: AnnIndex | None = None  # candidates for large catalogs (inner-product models only)
    scan: Int8Scan | None = None  # exact candidates from int8 item vectors (inner-product models, mid-size catalogs)
    path: str = ""  # the artifact it was loaded from (an erasure rewrites it under a new path)
    _maps: tuple[CatalogView, np.ndarray, np.ndarray] | None = None

    def index_maps(self, view: CatalogView) -> tuple[np.ndarray, np.ndarray]:
        """(model -> catalog, catalog -> model) index arrays for this view (-1 where there is none)."""
        cached = self._maps
        if cached is not None and cached[0] is view:  # the view is held here, so `is` cannot be fooled
            return cached[1], cached[2]
        items = self.model.items.to_list() if self.model.items is not None else []
        to_catalog = view.items.lookup(items).astype(np.int64)
        to_model = np.full(len(view), -1, dtype=np.int64)
        ok = to_catalog >= 0
        to_model[to_catalog[ok]] = np.flatnonzero(ok)
        self._maps = (view, to_catalog, to_model)  # one view at a time: the newest
        return to_catalog, to_model


@dataclass(frozen=True, slots=True)
class LoadFailure:
    """Why a platform's active model is not served by this worker (readiness reports it)."""

    model_id: str
    reason: str
    serving: str | None  # the model served meanwhile (the last good one), if any


class ServedModels:
    def __init__(self, store: ModelStore, poll_s: float, ann_threshold: int | None = None,
                 scan_min_items: int | None = None, scan: str = "auto") -> None:
        self.store, self.poll_s, self.ann_threshold = store, poll_s, ann_threshold
        self.scan_min_items, self.scan_mode = scan_min_items, scan
        self._served: dict[str, ServedModel | None] = {}
        self._checked: dict[str, float] = {}
        self._loading: set[str] = set()
        self._failed: dict[tuple[str, str], tuple[float, str]] = {}  # (model id, artifact) -> (when, why); retried
        # after LOAD_RETRY_S
        self._failures: dict[str, LoadFailure] = {}  # platform -> its active model that cannot be loaded
        self._lock = threading.Lock()
        self._extra: dict[tuple[str, str], ServedModel | None] = {}  # non-active models by (platform, id)
        self._extra_lock = threading.Lock()

    def get(self, platform: str) -> ServedModel | None:
        """The platform's served model (None before any model was activated)."""
        if time.monotonic() - self._checked.get(platform, -1e9) >= self.poll_s:
            self._checked[platform] = time.monotonic()
            self.refresh(platform, wait=platform not in self._served)
        return self._served.get(platform)

    def get_by_id(self, platform: str, model_id: str) -> ServedModel | None:
        """Model `model_id` of the platform, active or not (experiment variants); loaded once per worker and
        kept (at most MAX_EXTRA_MODELS besides the active ones); None when it is unknown or cannot load."""
        current = self.get(platform)
        if current is not None and current.model_id == model_id:
            return current
        key = (platform, model_id)
        with self._extra_lock:
            if key in self._extra:
                return self._extra[key]
            row = self.store.get_model(platform, model_id)
            served: ServedModel | None = None
            if row is not None:
                ref = ArtifactRef(str(row["path"]), row.get("sha256"))
                if not self._recently_failed(model_id, ref):
                    try:
                        model = self.store.load_ref(platform, model_id, ref)
                        served = self._serve(model_id, row["name"], model, ref.uri)
                    except ArtifactError as exc:  # a broken artifact: the caller serves the active model instead
                        log.error("platform %s: %s", platform, exc)
                        self._failed[(model_id, ref.uri)] = (time.monotonic(), str(exc))
            if len(self._extra) >= MAX_EXTRA_MODELS:
                self._extra.pop(next(iter(self._extra)))
            self._extra[key] = served
            return served

    def load_all(self) -> dict[str, str]:
        """Load the active model of every platform now (at startup); returns platform -> model id."""
        for platform in self.store.platforms_with_models():
            self._checked[platform] = time.monotonic()
            self.refresh(platform, wait=True)
        return self.loaded()

    def activate(self, platform: str, model_id: str, *, actor: str = "api") -> None:
        """Make `model_id` the platform's active model and serve it in this worker before returning (other
        workers follow within `poll_s` plus their loading time). The model is loaded first: one that cannot
        be loaded is refused with an ArtifactError naming it and why, and nothing changes (the current model
        keeps serving). `actor` goes to the audit log."""
        name, ref = self.store.artifact(platform, model_id)
        current = self._served.get(platform)
        if current is not None and current.model_id == model_id and current.path == ref.uri:
            served = current
        else:
            try:
                served = self._serve(model_id, name, self.store.load_ref(platform, model_id, ref), ref.uri)
            except ArtifactError as exc:
                log.error("platform %s: activation refused: %s", platform, exc)
                raise
        self.store.activate(platform, model_id, actor=actor, check=False)
        self._served[platform] = served
        self._loaded(platform, model_id, ref)

    def refresh(self, platform: str, *, wait: bool = True) -> None:
        """Load the active model when it is not the served one (in the background unless `wait`)."""
        active = self.store.active_artifact(platform)
        current = self._served.get(platform)
        if active is None:
            self._served.setdefault(platform, None)
            self._failures.pop(platform, None)
            return
        model_id, _, ref = active
        if current is not None and current.model_id == model_id and current.path in ("", ref.uri):
            self._failures.pop(platform, None)
            return
        failed = self._recently_failed(model_id, ref)
        if failed is not None:
            self._failures[platform] = LoadFailure(model_id, failed, current.model_id if current else None)
            return
        if wait:
            self._load(platform, active)
            return
        with self._lock:
            if platform in self._loading:
                return
            self._loading.add(platform)
        threading.Thread(target=self._load_aside, args=(platform, active), daemon=True).start()

    def _recently_failed(self, model_id: str, ref: ArtifactRef) -> str | None:
        """Why loading this model failed less than LOAD_RETRY_S ago, else None."""
        failed = self._failed.get((model_id, ref.uri))
        if failed is None or time.monotonic() - failed[0] >= LOAD_RETRY_S:
            return None
        return failed[1]

    def _load_aside(self, platform: str, active: tuple[str, str, ArtifactRef]) -> None:
        lower_priority()  # the requests keep the old model meanwhile: they go first
        self._load(platform, active)

    def _load(self, platform: str, active: tuple[str, str, ArtifactRef]) -> None:
        model_id, name, ref = active
        try:
            model = self.store.load_ref(platform, model_id, ref)
            self._served[platform] = self._serve(model_id, name, model, ref.uri)
            log.info("platform %s: serving model %s (%s)", platform, model_id, name)
            self._loaded(platform, model_id, ref)
        except Exception as exc:  # a broken artifact must not take the service down: keep the old model
            current = self._served.get(platform)
            log.error("platform %s: %s%s", platform, exc,
                      f" (still serving model {current.model_id})" if current is not None else "")
            self._failed[(model_id, ref.uri)] = (time.monotonic(), str(exc))
            self._failures[platform] = LoadFailure(model_id, str(exc), current.model_id if current else None)
            self._served.setdefault(platform, None)
        finally:
            with self._lock:
                self._loading.discard(platform)

    def _loaded(self, platform: str, model_id: str, ref: ArtifactRef) -> None:
        """Bookkeeping after a model was swapped in: no failure left for it; cached artifacts no model has any
        more (an erasure replaced them) are removed from this machine."""
        self._failed.pop((model_id, ref.uri), None)
        self._failures.pop(platform, None)
        self._checked[platform] = time.monotonic()
        try:
            self.store.artifacts.prune_cache()
        except Exception as exc:  # housekeeping only
            log.warning("cannot prune the artifact cache: %s", exc)

    def failures(self) -> dict[str, LoadFailure]:
        """platform -> why its active model is not served here (readiness answers 503 while any is)."""
        return dict(self._failures)

    def check_all(self) -> dict[str, LoadFailure]:
        """Look at every platform's active model (at most every `poll_s`, loading what is new) and return the
        failures: what the readiness check reports."""
        for platform in self.store.platforms_with_models():
            self.get(platform)
        return self.failures()

    def _serve(self, model_id: str, name: str, model: Recommender, path: str) -> ServedModel:
        """The served model with its candidate structures, built before it is swapped in: an ANN index for a
        catalog above the ANN threshold, else the exact int8 scan from `scan_min_items` items (in mode "auto"
        where it is faster than the float32 product on this CPU: shoprec.service.scan)."""
        from shoprec.models.vectors import vector_scorer
        from shoprec.service.scan import Int8Scan

        ann = self._ann(model)
        scan = None
        if ann is None and self.scan_min_items is not None and model.n_items >= self.scan_min_items:
            vectors = vector_scorer(model)
            scan = Int8Scan.build(vectors[1], self.scan_mode) if vectors is not None else None
        return ServedModel(model_id, name, model, ann, path=path, scan=scan)

    def _ann(self, model: Recommender) -> AnnIndex | None:
        """An ANN index for a catalog above the threshold, built before the model is swapped in."""
        from shoprec.models.vectors import vector_scorer
        from shoprec.service.ann import AnnIndex, faiss_available

        if self.ann_threshold is None or model.n_items <= self.ann_threshold:
            return None
        vectors = vector_scorer(model)
        if vectors is None or not faiss_available():
            log.warning("model %s: %d items but no ANN index (needs faiss and an inner-product model): "
                        "every item is scored", model.name, model.n_items)
            return None
        return AnnIndex(vectors[1])

    def loaded(self) -> dict[str, str]:
        """platform -> served model id (for /metrics and readiness)."""
        return {p: s.model_id for p, s in self._served.items() if s is not None}
