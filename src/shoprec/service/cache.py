"""Caches shared by the services: an in-process LRU with TTL, or Redis when SHOPREC_REDIS_URL is set.

Values are JSON-able (lists, dicts, strings, numbers). The in-process cache is bounded (LRU) and its
entries expire after `ttl` seconds, so a write another worker made is seen within that time; with
Redis every worker reads the same entries, and an invalidation is seen at once by all of them.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any, Protocol

import orjson

from shoprec.errors import StorageError


def dumps(value: Any) -> bytes:
    """Compact JSON bytes (orjson; numpy scalars and arrays allowed): the serving path's one JSON encoder."""
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY, default=_plain)


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars orjson does not take natively (e.g. float16)
        return value.item()
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


class Cache(Protocol):
    shared: bool  # True when every worker sees the same entries (Redis)

    def get(self, key: str) -> Any | None: ...

    def set(self, key: str, value: Any, ttl: float) -> None: ...

    def delete(self, *keys: str) -> None: ...

    def close(self) -> None: ...


class LocalCache:
    """Thread-safe LRU of at most `max_entries` entries, each expiring `ttl` seconds after it was set.

    Values are kept as JSON bytes, as Redis keeps them: a reader gets its own copy with the same types as
    from Redis, and a full cache is a few objects per entry instead of thousands (the garbage collector's
    full passes over 20,000 cached histories took tens of milliseconds, a latency spike)."""

    shared = False

    def __init__(self, max_entries: int = 100_000) -> None:
        self.max_entries = max_entries
        self._data: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> Any | None:
        with self._lock:
            hit = self._data.get(key)
            if hit is None:
                return None
            expires, value = hit
            if expires < time.monotonic():
                del self._data[key]
                return None
            self._data.move_to_end(key)
        return orjson.loads(value)

    def set(self, key: str, value: Any, ttl: float) -> None:
        raw = dumps(value)
        with self._lock:
            self._data[key] = (time.monotonic() + ttl, raw)
            self._data.move_to_end(key)
            while len(self._data) > self.max_entries:
                self._data.popitem(last=False)

    def delete(self, *keys: str) -> None:
        with self._lock:
            for key in keys:
                self._data.pop(key, None)

    def __len__(self) -> int:
        return len(self._data)

    def close(self) -> None:
        with self._lock:
            self._data.clear()


class RedisCache:
    """The same interface over Redis; every key is prefixed (one deployment or test per prefix)."""

    shared = True

    def __init__(self, url: str, prefix: str = "shoprec:") -> None:
        import redis

        self.prefix = prefix
        self.client = redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
        try:
            self.client.ping()
        except redis.RedisError as exc:
            raise StorageError(f"cannot reach Redis at {url}: {exc}") from None

    def get(self, key: str) -> Any | None:
        raw = self.client.get(self.prefix + key)
        return None if raw is None else orjson.loads(raw)

    def set(self, key: str, value: Any, ttl: float) -> None:
        self.client.set(self.prefix + key, dumps(value), px=max(1, int(ttl * 1000)))

    def delete(self, *keys: str) -> None:
        if keys:
            self.client.delete(*(self.prefix + k for k in keys))

    def clear_prefix(self) -> None:
        """Remove every key under this prefix (tests)."""
        for key in self.client.scan_iter(match=self.prefix + "*", count=500):
            self.client.delete(key)

    def close(self) -> None:
        self.client.close()


def make_cache(redis_url: str | None, prefix: str = "shoprec:", max_entries: int = 100_000) -> Cache:
    return RedisCache(redis_url, prefix) if redis_url else LocalCache(max_entries)
