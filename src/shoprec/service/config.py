"""Serving settings (from the environment, like shoprec.settings.Settings, and passed around explicitly)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

from shoprec.errors import ConfigError
from shoprec.explain.attribution import ATTRIBUTION_HISTORY
from shoprec.service.scan import MIN_ITEMS as SCAN_MIN_ITEMS
from shoprec.service.scan import MODES as SCAN_MODES

UnknownItems = Literal["create", "reject"]
INT_SETTINGS = {  # environment variable -> integer ServingConfig field
    "SHOPREC_MAX_BODY_BYTES": "max_body_bytes", "SHOPREC_ANN_THRESHOLD": "ann_threshold",
    "SHOPREC_SERVE_THREADS": "threads", "SHOPREC_SCAN_MIN_ITEMS": "scan_min_items",
    "SHOPREC_EXPLAIN_HISTORY": "explain_history",
}
RATE_PERIODS = {"s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0, "h": 3600.0,
                "hour": 3600.0}


def parse_rate_limit(text: str | None) -> tuple[int, float] | None:
    """Parse a rate: "100/s" -> (100, 1.0), at most 100 requests per second per key, in bursts of up to 100.
    None, "", "0", "off" -> None (no limit). ConfigError for anything else."""
    if text is None or text.strip().lower() in ("", "0", "off", "none"):
        return None
    count, _, period = text.strip().lower().partition("/")
    seconds = RATE_PERIODS.get(period.strip() or "s")
    if not count.strip().isdigit() or seconds is None or int(count) < 1:
        raise ConfigError(f"rate limit must look like '100/s', '6000/min' or '0' (off), got {text!r}")
    return int(count), seconds


@dataclass(frozen=True)
class ServingConfig:
    """How the online path behaves. Environment: SHOPREC_ADMIN_KEY, SHOPREC_UNKNOWN_ITEMS,
    SHOPREC_REPURCHASABLE (comma-separated category prefixes), SHOPREC_ANN_THRESHOLD, SHOPREC_REDIS_PREFIX,
    SHOPREC_RATE_LIMIT (per API key, e.g. "100/s"), SHOPREC_MAX_BODY_BYTES, SHOPREC_SERVE_THREADS,
    SHOPREC_EXPLAIN_HISTORY, SHOPREC_SCAN_MIN_ITEMS, SHOPREC_SCAN."""

    admin_key: str | None = None  # a key that may act on every platform (X-Platform header) and create platforms
    unknown_items: UnknownItems = "create"  # events naming unknown items: create bare items, or reject the batch
    max_events: int = 10_000  # events per POST /v1/events (413 above)
    max_items: int = 10_000  # items per PUT /v1/items (413 above)
    history_length: int = 50  # most recent events passed to the model as Query.history
    list_depth: int = 100  # most items one recommendation_id can page through (offset + k <= list_depth)
    page_depth: int = 50  # items ranked for a new list (more when offset + k asks for more)
    max_k: int = 100
    cache_ttl_s: float = 0.5  # in-process caches: how stale another worker's writes may be seen
    cache_size: int = 20_000  # entries of the in-process cache (user states, key lookups)
    list_cache_size: int = 10_000  # served lists kept in process for paging and feedback (older: database)
    model_poll_s: float = 1.0  # how often a worker checks which model is active
    repurchasable: tuple[str, ...] = ()  # category prefixes whose purchased items may be recommended again
    ann_threshold: int = 200_000  # catalogs larger than this take candidates from a faiss index (when installed)
    ann_candidates: int = 1000
    scan_min_items: int = SCAN_MIN_ITEMS  # from this many items an inner-product model's list reads int8 item
    # vectors to find its exact candidates (shoprec.service.scan; SHOPREC_SCAN_MIN_ITEMS)
    scan: str = "auto"  # SHOPREC_SCAN: "auto" (where it is faster on this CPU, timed when a model loads), "on", "off"
    redis_prefix: str = "shoprec:"  # keys of this deployment in Redis (SHOPREC_REDIS_PREFIX)
    rate_limit: str | None = None  # per API key: "100/s", "6000/min", "50000/h"; None or "0" = off
    max_body_bytes: int = 64 * 1024 * 1024  # request bodies over this are answered 413 (SHOPREC_MAX_BODY_BYTES)
    attribution_window_s: float = 1800.0  # experiments: an event this soon after a shown list is credited to it
    threads: int = 1  # CPU threads per server worker for scoring (SHOPREC_SERVE_THREADS): workers and requests
    # are the parallelism, so more threads per worker only oversubscribe the cores
    explain_history: int = ATTRIBUTION_HISTORY  # newest distinct history items a list's reasons may name
    # (SHOPREC_EXPLAIN_HISTORY): each one is a leave-one-out row the model encodes with the list

    def __post_init__(self) -> None:
        if self.unknown_items not in ("create", "reject"):
            raise ConfigError(f"unknown_items must be 'create' or 'reject', got {self.unknown_items!r}")
        for name in ("max_events", "max_items", "history_length", "list_depth", "page_depth", "max_k", "cache_size",
                     "list_cache_size",
                     "ann_candidates", "threads", "explain_history", "scan_min_items"):
            if getattr(self, name) < 1:
                raise ConfigError(f"serving setting {name} must be >= 1, got {getattr(self, name)}")
        if self.scan not in SCAN_MODES:
            raise ConfigError(f"serving setting scan (SHOPREC_SCAN) must be one of {', '.join(SCAN_MODES)}, "
                              f"got {self.scan!r}")
        if self.max_k > self.list_depth:
            raise ConfigError(f"max_k ({self.max_k}) must be <= list_depth ({self.list_depth})")
        if self.max_body_bytes < 1:
            raise ConfigError(f"serving setting max_body_bytes must be >= 1, got {self.max_body_bytes}")
        parse_rate_limit(self.rate_limit)  # a bad rate fails at startup, not on the first request
        if not self.attribution_window_s >= 0:
            raise ConfigError(f"serving setting attribution_window_s must be >= 0, got {self.attribution_window_s}")

    @classmethod
    def from_env(cls, **overrides: object) -> ServingConfig:
        values: dict[str, object] = {"admin_key": os.environ.get("SHOPREC_ADMIN_KEY") or None}
        if os.environ.get("SHOPREC_UNKNOWN_ITEMS"):
            values["unknown_items"] = os.environ["SHOPREC_UNKNOWN_ITEMS"].strip().lower()
        if os.environ.get("SHOPREC_REPURCHASABLE"):
            values["repurchasable"] = tuple(c.strip() for c in os.environ["SHOPREC_REPURCHASABLE"].split(",")
                                            if c.strip())
        if os.environ.get("SHOPREC_REDIS_PREFIX"):
            values["redis_prefix"] = os.environ["SHOPREC_REDIS_PREFIX"]
        if os.environ.get("SHOPREC_SCAN"):
            values["scan"] = os.environ["SHOPREC_SCAN"].strip().lower()
        if os.environ.get("SHOPREC_RATE_LIMIT"):
            values["rate_limit"] = os.environ["SHOPREC_RATE_LIMIT"].strip()
        for env, name in INT_SETTINGS.items():
            if os.environ.get(env):
                try:
                    values[name] = int(os.environ[env])
                except ValueError:
                    raise ConfigError(f"{env} must be an integer") from None
        if os.environ.get("SHOPREC_ATTRIBUTION_WINDOW_S"):
            try:
                values["attribution_window_s"] = float(os.environ["SHOPREC_ATTRIBUTION_WINDOW_S"])
            except ValueError:
                raise ConfigError("SHOPREC_ATTRIBUTION_WINDOW_S must be a number of seconds") from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]
