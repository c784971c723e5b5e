"""The recommendation log: every served list under its recommendation_id, for paging and feedback.

A list goes into the cache at once (pages and feedback read it there) and into the database by a
background writer that inserts the lists of the last `flush_s` seconds in one transaction: one write
per tenth of a second instead of one per request, so that workers do not queue on the database's
write lock. A lookup that misses the cache reads the database (after flushing this worker's queue).
With the in-process cache and several workers, another worker sees a list only once it is written
(within `flush_s`).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from shoprec.errors import ShoprecError
from shoprec.service.background import lower_priority
from shoprec.service.cache import Cache
from shoprec.service.errors import NotFound
from shoprec.service.platform import PlatformService
from shoprec.storage import Engine, storage_errors
from shoprec.storage.serving import ServingRepo

log = logging.getLogger(__name__)
LIST_TTL_S = 3600.0
MAX_PENDING = 10_000  # lists queued before a request writes them itself


class RecommendationLog:
    def __init__(self, engine: Engine, cache: Cache, platforms: PlatformService, flush_s: float = 0.1) -> None:
        self.engine, self.cache, self.platforms, self.flush_s = engine, cache, platforms, flush_s
        self._pending: list[tuple[str, dict[str, Any], float]] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @staticmethod
    def _key(platform: str, rec_id: str) -> str:
        return f"rec:{platform}:{rec_id}"

    def add(self, platform: str, entry: dict[str, Any]) -> None:
        """Remember a served list: {"recommendation_id", "user_external_id", "model", "items"}."""
        self.cache.set(self._key(platform, entry["recommendation_id"]), entry, LIST_TTL_S)
        with self._lock:
            self._pending.append((platform, entry, time.time()))
            full = len(self._pending) >= MAX_PENDING
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="shoprec-reclog", daemon=True)
                self._thread.start()
        if full:
            self.flush()

    def get(self, platform: str, rec_id: str) -> dict[str, Any]:
        entry = self.cache.get(self._key(platform, rec_id))
        if entry is None:
            entry = self._read(platform, rec_id)
        if entry is None:
            self.flush()
            entry = self._read(platform, rec_id)
        if entry is None:
            raise NotFound(f"no recommendation {rec_id!r} on platform {platform!r}")
        return dict(entry)

    def forget(self, platform: str, rec_ids: list[str]) -> None:
        """Drop these lists from the cache (an erasure deleted their rows)."""
        self.cache.delete(*(self._key(platform, r) for r in rec_ids))

    def _read(self, platform: str, rec_id: str) -> dict[str, Any] | None:
        with storage_errors(self.engine, "read a recommendation"), self.engine.connect() as conn:
            return ServingRepo(conn, self.platforms.platform_id(platform)).get_recommendation(rec_id)

    def flush(self) -> None:
        with self._lock:
            batch, self._pending = self._pending, []
        if not batch:
            return
        by_platform: dict[str, list[tuple[str, str | None, str | None, list[list[Any]], float]]] = {}
        for platform, entry, created in batch:
            by_platform.setdefault(platform, []).append(
                (entry["recommendation_id"], entry["user_external_id"], entry["model"], entry["items"], created))
        with storage_errors(self.engine, "log recommendations"), self.engine.begin() as conn:
            for platform, lists in by_platform.items():  # one multi-row insert per platform
                ServingRepo(conn, self.platforms.platform_id(platform)).add_recommendations(lists)

    def _run(self) -> None:
        lower_priority()
        while not self._stop.is_set():
            self._wake.wait(self.flush_s)
            try:
                self.flush()
            except ShoprecError as exc:  # the database is down: these lists stay in the cache only
                log.error("recommendation log: %s", exc)

    def close(self) -> None:
        """Stop the writer after storing what is queued (the cache is closed by its owner)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            self.flush()
        except ShoprecError as exc:
            log.error("recommendation log: %s", exc)
