"""Serving tables behind a tenant-scoped repository: API keys, model registry, recommendation log,
feedback, deleted items (jobs: storage/jobs.py), and the per-user / per-item reads the online path needs.

Like PlatformRepo, a ServingRepo is built with (connection, platform key) and every query goes through
`_scope`; the cross-platform reads are `platform_for_key` (an API key names its platform) and
`newest_event_id` (one number: where an incremental count of the platform's events stops).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import sqlalchemy as sa

from shoprec.storage import tables as T
from shoprec.storage.repo import Executor, ScopedRepo, _chunks

# The online read of a user's events, built once with bind parameters (platform_id, user, limit):
# building a statement costs more than running it on SQLite, and this one runs on every uncached request.
_USER_EVENTS = (
    sa.select(T.items.c.external_id, T.events.c.event_type, T.events.c.timestamp)
    .select_from(T.events.join(T.users, T.users.c.id == T.events.c.user_id)
                 .join(T.items, T.items.c.id == T.events.c.item_id))
    .where(T.events.c.platform_id == sa.bindparam("platform_id"), T.users.c.platform_id == sa.bindparam("platform_id"),
           T.users.c.external_id == sa.bindparam("user"))
    .order_by(T.events.c.timestamp.desc(), T.events.c.id.desc())
    .limit(sa.bindparam("limit"))
)


def platform_for_key(conn: Executor, key_hash: str) -> tuple[str, str, str] | None:
    """(platform name, key id, comma-separated scopes) of an unrevoked API key (by hash), or None."""
    k, p = T.api_keys, T.platforms
    query = (sa.select(p.c.name, k.c.key_id, k.c.scopes).select_from(k.join(p, p.c.id == k.c.platform_id))
             .where(k.c.key_hash == key_hash, k.c.revoked.is_(False)))
    row = conn.execute(query).first()
    return None if row is None else (str(row[0]), str(row[1]), str(row[2]))


def key_generation(conn: Executor) -> str:
    """The state of every platform's keys as one short string that changes whenever a key is revoked or deleted
    (how many keys exist, how many are revoked: a key is never un-revoked): the API workers' revocation check."""
    k = T.api_keys
    row = conn.execute(sa.select(sa.func.count(), sa.func.count(k.c.revoked_at)).select_from(k)).first()
    return "0.0" if row is None else f"{row[0]}.{row[1]}"


def record_auth_failure(engine: sa.Engine, client: str, now: float, limit: int, window_s: float,
                        block_s: float) -> float:
    """Count one failed authentication of `client` in auth_failures (a fixed window of window_s); at `limit`
    failures the client is blocked for block_s. Returns the time it is blocked until, or 0.0."""
    t = T.auth_failures
    for _ in range(3):  # two workers inserting a client's first failure at once: the loser counts again
        try:
            with engine.begin() as conn:
                row = conn.execute(sa.select(t.c.window_start, t.c.failures, t.c.blocked_until)
                                   .where(t.c.client == client).with_for_update()).first()
                if row is None:
                    conn.execute(sa.insert(t), [{"client": client, "window_start": now, "failures": 0,
                                                 "blocked_until": None}])
                    start, failures, until = now, 1, None
                else:
                    fresh = now - row[0] >= window_s
                    start, failures, until = (now if fresh else row[0]), (1 if fresh else row[1] + 1), row[2]
                if failures >= limit:
                    start, failures, until = now, 0, now + block_s  # a fresh count once the block ends
                conn.execute(sa.update(t).where(t.c.client == client).values(
                    window_start=start, failures=failures, blocked_until=until))
            return float(until) if until is not None and until > now else 0.0
        except sa.exc.IntegrityError:
            continue
    return 0.0


def blocked_clients(conn: Executor, now: float) -> dict[str, float]:
    """Every client in auth_failures blocked at `now` -> until when."""
    t = T.auth_failures
    rows = conn.execute(sa.select(t.c.client, t.c.blocked_until).where(t.c.blocked_until > now)).all()
    return {str(r[0]): float(r[1]) for r in rows}


