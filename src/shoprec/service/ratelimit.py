"""Per-API-key rate limits: a token bucket per key id, in Redis (shared by every worker) or in process; and the
limit on failed authentications per client address (FailedAuthLimiter, below).

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


# ---------------------------------------------------------------------------- failed authentication
# KEYS[1] the client's failure counter, KEYS[2] the sorted set of blocked clients (score: blocked until, unix s);
# ARGV: client, limit, window ms, block s. Returns the unix time the client is blocked until, or 0.
_FAIL_LUA = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
if n >= tonumber(ARGV[2]) then
  local t = redis.call('TIME')
  local untl = tonumber(t[1]) + tonumber(t[2]) / 1000000 + tonumber(ARGV[4])
  redis.call('ZADD', KEYS[2], untl, ARGV[1])
  redis.call('DEL', KEYS[1])
  return tostring(untl)
end
return '0'
"""


class AuthFailureStore(Protocol):
    def fail(self, client: str, now: float) -> float:
        """Count one failed authentication of `client`; the time it is blocked until (0.0: not blocked)."""
        ...

    def blocked(self, now: float) -> dict[str, float]:
        """Every client blocked at `now` -> until when."""
        ...


class RedisAuthFailures:
    """Counters and the blocked set in Redis (`<prefix>authfail:<client>`, `<prefix>authfail:blocked`)."""

    def __init__(self, cache: RedisCache, limit: int, window_s: float, block_s: float) -> None:
        self.client, self.prefix = cache.client, cache.prefix
        self.limit, self.window_ms, self.block_s = limit, max(1, int(window_s * 1000)), block_s
        self._script: Any = self.client.register_script(_FAIL_LUA)

    def fail(self, client: str, now: float) -> float:
        import redis

        try:
            until = self._script(keys=[f"{self.prefix}authfail:{client}", f"{self.prefix}authfail:blocked"],
                                 args=[client, self.limit, self.window_ms, self.block_s])
        except redis.RedisError as exc:
            raise StorageError(f"cannot count a failed authentication in Redis: {exc}") from None
        return float(until)

    def blocked(self, now: float) -> dict[str, float]:
        import redis

        key = f"{self.prefix}authfail:blocked"
        try:
            self.client.zremrangebyscore(key, "-inf", now)
            rows: Any = self.client.zrangebyscore(key, now, "+inf", withscores=True)
        except redis.RedisError as exc:
            raise StorageError(f"cannot read the blocked clients in Redis: {exc}") from None
        return {(c.decode() if isinstance(c, bytes) else str(c)): float(s) for c, s in rows}


class DatabaseAuthFailures:
    """Counters in the auth_failures table (migration 0011), for deployments without Redis."""

    def __init__(self, engine: Any, limit: int, window_s: float, block_s: float) -> None:
        self.engine, self.limit, self.window_s, self.block_s = engine, limit, window_s, block_s

    def fail(self, client: str, now: float) -> float:
        from shoprec.storage import storage_errors
        from shoprec.storage.serving import record_auth_failure

        with storage_errors(self.engine, "count a failed authentication"):
            return record_auth_failure(self.engine, client, now, self.limit, self.window_s, self.block_s)

    def blocked(self, now: float) -> dict[str, float]:
        from shoprec.storage import storage_errors
        from shoprec.storage.serving import blocked_clients

        with storage_errors(self.engine, "read the blocked clients"), self.engine.connect() as conn:
            return blocked_clients(conn, now)


class FailedAuthLimiter:
    """Failed authentications per client address, across every path and every worker.

        limiter.blocked_for(client)  # seconds the client is still refused (0.0: it may try); no I/O unless stale
        limiter.fail(client)         # count one failure; seconds refused from now on (0.0: not yet)

    Each worker keeps a snapshot of the blocked clients, refreshed from the store at most every `poll_s`
    (`stale()` says when: the API refreshes it in a worker thread, not on the event loop), so a client blocked
    by another worker is refused here within poll_s; the worker that counted the blocking failure knows at once.
    """

    def __init__(self, store: AuthFailureStore, poll_s: float = 0.5) -> None:
        self.store, self.poll_s = store, poll_s
        self._blocked: dict[str, float] = {}
        self._read_at = -1e18
        self._lock = threading.Lock()

    def stale(self) -> bool:
        return time.monotonic() - self._read_at >= self.poll_s

    def refresh(self) -> None:
        """Read the blocked clients from the store (when stale)."""
        if not self.stale():
            return
        with self._lock:
            if not self.stale():
                return
            self._blocked = self.store.blocked(time.time())
            self._read_at = time.monotonic()

    def blocked_for(self, client: str) -> float:
        until = self._blocked.get(client)
        return 0.0 if until is None else max(0.0, until - time.time())

    def fail(self, client: str) -> float:
        now = time.time()
        until = self.store.fail(client, now)
        if until > now:
            self._blocked = {**self._blocked, client: until}
            return until - now
        return 0.0


def make_failed_auth_limiter(cache: Cache, engine: Any, limit: int, window_s: float, block_s: float
                             ) -> FailedAuthLimiter:
    """In Redis when the cache is Redis, else in the database (the auth_failures table)."""
    store: AuthFailureStore = (RedisAuthFailures(cache, limit, window_s, block_s) if isinstance(cache, RedisCache)
                               else DatabaseAuthFailures(engine, limit, window_s, block_s))
    return FailedAuthLimiter(store)
