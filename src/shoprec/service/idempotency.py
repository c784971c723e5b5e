"""Idempotent writes: the answer to a request sent with an Idempotency-Key is stored, and a retry gets it again.

    answer = services.idempotency.run("shop-a", key, "POST /v1/events", body, work)

`work(started_at)` does the write and returns (status, JSON body); `started_at` is the time the key was first
claimed, the same for every retry, so that events without a timestamp get the same arrival time each time
and a retry that has to do the work again (its first try died midway) finds them stored already (duplicates
by dedupe key) instead of storing them twice.

Per platform and key, in the database (table idempotency_keys, migration 0010), beside the data the answer
describes, so every worker and replica sees it and a restart keeps it (Redis could evict it):
- first request: claims the key (with a hash of its route and validated body), does the work, stores the
  answer (status + body) for `ttl_s`;
- a retry with the same body: the stored answer, the work is not done again (`Answer.replayed`);
- the same key with another body or route: IdempotencyKeyReused (422), nothing done;
- a retry while the first request is still working: waits up to `wait_s` for its answer, then
  IdempotencyInProgress (409, retry later). A claim whose request died (its lease of `lease_s` ran out) is
  taken over by the next retry;
- the first request failed: with a client error (a 4xx: nothing was written) the key is forgotten, so the
  client may fix the body and send it again under the same key; otherwise (the database failed, a 5xx)
  its lease ends at once and a retry with the same body does the work again, with the same `started_at`.
Expired keys are deleted from time to time (at most once a minute per platform and process).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shoprec.errors import DataError, ShoprecError, StorageError
from shoprec.service.errors import Conflict
from shoprec.service.platform import PlatformService
from shoprec.storage import Engine, storage_errors
from shoprec.storage.idempotency import IdempotencyRepo, KeyRow
from shoprec.storage.tables import MAX_IDEMPOTENCY_KEY_LENGTH

log = logging.getLogger(__name__)

LEASE_S = 60.0
"""A request holds its key this long at most; a claim older than this belongs to a request that died (a killed
worker) and is taken over by the next retry (whose events are still not stored twice: same `started_at`)."""
POLL_S = 0.05
PURGE_EVERY_S = 60.0
Work = Callable[[float], tuple[int, Any]]


class IdempotencyKeyReused(DataError):
    """The key was used before with another request body (or route): 422, nothing done."""


class IdempotencyInProgress(Conflict):
    """The first request with this key is still working: 409, retry after `retry_after_s`."""

    def __init__(self, message: str, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


@dataclass(frozen=True, slots=True)
class Answer:
    """A write's answer: HTTP status and JSON body; `replayed`: stored by an earlier request with the key."""

    status: int
    body: Any
    replayed: bool = False


def check_key(key: str) -> str:
    """An Idempotency-Key: 1..255 printable ASCII characters (DataError naming the header otherwise)."""
    if not 0 < len(key) <= MAX_IDEMPOTENCY_KEY_LENGTH:
        raise DataError(f"header Idempotency-Key must be 1..{MAX_IDEMPOTENCY_KEY_LENGTH} characters, "
                        f"got {len(key)}")
    if not (key.isascii() and key.isprintable()):
        raise DataError("header Idempotency-Key must be printable ASCII (e.g. a UUID), got "
                        f"{key[:40].encode('ascii', 'backslashreplace').decode()!r}")
    return key


