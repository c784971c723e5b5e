"""Per-API-key rate limits: a token bucket per key id, in Redis (shared by every worker) or in process.

    limiter = make_rate_limiter(parse_rate_limit("100/s"), cache)   # None: no limit configured
    wait = limiter.acquire("key_0123abcd")                           # 0.0: go ahead; else seconds to wait

A bucket holds up to `count` tokens and refills at count/period tokens per second; each request takes
one. With Redis the check-and-take is one Lua script run on the server's clock, so workers share a bucket.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any, Protocol

from shoprec.errors import StorageError
from shoprec.service.cache import Cache, RedisCache

# KEYS[1] bucket; ARGV: capacity, refill rate per second. Returns {allowed (0/1), seconds to wait (string)}.
_BUCKET_LUA = """
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or capacity
local ts = tonumber(state[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - ts) * rate)
local allowed, wait = 0, 0
if tokens >= 1 then tokens = tokens - 1; allowed = 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(capacity / rate * 1000) + 1000)
return {allowed, tostring(wait)}
"""


class RateLimiter(Protocol):
    def acquire(self, key_id: str) -> float:
        """Take one token from `key_id`'s bucket: 0.0 when allowed, else the seconds until one is free."""
        ...


class LocalRateLimiter:
    """Buckets in this process (each worker limits on its own); at most `max_keys` buckets (LRU)."""

    def __init__(self, count: int, period_s: float, max_keys: int = 100_000) -> None:
        self.capacity, self.rate, self.max_keys = float(count), count / period_s, max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key id -> (tokens, time)
        self._lock = threading.Lock()

    def acquire(self, key_id: str) -> float:
        now = time.monotonic()
        with self._lock:
            tokens, then = self._buckets.pop(key_id, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - then) * self.rate)
            wait = 0.0 if tokens >= 1 else (1 - tokens) / self.rate
            self._buckets[key_id] = (tokens - 1 if wait == 0.0 else tokens, now)
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        return wait


class RedisRateLimiter:
    """Buckets in Redis under `<prefix>rate:<key id>`, shared by every worker of the deployment."""

    def __init__(self, cache: RedisCache, count: int, period_s: float) -> None:
        self.client, self.prefix = cache.client, cache.prefix
        self.capacity, self.rate = float(count), count / period_s
        self._script: Any = self.client.register_script(_BUCKET_LUA)

    def acquire(self, key_id: str) -> float:
        import redis

        try:
            allowed, wait = self._script(keys=[f"{self.prefix}rate:{key_id}"], args=[self.capacity, self.rate])
        except redis.RedisError as exc:
            raise StorageError(f"cannot check the rate limit in Redis: {exc}") from None
        return 0.0 if int(allowed) == 1 else float(wait)


def make_rate_limiter(rate: tuple[int, float] | None, cache: Cache) -> RateLimiter | None:
    """The limiter for `rate` (count, period in seconds): in Redis when the cache is Redis; None when off."""
    if rate is None:
        return None
    count, period_s = rate
    if isinstance(cache, RedisCache):
        return RedisRateLimiter(cache, count, period_s)
    return LocalRateLimiter(count, period_s)
