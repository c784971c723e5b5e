"""Tenant-scoped repositories: every query of a PlatformRepo is filtered by its platform by construction.

Build one per transaction with `PlatformRepo(conn, platform_id)`; there is no method that reads or
writes another platform's rows (the filter lives in `_scope`, which every query goes through), and
surrogate keys are only ever taken from this platform's rows (looked up here or in a KeyCache
filled here). Writes use dialect-specific bulk statements (ON CONFLICT / ON DUPLICATE KEY).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from shoprec.data.records import EventRecord, ItemRecord, UserRecord
from shoprec.errors import DataError
from shoprec.storage import bulk
from shoprec.storage import tables as T
from shoprec.storage.engine import json_text

Executor = Connection | Session
CHUNK = 2000  # ids per IN (...) list: below every driver's parameter limit


# ------------------------------------------------------------------------------ helpers
def _dialect(conn: Executor) -> str:
    bind = conn.get_bind() if isinstance(conn, Session) else conn
    return bind.dialect.name


def _connection(conn: Executor) -> Connection:
    """The Connection of a Session (its transaction), for shoprec.storage.bulk's driver-level statements."""
    return conn.connection() if isinstance(conn, Session) else conn


def _chunks(values: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start:start + size]


def _insert_ignore(conn: Executor, table: sa.Table, conflict: Sequence[str] | None) -> Any:
    """INSERT that skips rows whose `conflict` columns already exist (never updates them); `conflict` None:
    rows that collide on any unique key of the table are skipped."""
    name = _dialect(conn)
    if name in ("postgresql", "sqlite"):
        module: Any = postgresql if name == "postgresql" else sqlite
        index = None if conflict is None else list(conflict)
        return module.insert(table).on_conflict_do_nothing(index_elements=index)
    if name in ("mysql", "mariadb"):
        return mysql.insert(table).on_duplicate_key_update({"id": table.c.id})
    raise DataError(f"unsupported database dialect {name!r}")


def _upsert(conn: Executor, table: sa.Table, conflict: Sequence[str], update: Sequence[str]) -> Any:
    """INSERT, or UPDATE the `update` columns of the existing row with the same `conflict` columns."""
    name = _dialect(conn)
    if name in ("postgresql", "sqlite"):
        module: Any = postgresql if name == "postgresql" else sqlite
        stmt = module.insert(table)
        return stmt.on_conflict_do_update(index_elements=list(conflict),
                                          set_={c: stmt.excluded[c] for c in update})
    if name in ("mysql", "mariadb"):
        stmt = mysql.insert(table)
        return stmt.on_duplicate_key_update({c: stmt.inserted[c] for c in update})
    raise DataError(f"unsupported database dialect {name!r}")


def check_id(value: str, what: str) -> str:
    """A non-empty external id of at most MAX_ID_LENGTH characters (DataError naming `what` otherwise).

    The repository's own guard (SQLite does not enforce VARCHAR lengths); the ingest pipeline rejects
    such records earlier, per row."""
    if not isinstance(value, str) or not value:
        raise DataError(f"{what} must be a non-empty string, got {value!r}")
    if len(value) > T.MAX_ID_LENGTH:
        raise DataError(f"{what} is {len(value)} characters long (at most {T.MAX_ID_LENGTH}): {value[:40]!r}...")
    return value


def dedupe_key(event: EventRecord) -> str:
    """Hash of (user, item, type, timestamp, value, session): equal for exact duplicate events."""
    return _dedupe(event.user_id, event.item_id, str(event.event_type), event.timestamp, event.value,
                   event.session_id)


def _dedupe(user: str, item: str, event_type: str, timestamp: float, value: float | None, session: str | None) -> str:
    parts = (user, item, event_type, repr(float(timestamp)), "" if value is None else repr(float(value)),
             session or "")
    return hashlib.blake2b("\x1f".join(parts).encode(), digest_size=16).hexdigest()


def _fingerprint(*parts: Any) -> str:
    return hashlib.blake2b(json.dumps(parts, sort_keys=True, default=str).encode(), digest_size=12).hexdigest()


# ------------------------------------------------------------------------------ platforms
def find_platform(conn: Executor, name: str) -> int | None:
    """The key of platform `name`, or None."""
    row = conn.execute(sa.select(T.platforms.c.id).where(T.platforms.c.name == name)).first()
    return None if row is None else int(row[0])