def request_hash(route: str, body: Any) -> str:
    """sha256 of the route and the body's canonical JSON (key order and spacing do not matter)."""
    text = json.dumps([route, body], sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class IdempotencyService:
    def __init__(self, engine: Engine, platforms: PlatformService, ttl_s: float, wait_s: float,
                 lease_s: float = LEASE_S) -> None:
        self.engine, self.platforms = engine, platforms
        self.ttl_s, self.wait_s, self.lease_s = ttl_s, wait_s, lease_s
        self._purged: dict[int, float] = {}
        self._lock = threading.Lock()

    def run(self, platform: str, key: str, route: str, body: Any, work: Work) -> Answer:
        """`work`'s answer, done once per (platform, key) while the key is kept (see the module doc)."""
        check_key(key)
        pid = self.platforms.platform_id(platform)
        digest = request_hash(route, body)
        owner = uuid.uuid4().hex
        claimed = self._claim(pid, key, route, digest, owner)
        if isinstance(claimed, Answer):
            return claimed
        try:
            status, answer = work(claimed)
        except BaseException as exc:
            forget = isinstance(exc, ShoprecError) and not isinstance(exc, StorageError)
            self._release(pid, key, owner, forget)
            raise
        self._finish(pid, key, owner, status, answer)
        return Answer(status, answer)

    # ---------------------------------------------------------------- steps
    def _claim(self, pid: int, key: str, route: str, digest: str, owner: str) -> float | Answer:
        """The claim's `started_at` once this request owns the key, or the stored answer to replay."""
        deadline = time.monotonic() + self.wait_s
        while True:
            now = time.time()
            row = self._get(pid, key)
            if row is None:
                self._purge(pid, now)
                with storage_errors(self.engine, "claim an idempotency key"), self.engine.begin() as conn:
                    IdempotencyRepo(conn, pid).insert(key, route, digest, owner, now, self.lease_s, self.ttl_s)
                row = self._get(pid, key)  # a new transaction: sees whichever request's INSERT won
                if row is None:
                    continue  # deleted in between (expired and purged, or forgotten): try again
            if row.owner == owner:
                return row.started_at
            if row.expires_at <= now:  # forgotten: a new request under an old key
                row = self._take_over(pid, key, row, owner, route, digest, now, now, now + self.ttl_s)
                if row is not None:
                    return row.started_at
                continue
            if row.request_hash != digest:
                used = f"for {row.route}" if row.route != route else "with another request body"
                raise IdempotencyKeyReused(
                    f"Idempotency-Key {key!r} was used {used}: a retry must send the same request; use a new key "
                    "for a new request")
            if row.status is not None:
                return Answer(row.status, json.loads(row.body or "null"), replayed=True)
            if row.lease_until <= now:  # its request died or failed: do the work again, same arrival time
                row = self._take_over(pid, key, row, owner, route, digest, now, row.started_at, row.expires_at)
                if row is not None:
                    return row.started_at
                continue
            if time.monotonic() >= deadline:
                raise IdempotencyInProgress(
                    f"a request with Idempotency-Key {key!r} is still in progress; retry in a second to get its "
                    "answer", retry_after_s=1.0)
            time.sleep(POLL_S)

    def _get(self, pid: int, key: str) -> KeyRow | None:
        with storage_errors(self.engine, "read an idempotency key"), self.engine.begin() as conn:
            return IdempotencyRepo(conn, pid).get(key)

    def _take_over(self, pid: int, key: str, row: KeyRow, owner: str, route: str, digest: str, now: float,
                   started_at: float, expires_at: float) -> KeyRow | None:
        """The row once `owner` holds it, or None when another request took it first."""
        with storage_errors(self.engine, "take over an idempotency key"), self.engine.begin() as conn:
            IdempotencyRepo(conn, pid).take_over(key, row.owner, owner, route, digest, now, self.lease_s,
                                                 started_at, expires_at)
        mine = self._get(pid, key)
        return mine if mine is not None and mine.owner == owner else None

    def _finish(self, pid: int, key: str, owner: str, status: int, answer: Any) -> None:
        text = json.dumps(answer, ensure_ascii=False, separators=(",", ":"))
        with storage_errors(self.engine, "store an idempotent answer"), self.engine.begin() as conn:
            IdempotencyRepo(conn, pid).finish(key, owner, status, text)

    def _release(self, pid: int, key: str, owner: str, forget: bool) -> None:
        try:
            with storage_errors(self.engine, "release an idempotency key"), self.engine.begin() as conn:
                IdempotencyRepo(conn, pid).release(key, owner, forget)
        except StorageError as exc:  # the lease runs out by itself; the request's own error is what matters
            log.warning("could not release idempotency key: %s", exc)

    def _purge(self, pid: int, now: float) -> None:
        with self._lock:
            if now - self._purged.get(pid, 0.0) < PURGE_EVERY_S:
                return
            self._purged[pid] = now
        try:
            with storage_errors(self.engine, "purge expired idempotency keys"), self.engine.begin() as conn:
                IdempotencyRepo(conn, pid).purge_expired(now)
        except StorageError as exc:  # housekeeping: the next claim tries again
            log.warning("could not purge expired idempotency keys: %s", exc)
