"""A platform's saved default business rules: read (cached per worker), set (checked against the catalog)
and cleared. RecommendService combines them with each request's rules (shoprec.rules.Rules.combined).

Each worker keeps the parsed rules of a platform for at most `ttl` seconds, so a change made through another
worker applies within that time (at once in the worker that made it).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from shoprec.rules import Rules
from shoprec.service.catalog import CatalogViews
from shoprec.service.platform import PlatformService
from shoprec.storage import Engine, storage_errors
from shoprec.storage.rules import RulesRepo


@dataclass(frozen=True)
class SavedRules:
    """A platform's saved rules (empty when none) and when they were saved (None: never)."""

    platform: str
    rules: Rules
    updated_at: float | None

    def to_json(self) -> dict[str, Any]:
        return {"platform": self.platform, **self.rules.to_json(), "updated_at": self.updated_at}


class RulesService:
    def __init__(self, engine: Engine, platforms: PlatformService, catalogs: CatalogViews, ttl: float) -> None:
        self.engine, self.platforms, self.catalogs, self.ttl = engine, platforms, catalogs, ttl
        self._cache: dict[str, tuple[float, SavedRules]] = {}
        self._lock = threading.Lock()

    def get(self, platform: str) -> SavedRules:
        cached = self._cache.get(platform)
        if cached is not None and time.monotonic() - cached[0] < self.ttl:
            return cached[1]
        key = self.platforms.platform_id(platform)
        with storage_errors(self.engine, "read the saved rules"), self.engine.connect() as conn:
            row = RulesRepo(conn, key).get()
        saved = SavedRules(platform, Rules.from_json(row[0]) if row else Rules(), row[1] if row else None)
        with self._lock:
            self._cache[platform] = (time.monotonic(), saved)
        return saved

    def set(self, platform: str, rules: Rules) -> SavedRules:
        """Save `rules` as the platform's defaults, after checking them on its catalog (RuleError naming an
        unknown pinned item or an attribute no item has; nothing is written then)."""
        key = self.platforms.platform_id(platform)
        table = self.catalogs.get(platform).rule_table()
        rules.check_items(table)
        rules.check_fields(table)
        now = time.time()
        with storage_errors(self.engine, "save the rules"), self.engine.begin() as conn:
            RulesRepo(conn, key).put(rules.to_json(), now)
        return self._remember(SavedRules(platform, rules, now))

    def clear(self, platform: str) -> SavedRules:
        key = self.platforms.platform_id(platform)
        with storage_errors(self.engine, "clear the rules"), self.engine.begin() as conn:
            RulesRepo(conn, key).delete()
        return self._remember(SavedRules(platform, Rules(), None))

    def _remember(self, saved: SavedRules) -> SavedRules:
        with self._lock:
            self._cache[saved.platform] = (time.monotonic(), saved)
        return saved