def get_or_create_platform(conn: Executor, name: str, now: float | None = None) -> int:
    """The key of platform `name`, creating it when missing (safe against a concurrent creator)."""
    if not name or len(name) > T.MAX_PLATFORM_LENGTH or name != name.strip():
        raise DataError(f"platform name must be 1..{T.MAX_PLATFORM_LENGTH} characters without surrounding "
                        f"spaces, got {name!r}")
    key = find_platform(conn, name)
    if key is None:
        now = time.time() if now is None else now
        conn.execute(_insert_ignore(conn, T.platforms, ["name"]), [{"name": name, "created_at": now}])
        key = find_platform(conn, name)
    if key is None:  # pragma: no cover - the row was just written
        raise DataError(f"platform {name!r} could not be created")
    return key


def list_platforms(conn: Executor) -> dict[str, int]:
    """Every platform name -> key, in creation order."""
    rows = conn.execute(sa.select(T.platforms.c.name, T.platforms.c.id).order_by(T.platforms.c.id))
    return {str(name): int(key) for name, key in rows}


def platform_created(conn: Executor) -> dict[str, float]:
    """Every platform name -> created_at (unix seconds), in creation order (for `shoprec platform list`)."""
    rows = conn.execute(sa.select(T.platforms.c.name, T.platforms.c.created_at).order_by(T.platforms.c.id))
    return {str(name): float(created) for name, created in rows}


# ------------------------------------------------------------------------------ key cache
@dataclass
class KeyCache:
    """Per-import memory of external id -> key (and of what was last written) for one platform.

    Tables: "users" and "items" (id -> key), "written" ("u:<id>" / "i:<id>" -> content fingerprint).
    Entries learnt inside a transaction stay pending until `commit()`; `rollback()` forgets them,
    so a key from a rolled-back batch is never reused.
    """

    platform_id: int
    _done: dict[str, dict[str, Any]] = field(default_factory=lambda: {"users": {}, "items": {}, "written": {}})
    _pending: dict[str, dict[str, Any]] = field(default_factory=lambda: {"users": {}, "items": {}, "written": {}})

    def remember(self, table: str, external_id: str, value: Any) -> None:
        self._pending[table][external_id] = value

    def lookup(self, table: str, external_id: str) -> Any:
        hit = self._pending[table].get(external_id)
        return self._done[table].get(external_id) if hit is None else hit

    def lookup_many(self, table: str, external_ids: Iterable[str]) -> tuple[dict[str, Any], list[str]]:
        """`lookup` of each distinct id: (id -> value of those known, the unknown ids), in their order."""
        ids = list(dict.fromkeys(external_ids))
        values = list(map(self._done[table].get, ids))
        pending = self._pending[table]
        if pending:
            values = [pending.get(ext, value) for ext, value in zip(ids, values, strict=True)]
        if None not in values:
            return dict(zip(ids, values, strict=True)), []
        known = {ext: value for ext, value in zip(ids, values, strict=True) if value is not None}
        return known, [ext for ext, value in zip(ids, values, strict=True) if value is None]

    def commit(self) -> None:
        for table, pending in self._pending.items():
            self._done[table].update(pending)
            pending.clear()

    def rollback(self) -> None:
        for pending in self._pending.values():
            pending.clear()

    def __len__(self) -> int:
        return sum(len(d) for d in self._done.values())


# ------------------------------------------------------------------------------ repository
class ScopedRepo:
    """The rows of ONE platform, over a connection or session (one transaction): every statement of a
    repository starts from `_scope`, `_update` or `_delete`, which filter by the platform."""

    def __init__(self, conn: Executor, platform_id: int) -> None:
        self.conn = conn
        self.platform_id = platform_id

    def _scope(self, table: sa.Table, *columns: Any) -> sa.Select[Any]:
        """SELECT columns FROM table WHERE platform_id = this platform: the only way queries start."""
        return sa.select(*columns).select_from(table).where(table.c.platform_id == self.platform_id)

    def _update(self, table: sa.Table) -> sa.Update:
        return sa.update(table).where(table.c.platform_id == self.platform_id)

    def _delete(self, table: sa.Table) -> sa.Delete:
        return sa.delete(table).where(table.c.platform_id == self.platform_id)