class ServingRepo(ScopedRepo):
    """The serving rows of ONE platform, over a connection (one transaction)."""

    # ---------------------------------------------------------------- api keys
    def add_api_key(self, key_hash: str, now: float, *, key_id: str, scopes: str, name: str | None = None) -> None:
        """Store a new key by hash; `scopes` comma-separated ("read,write,admin")."""
        self.conn.execute(sa.insert(T.api_keys), [{
            "platform_id": self.platform_id, "key_hash": key_hash, "created_at": now, "revoked": False,
            "key_id": key_id, "scopes": scopes, "name": name, "revoked_at": None}])

    def list_api_keys(self) -> list[dict[str, Any]]:
        """Every key of the platform, oldest first (key_id, name, scopes, created_at, revoked, revoked_at)."""
        k = T.api_keys
        cols = [k.c.key_id, k.c.name, k.c.scopes, k.c.created_at, k.c.revoked, k.c.revoked_at]
        return [dict(r._mapping) for r in self.conn.execute(self._scope(k, *cols).order_by(k.c.id))]

    def revoke_api_key(self, key_id: str, now: float) -> str | None:
        """Revoke key `key_id` of this platform and return its hash (to drop it from caches); None if unknown.
        Revoking a revoked key changes nothing (its first revocation time stays)."""
        k = T.api_keys
        row = self.conn.execute(self._scope(k, k.c.key_hash, k.c.revoked).where(k.c.key_id == key_id)).first()
        if row is None:
            return None
        if not row[1]:
            self.conn.execute(self._update(k).where(k.c.key_id == key_id).values(revoked=True, revoked_at=now))
        return str(row[0])

    # ---------------------------------------------------------------- models
    def add_model(self, model_id: str, name: str, config: dict[str, Any], metrics: dict[str, Any], path: str,
                  now: float, sha256: str | None = None) -> None:
        """Register a model; `path` is its artifact reference, `sha256` the hash of its canonical packing."""
        self.conn.execute(sa.insert(T.models), [{
            "platform_id": self.platform_id, "model_id": model_id, "name": name, "config": config,
            "metrics": metrics, "path": path, "active": False, "created_at": now, "activated_at": None,
            "sha256": sha256}])

    def list_models(self) -> list[dict[str, Any]]:
        m = T.models
        cols = [m.c.model_id, m.c.name, m.c.config, m.c.metrics, m.c.path, m.c.sha256, m.c.active, m.c.created_at,
                m.c.activated_at]
        return [dict(r._mapping) for r in self.conn.execute(self._scope(m, *cols).order_by(m.c.id))]

    def get_model(self, model_id: str) -> dict[str, Any] | None:
        return next((m for m in self.list_models() if m["model_id"] == model_id), None)

    def activate_model(self, model_id: str, now: float) -> bool:
        """Make `model_id` the only active model of the platform; False when it does not exist."""
        m = T.models
        if self.conn.execute(self._scope(m, m.c.id).where(m.c.model_id == model_id)).first() is None:
            return False
        self.conn.execute(self._update(m).where(m.c.model_id != model_id).values(active=False))
        self.conn.execute(self._update(m).where(m.c.model_id == model_id).values(active=True, activated_at=now))
        return True

    def active_model(self) -> tuple[str, str, str] | None:
        """(model_id, name, path) of the active model, or None."""
        row = self.active_artifact()
        return None if row is None else row[:3]

    def active_artifact(self) -> tuple[str, str, str, str | None] | None:
        """(model_id, name, artifact reference, sha256) of the active model, or None."""
        m = T.models
        row = self.conn.execute(self._scope(m, m.c.model_id, m.c.name, m.c.path, m.c.sha256)
                                .where(m.c.active.is_(True))).first()
        return None if row is None else (str(row[0]), str(row[1]), str(row[2]), row[3])

    # ---------------------------------------------------------------- recommendation log and feedback
    def add_recommendations(self, lists: list[tuple[str, str | None, str | None, list[list[Any]], float]]) -> None:
        """Log served lists (recommendation_id, user, model, items, created_at) in one multi-row insert."""
        if lists:
            self.conn.execute(sa.insert(T.recommendations), [{
                "platform_id": self.platform_id, "recommendation_id": rec_id, "user_external_id": user,
                "model": model, "items": items, "created_at": now} for rec_id, user, model, items, now in lists])

    def get_recommendation(self, recommendation_id: str) -> dict[str, Any] | None:
        r = T.recommendations
        cols = [r.c.recommendation_id, r.c.user_external_id, r.c.model, r.c["items"], r.c.created_at]
        row = self.conn.execute(self._scope(r, *cols).where(r.c.recommendation_id == recommendation_id)).first()
        return None if row is None else dict(row._mapping)

    def add_feedback(self, recommendation_id: str, item: str, feedback_type: str, now: float) -> None:
        self.conn.execute(sa.insert(T.feedback), [{
            "platform_id": self.platform_id, "recommendation_id": recommendation_id, "item_external_id": item,
            "feedback_type": feedback_type, "timestamp": now}])

    # ---------------------------------------------------------------- items
    def _item_key(self, external_id: str) -> int | None:
        i = T.items
        row = self.conn.execute(self._scope(i, i.c.id).where(i.c.external_id == external_id)).first()
        return None if row is None else int(row[0])

    def delete_item(self, external_id: str, now: float) -> bool:
        """Mark an item deleted and unavailable (its row stays: events refer to it); False if unknown."""
        key = self._item_key(external_id)
        if key is None:
            return False
        d, i = T.deleted_items, T.items
        if self.conn.execute(self._scope(d, d.c.item_id).where(d.c.item_id == key)).first() is None:
            self.conn.execute(sa.insert(d), [{"item_id": key, "platform_id": self.platform_id, "deleted_at": now}])
        self.conn.execute(self._update(i).where(i.c.id == key).values(available=False, updated_at=now))
        return True

    def undelete_items(self, external_ids: Sequence[str]) -> None:
        """Forget the deletion of these items (a new PUT brings them back)."""
        d, i = T.deleted_items, T.items
        for part in _chunks(list(external_ids)):
            keys = self._scope(i, i.c.id).where(i.c.external_id.in_(part))
            self.conn.execute(sa.delete(d).where(d.c.platform_id == self.platform_id, d.c.item_id.in_(keys)))

    def known_items(self, external_ids: Collection[str]) -> set[str]:
        """Which of these item ids exist on this platform."""
        i = T.items
        found: set[str] = set()
        for part in _chunks(sorted(set(external_ids))):
            query = self._scope(i, i.c.external_id).where(i.c.external_id.in_(part))
            found.update(str(e) for (e,) in self.conn.execute(query))
        return found

    def is_deleted(self, external_id: str) -> bool:
        d, i = T.deleted_items, T.items
        query = (self._scope(d, d.c.item_id).join(i, i.c.id == d.c.item_id)
                 .where(i.c.external_id == external_id, i.c.platform_id == self.platform_id))
        return self.conn.execute(query).first() is not None

    def deleted_item_keys(self) -> set[int]:
        d = T.deleted_items
        return {int(k) for (k,) in self.conn.execute(self._scope(d, d.c.item_id))}

    def catalog_version(self) -> tuple[float, int, float]:
        """(newest item update, deleted count, newest deletion): changes whenever the catalog does (every item
        write sets updated_at to its time). One index lookup for the items (ix_items_platform_id_updated_at)."""
        i, d = T.items, T.deleted_items
        newest = self.conn.execute(self._scope(i, sa.func.max(i.c.updated_at))).scalar()
        nd, newest_d = self.conn.execute(self._scope(d, sa.func.count(), sa.func.max(d.c.deleted_at))).one()
        return float(newest or 0.0), int(nd), float(newest_d or 0.0)

    def item_event_counts(self, event_types: Collection[str], after_id: int = 0, through_id: int | None = None
                          ) -> dict[int, int]:
        """item key -> number of the platform's events of `event_types` with after_id < id <= through_id
        (popularity for the fallbacks). With `after_id`, the primary key's range is read, not every event."""
        ev = T.events
        if after_id > 0:  # the newest events: read the primary key's range (`platform_id + 0` keeps a planner
            # without statistics, SQLite's, from reading every event of the platform by its unique index instead)
            query = (sa.select(ev.c.item_id, sa.func.count()).select_from(ev)
                     .where(ev.c.platform_id + 0 == self.platform_id, ev.c.id > after_id))
        else:
            query = self._scope(ev, ev.c.item_id, sa.func.count())
        query = query.where(ev.c.event_type.in_(sorted(event_types)))
        if through_id is not None:
            query = query.where(ev.c.id <= through_id)
        return {int(k): int(n) for k, n in self.conn.execute(query.group_by(ev.c.item_id))}

    def newest_event_id(self) -> int:
        """The newest event id of the whole table (0 when empty): one primary-key lookup, the bound up to which an
        incremental count reads (ids only grow)."""
        return int(self.conn.execute(sa.select(sa.func.max(T.events.c.id))).scalar() or 0)

    # ---------------------------------------------------------------- users
    def recent_events(self, external_id: str, limit: int) -> list[tuple[str, str, float]]:
        """The user's `limit` most recent (item id, event type, timestamp), newest first (one prepared query)."""
        rows = self.conn.execute(_USER_EVENTS, {"platform_id": self.platform_id, "user": external_id,
                                                "limit": limit})
        return [(str(i), str(t), float(ts)) for i, t, ts in rows]

    def user_items(self, external_id: str, event_types: Collection[str]) -> list[tuple[str, str]]:
        """Every (item id, event type) of the user among `event_types`, oldest first."""
        ev, it, us = T.events, T.items, T.users
        query = (self._scope(ev, it.c.external_id, ev.c.event_type)
                 .join(it, it.c.id == ev.c.item_id).join(us, us.c.id == ev.c.user_id)
                 .where(us.c.external_id == external_id, us.c.platform_id == self.platform_id,
                        ev.c.event_type.in_(sorted(event_types)))
                 .order_by(ev.c.timestamp, ev.c.id))
        return [(str(i), str(t)) for i, t in self.conn.execute(query)]
