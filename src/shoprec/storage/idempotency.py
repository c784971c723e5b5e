"""Idempotency keys of one platform: claim a key for a request, store its answer, replay it (SQL only).

A claim is a row (platform, key) holding a random `owner` token: INSERT-or-skip, then read the row back; the
request owns the key when the row carries its token. This needs no driver's rowcount and is safe between
processes and machines: the unique (platform_id, idempotency_key) lets exactly one INSERT win. An abandoned
claim (its lease ran out) or an expired key is taken over by a conditional UPDATE on the old token.
The service (shoprec.service.idempotency) decides what to do with each state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shoprec.storage import tables as T
from shoprec.storage.repo import Executor, ScopedRepo, _insert_ignore


@dataclass(frozen=True, slots=True)
class KeyRow:
    """An idempotency key as stored: `status` / `body` None while its request is in flight (or failed)."""

    route: str
    request_hash: str
    owner: str
    lease_until: float
    status: int | None
    body: str | None
    started_at: float
    expires_at: float


class IdempotencyRepo(ScopedRepo):
    """The idempotency keys of ONE platform, over a connection (one transaction)."""

    def __init__(self, conn: Executor, platform_id: int) -> None:
        super().__init__(conn, platform_id)

    def get(self, key: str) -> KeyRow | None:
        t = T.idempotency_keys
        row = self.conn.execute(self._scope(t, t.c.route, t.c.request_hash, t.c.owner, t.c.lease_until, t.c.status,
                                            t.c.body, t.c.started_at, t.c.expires_at)
                                .where(t.c.idempotency_key == key)).first()
        if row is None:
            return None
        return KeyRow(str(row.route), str(row.request_hash), str(row.owner), float(row.lease_until),
                      None if row.status is None else int(row.status), row.body, float(row.started_at),
                      float(row.expires_at))

    def insert(self, key: str, route: str, request_hash: str, owner: str, now: float, lease_s: float,
               ttl_s: float) -> None:
        """Claim `key` unless a row for it exists (then nothing happens: read it back with `get`)."""
        self.conn.execute(_insert_ignore(self.conn, T.idempotency_keys, ["platform_id", "idempotency_key"]), [{
            "platform_id": self.platform_id, "idempotency_key": key, "route": route, "request_hash": request_hash,
            "owner": owner, "lease_until": now + lease_s, "status": None, "body": None, "started_at": now,
            "expires_at": now + ttl_s}])

    def take_over(self, key: str, old_owner: str, owner: str, route: str, request_hash: str, now: float,
                  lease_s: float, started_at: float, expires_at: float) -> None:
        """Claim `key` for `owner` if it still belongs to `old_owner` (read it back with `get` to know)."""
        t = T.idempotency_keys
        self.conn.execute(self._update(t).where(t.c.idempotency_key == key, t.c.owner == old_owner).values(
            owner=owner, route=route, request_hash=request_hash, lease_until=now + lease_s, status=None, body=None,
            started_at=started_at, expires_at=expires_at))

    def finish(self, key: str, owner: str, status: int, body: str) -> None:
        """Store the answer of the request that owns `key`."""
        t = T.idempotency_keys
        self.conn.execute(self._update(t).where(t.c.idempotency_key == key, t.c.owner == owner)
                          .values(status=status, body=body))

    def release(self, key: str, owner: str, forget: bool) -> None:
        """The owner failed: `forget` deletes the key (nothing was written); else its lease ends now, so a
        retry takes it over at once, keeping `started_at` (the events' arrival time)."""
        t = T.idempotency_keys
        if forget:
            self.conn.execute(self._delete(t).where(t.c.idempotency_key == key, t.c.owner == owner))
        else:
            self.conn.execute(self._update(t).where(t.c.idempotency_key == key, t.c.owner == owner)
                              .values(lease_until=0.0))

    def purge_expired(self, now: float) -> int:
        """Delete this platform's keys that expired before `now`; returns how many."""
        t = T.idempotency_keys
        result: Any = self.conn.execute(self._delete(t).where(t.c.expires_at < now))
        return int(result.rowcount or 0)


__all__ = ["IdempotencyRepo", "KeyRow"]