class PlatformRepo(ScopedRepo):
    """Users, items and events of ONE platform, over a connection or session (one transaction)."""

    def __init__(self, conn: Executor, platform_id: int, cache: KeyCache | None = None) -> None:
        if cache is not None and cache.platform_id != platform_id:
            raise DataError(f"KeyCache of platform {cache.platform_id} used with platform {platform_id}")
        super().__init__(conn, platform_id)
        self.cache = cache if cache is not None else KeyCache(platform_id)
        # external ids of the bare rows `ensure_users` / `ensure_items` inserted through this repository (what an
        # import created; a concurrent writer inserting the same id at the same moment is counted by both)
        self.created: dict[str, set[str]] = {"users": set(), "items": set()}

    # ---------------------------------------------------------------- keys
    def _keys(self, table: sa.Table, external_ids: Collection[str]) -> dict[str, int]:
        return bulk.keys_of(_connection(self.conn), table.name, self.platform_id, external_ids)

    def _ensure(self, table: sa.Table, external_ids: Iterable[str], now: float) -> dict[str, int]:
        """Keys of `external_ids`, inserting bare rows for the missing ones (existing rows are untouched)."""
        name = table.name
        out, unknown = self.cache.lookup_many(name, external_ids)
        if not unknown:
            return out
        what = "user_id" if name == "users" else "item_id"
        for ext in unknown:
            check_id(ext, what)
        found = self._keys(table, unknown)
        missing = [ext for ext in unknown if ext not in found]
        if missing:
            rows = [self._bare_row(name, ext, now) for ext in missing]
            self.conn.execute(_insert_ignore(self.conn, table, ["platform_id", "external_id"]), rows)
            found.update(self._keys(table, missing))
            self.created[name].update(missing)
        for ext in unknown:
            self.cache.remember(name, ext, found[ext])
            out[ext] = found[ext]
        return out

    def _bare_row(self, table: str, external_id: str, now: float) -> dict[str, Any]:
        row: dict[str, Any] = {"platform_id": self.platform_id, "external_id": external_id,
                               "attributes": None, "created_at": now, "updated_at": now}
        if table == "items":
            row.update(title="", description="", category="", brand="", price=None, currency=None, available=True)
        return row

    def unknown_ids(self, kind: str, external_ids: Iterable[str]) -> list[str]:
        """Which of `external_ids` ("users" or "items") have no row yet (the key cache first, then one query per
        chunk), in their order; the ids found are remembered."""
        table = T.users if kind == "users" else T.items
        unknown = [ext for ext in dict.fromkeys(external_ids) if self.cache.lookup(kind, ext) is None]
        found = self._keys(table, unknown)
        for ext, key in found.items():
            self.cache.remember(kind, ext, key)
        return [ext for ext in unknown if ext not in found]

    def ensure_users(self, external_ids: Iterable[str], now: float | None = None) -> dict[str, int]:
        return self._ensure(T.users, external_ids, time.time() if now is None else now)

    def ensure_items(self, external_ids: Iterable[str], now: float | None = None) -> dict[str, int]:
        return self._ensure(T.items, external_ids, time.time() if now is None else now)

    # ---------------------------------------------------------------- upserts
    def upsert_users(self, records: Sequence[UserRecord], now: float | None = None) -> int:
        """Insert or update users (the last record per id wins); returns how many rows were written."""
        now = time.time() if now is None else now
        rows = []
        for rec in {check_id(r.user_id, "user_id"): r for r in records}.values():
            fp = _fingerprint(rec.attributes)
            if self.cache.lookup("written", "u:" + rec.user_id) == fp:
                continue
            self.cache.remember("written", "u:" + rec.user_id, fp)
            rows.append({"platform_id": self.platform_id, "external_id": rec.user_id,
                         "attributes": rec.attributes or None, "created_at": now, "updated_at": now})
        if rows:
            stmt = _upsert(self.conn, T.users, ["platform_id", "external_id"], ["attributes", "updated_at"])
            self.conn.execute(stmt, rows)
        return len(rows)

    ITEM_FIELDS = ("title", "description", "category", "brand", "price", "currency", "available", "attributes")

    def upsert_items(self, records: Sequence[ItemRecord], now: float | None = None) -> int:
        """Insert or update items (the last record per id wins); returns how many rows were written."""
        now = time.time() if now is None else now
        rows = []
        for rec in {check_id(r.item_id, "item_id"): r for r in records}.values():
            values = {f: getattr(rec, f) for f in self.ITEM_FIELDS}
            values["attributes"] = values["attributes"] or None
            fp = _fingerprint(values)
            if self.cache.lookup("written", "i:" + rec.item_id) == fp:
                continue
            self.cache.remember("written", "i:" + rec.item_id, fp)
            rows.append({"platform_id": self.platform_id, "external_id": rec.item_id, **values,
                         "created_at": now, "updated_at": now})
        if rows:
            stmt = _upsert(self.conn, T.items, ["platform_id", "external_id"], [*self.ITEM_FIELDS, "updated_at"])
            self.conn.execute(stmt, rows)
        return len(rows)

    # ---------------------------------------------------------------- events
    def existing_event_keys(self, events: Collection[tuple[float, str]]) -> set[str]:
        """The dedupe keys of the events given as (timestamp, dedupe key) that are already stored for this
        platform (shoprec.storage.bulk.stored_keys)."""
        return bulk.stored_keys(_connection(self.conn), self.platform_id, events)

    def existing_event_ids(self, event_ids: Collection[str]) -> set[str]:
        """Which of these client event ids are already stored for this platform."""
        found: set[str] = set()
        ev = T.events
        for part in _chunks(sorted(set(event_ids))):
            query = self._scope(ev, ev.c.event_id).where(ev.c.event_id.in_(part))
            found.update(str(k) for (k,) in self.conn.execute(query))
        return found

    def add_events(self, events: Sequence[EventRecord], now: float | None = None) -> list[int]:
        """Insert events (creating unknown users/items as bare rows); returns the positions of the
        duplicates, which are not inserted: an event whose client `event_id` is already stored (or given
        earlier in `events`), or an exact duplicate (same dedupe key: already stored, or earlier in `events`).
        The INSERT also skips rows that collide on either unique key itself, so a concurrent import of the
        same rows is harmless. Rows go through shoprec.storage.bulk (COPY on PostgreSQL)."""
        return self.add_event_batch(bulk.EventBatch.from_records(events), now)

    def add_event_batch(self, batch: bulk.EventBatch, now: float | None = None,
                        keys_of: tuple[dict[str, int], dict[str, int]] | None = None) -> list[int]:
        """`add_events` for events given as columns. `keys_of`: the (users, items) keys of every user and item
        the batch names, where the caller has ensured them already (the import's writer): not looked up again."""
        keys = batch.dedupe_key if len(batch.dedupe_key) == len(batch) else bulk.dedupe_keys(batch)
        event_ids = batch.event_id
        given_ids = [e for e in event_ids if e is not None]
        conn = _connection(self.conn)
        stored_ids = bulk.existing(conn, self.platform_id, "event_id", given_ids) if given_ids else set()
        first = dict(zip(keys, range(len(keys)), strict=True))  # key -> position (the usual case: all distinct)
        duplicates: list[int] = []
        seen_ids: set[str] = set()
        if given_ids or len(first) < len(keys):  # event ids given, or keys repeated: the first of each is kept
            first = {}
        for pos, key in enumerate(keys if not first else ()):
            event_id = event_ids[pos]
            if key in first or (event_id is not None and (event_id in stored_ids or event_id in seen_ids)):
                duplicates.append(pos)
            else:
                first[key] = pos
                if event_id is not None:
                    seen_ids.add(event_id)
        report = bulk.reports_stored(conn, len(first))  # the INSERT itself says which rows were stored
        stored = set() if report else bulk.stored_keys(conn, self.platform_id,
                                                       [(batch.timestamp[p], k) for k, p in first.items()])
        fresh = [pos for key, pos in first.items() if key not in stored]
        duplicates.extend(pos for key, pos in first.items() if key in stored)
        if fresh:
            if keys_of is None:
                items = self.ensure_items((batch.item_id[p] for p in fresh), now)  # from the cache after the first time
                users = self.ensure_users((batch.user_id[p] for p in fresh), now)
            else:
                users, items = keys_of
            inserted = bulk.insert_events(conn, self._event_rows(batch, fresh, keys, users, items), report)
            if inserted is not None and len(inserted) < len(fresh):
                duplicates.extend(p for p in fresh if keys[p] not in inserted)
        return sorted(duplicates)

    def refresh_statistics(self) -> None:
        """Let the query planner see how the tables grew (PostgreSQL ANALYZE; a no-op elsewhere).

        During a large import into fresh tables PostgreSQL otherwise keeps planning for empty
        tables and scans every row of the platform for each key lookup."""
        if _dialect(self.conn) == "postgresql":
            for table in (T.users, T.items, T.events):
                self.conn.execute(sa.text(f"ANALYZE {table.name}"))

    def _event_rows(self, b: bulk.EventBatch, fresh: list[int], keys: list[str], user_keys: dict[str, int],
                    item_keys: dict[str, int]) -> bulk.EventRows:
        """The driver rows of the events at positions `fresh` (ascending), with the keys of their users and items."""
        def pick(column: list[Any]) -> list[Any]:
            return column if len(fresh) == len(column) else [column[p] for p in fresh]

        contexts = pick(b.context)
        try:
            if contexts.count(None) != len(contexts):
                contexts = [json_text(c) if c else None for c in contexts]
        except (TypeError, ValueError) as exc:  # reported like SQLAlchemy's own bind errors (storage_errors)
            raise sa.exc.StatementError(str(exc), "INSERT INTO events", None, exc) from exc
        return bulk.EventRows.of({
            "platform_id": [self.platform_id] * len(fresh),
            "user_id": list(map(user_keys.__getitem__, pick(b.user_id))),
            "item_id": list(map(item_keys.__getitem__, pick(b.item_id))), "event_type": pick(b.event_type),
            "value": pick(b.value), "timestamp": pick(b.timestamp), "session_id": pick(b.session_id),
            "context": contexts, "text": pick(b.text), "dedupe_key": pick(keys), "event_id": pick(b.event_id)})

    # ---------------------------------------------------------------- reads
    def _count(self, table: sa.Table) -> int:
        return int(self.conn.execute(self._scope(table, sa.func.count())).scalar_one())

    def count_users(self) -> int:
        return self._count(T.users)

    def count_items(self) -> int:
        return self._count(T.items)

    def count_events(self) -> int:
        return self._count(T.events)

    def events_by_type(self) -> dict[str, int]:
        ev = T.events
        query = self._scope(ev, ev.c.event_type, sa.func.count()).group_by(ev.c.event_type)
        return {str(t): int(n) for t, n in sorted(self.conn.execute(query))}

    def stats(self) -> dict[str, Any]:
        return {"users": self.count_users(), "items": self.count_items(), "events": self.count_events(),
                "events_by_type": self.events_by_type()}

    def get_user(self, external_id: str) -> dict[str, Any] | None:
        u = T.users
        row = self.conn.execute(self._scope(u, u.c.external_id, u.c.attributes, u.c.created_at, u.c.updated_at)
                                .where(u.c.external_id == external_id)).first()
        return None if row is None else dict(row._mapping)

    def get_item(self, external_id: str) -> dict[str, Any] | None:
        i = T.items
        cols = [i.c.external_id, *(i.c[f] for f in self.ITEM_FIELDS), i.c.created_at, i.c.updated_at]
        row = self.conn.execute(self._scope(i, *cols).where(i.c.external_id == external_id)).first()
        return None if row is None else dict(row._mapping)

    def user_history(self, external_id: str, limit: int = 50) -> list[tuple[str, str, float]]:
        """The user's most recent (item id, event type, timestamp), oldest first."""
        ev, it, us = T.events, T.items, T.users
        query = (self._scope(ev, it.c.external_id, ev.c.event_type, ev.c.timestamp)
                 .join(it, it.c.id == ev.c.item_id).join(us, us.c.id == ev.c.user_id)
                 .where(us.c.external_id == external_id, us.c.platform_id == self.platform_id)
                 .order_by(ev.c.timestamp.desc(), ev.c.id.desc()).limit(limit))
        rows = [(str(i), str(t), float(ts)) for i, t, ts in self.conn.execute(query)]
        return rows[::-1]

    # ---------------------------------------------------------------- columns for snapshots
    def user_id_column(self) -> tuple[list[int], list[str]]:
        """(keys, external ids) of every user, by key."""
        u = T.users
        rows = self.conn.execute(self._scope(u, u.c.id, u.c.external_id).order_by(u.c.id)).all()
        return [int(r[0]) for r in rows], [str(r[1]) for r in rows]

    def item_rows(self) -> list[Any]:
        """Every item (key, external id, content columns (ITEM_FIELDS)..., created_at, updated_at), by key."""
        i = T.items
        cols = [i.c.id, i.c.external_id, *(i.c[f] for f in self.ITEM_FIELDS), i.c.created_at, i.c.updated_at]
        return list(self.conn.execute(self._scope(i, *cols).order_by(i.c.id)).all())

    def event_rows(self, event_types: Collection[str] | None = None, chunk: int = 100_000) -> Iterator[list[Any]]:
        """(user key, item key, event type, value, timestamp) of every event, in insertion order, in
        lists of at most `chunk` rows (streamed from the server, so memory holds one chunk)."""
        ev = T.events
        query = self._scope(ev, ev.c.user_id, ev.c.item_id, ev.c.event_type, ev.c.value, ev.c.timestamp)
        if event_types is not None:
            query = query.where(ev.c.event_type.in_(sorted(event_types)))
        result = self.conn.execute(query.order_by(ev.c.id), execution_options={"yield_per": chunk})
        for part in result.partitions(chunk):
            yield list(part)
