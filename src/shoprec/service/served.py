"""Served models: each worker's loaded active model per platform (and the experiment variants it serves).

ServedModels: a worker checks which model is active at most every `poll_s` seconds; a newly activated model is
fetched (database and fsspec artifacts into the local cache, verified by hash; shoprec.service.models.ModelStore)
and loaded while the old one keeps serving, then swapped in with one reference assignment, so no request fails
during a swap. A model that cannot be loaded is recorded per platform (`failures()`, read by the readiness check)
and retried every LOAD_RETRY_S; meanwhile the last good model keeps serving.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from shoprec.service.artifacts import ArtifactRef
from shoprec.service.background import lower_priority
from shoprec.service.errors import ArtifactError

if TYPE_CHECKING:
    from shoprec.models.base import Recommender
    from shoprec.service.ann import AnnIndex
    from shoprec.service.catalog import CatalogView
    from shoprec.service.models import ModelStore
    from shoprec.service.scan import Int8Scan

log = logging.getLogger(__name__)
MAX_EXTRA_MODELS = 8  # non-active models (experiment variants) a worker keeps loaded
LOAD_RETRY_S = 30.0  # a model that could not be loaded is tried again after this long (a store back up)
__all__ = ["LoadFailure", "ServedModel", "ServedModels"]


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
                 scan_min_items: int | None = None, scan: str = "auto", history_length: int | None = None) -> None:
        self.store, self.poll_s, self.ann_threshold = store, poll_s, ann_threshold
        self.history_length = history_length  # events a served query holds (serving.history_length)
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

        context = int(getattr(model, "max_len", 0) or 0)  # a sequence model's resolved context
        if self.history_length is not None and context > self.history_length:
            log.warning("model %s (%s) reads up to %d events of history, but serving passes %d "
                        "(serving.history_length): its served lists see less than it was trained and evaluated on",
                        model_id, name, context, self.history_length)
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
