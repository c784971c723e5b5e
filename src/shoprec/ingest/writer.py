"""The ingest pipeline's writer (shoprec.ingest.pipeline): batches of rows, and the columnar path's event columns,
written into one platform in transactions over one connection.

`write` writes a batch of Rows in a transaction of its own. `write_events` writes event columns into a
transaction it leaves open, so that the Blocks of a file share transactions of `batch_size` events (see
`Writer`); `commit` ends it, `close` ends the writer (an open transaction rolled back, the bulk-loading settings
of shoprec.storage.bulk undone).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from shoprec.data.records import EventRecord, ItemRecord, Source, UserRecord
from shoprec.errors import ConfigError
from shoprec.ingest.report import ImportReport
from shoprec.ingest.vectors import store_vectors
from shoprec.storage import KeyCache, PlatformRepo, get_or_create_platform, storage_errors
from shoprec.storage.bulk import EventBatch
from shoprec.storage.bulk import prepare as prepare_bulk_load
from shoprec.storage.bulk import release as release_bulk_load
from shoprec.storage.privacy import PrivacyRepo

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine, RootTransaction

    from shoprec.ingest.pipeline import Row
    from shoprec.privacy.keys import Privacy

__all__ = ["Writer"]


class Writer:
    """Writes batches into one platform over one connection, with a per-import KeyCache of external id -> key.
    `write`: Rows, in a transaction of their own. `write_events`: into a transaction left open (`open_events` so
    far) that Blocks share up to batch_size events, so SQLite rewrites the pages of its random-order indexes
    (users', items') once per transaction, not per Block; the caller ends it (`commit`), `write` commits it first.
    `close` ends the writer."""

    def __init__(self, engine: Engine, platform: str, now: float, privacy: Privacy | None = None) -> None:
        self.engine, self.platform, self.now, self.privacy = engine, platform, now, privacy
        with storage_errors(engine, f"create platform {platform!r}"), engine.begin() as conn:
            self.cache = KeyCache(get_or_create_platform(conn, platform, now))
        self.batches = 0
        self.bulk_load = False
        self.conn: Connection | None = None  # the writer's one connection (bulk settings once), see close()
        self.transaction: RootTransaction | None = None
        self.open_events, self.open_from = 0, Source("?", 0)  # events in the open transaction, and its first row
        self.prepared = False

    def write(self, rows: list[Row], report: ImportReport) -> list[bool]:
        """Write the batch in one transaction; per row, True when all its events were duplicates."""
        self.commit()
        identities = self._private(rows)
        items = [r for row in rows for r in row.records if isinstance(r, ItemRecord)]
        users = [r for row in rows for r in row.records if isinstance(r, UserRecord)]
        events: list[EventRecord] = []
        owner: list[int] = []
        for i, row in enumerate(rows):
            for r in row.records:
                if isinstance(r, EventRecord):
                    events.append(r)
                    owner.append(i)
        first, last = rows[0].source, rows[-1].source
        try:
            with storage_errors(self.engine, f"write rows {first}..{last} into platform {self.platform!r}"):
                conn = self._begin(first)
                repo = PlatformRepo(conn, self.cache.platform_id, self.cache)
                # keys in order of first appearance (as the in-memory loaders number ids); the bare rows inserted
                # here are what the import created, whether a record or only an event names the id. Without
                # events the upserts insert the records' rows themselves: only ask which are new (to count them)
                for kind, records, attr, cls in (("items", items, "item_id", ItemRecord),
                                                 ("users", users, "user_id", UserRecord)):
                    if events:
                        (repo.ensure_items if kind == "items" else repo.ensure_users)(
                            _first_seen(rows, cls, attr), self.now)
                    elif records:
                        repo.created[kind].update(repo.unknown_ids(kind, (getattr(r, attr) for r in records)))
                n_items = repo.upsert_items(items, self.now)
                store_vectors(conn, repo, items, self.now)  # the items' named vectors (shoprec.ingest.vectors)
                n_users = repo.upsert_users(users, self.now)
                if identities:
                    PrivacyRepo(conn, self.cache.platform_id).set_identities(identities, self.now)
                duplicates = repo.add_events(events, self.now)
        except BaseException:
            self.rollback()
            raise
        self.commit()
        report.events_read += len(events)
        report.add_stored(self.platform, "events", len(events) - len(duplicates))
        for kind, written, ids in (("items", n_items, {r.item_id for r in items}),
                                   ("users", n_users, {r.user_id for r in users})):
            created = repo.created[kind]
            # stored: rows created (bare ones too, for ids only events name) or rewritten from a record
            report.add_stored(self.platform, kind, written + len(created - ids), created=len(created),
                              updated=written - len(created & ids))
        return _duplicate_rows(rows, owner, duplicates)

    def write_events(self, events: EventBatch, report: ImportReport, first: Source, last: Source) -> list[int]:
        """Write events given as columns into the open transaction (the columnar path's `write`; opened here when
        none is); returns the positions of the duplicates. The same statements and counts as `write` for rows of
        one event each. After an error the open transaction is rolled back, with every event written in it."""
        privacy = self.privacy
        if privacy is not None and privacy.pseudonymize:
            pseudonyms = {u: privacy.user_id(self.platform, u) for u in dict.fromkeys(events.user_id)}
            events.user_id = [pseudonyms[u] for u in events.user_id]
            events.dedupe_key = []  # the keys hash the stored (pseudonymous) user id
        since = first if self.transaction is None else self.open_from  # what an error here rolls back
        try:
            with storage_errors(self.engine, f"write rows {since}..{last} into platform {self.platform!r}"):
                conn = self._begin(first) if self.transaction is None or self.conn is None else self.conn
                repo = PlatformRepo(conn, self.cache.platform_id, self.cache)
                items = repo.ensure_items(events.item_id, self.now)
                users = repo.ensure_users(events.user_id, self.now)
                duplicates = repo.add_event_batch(events, self.now, keys_of=(users, items))
        except BaseException:
            self.rollback()
            raise
        self.open_events += len(events)
        report.events_read += len(events)
        report.add_stored(self.platform, "events", len(events) - len(duplicates))
        for kind in ("items", "users"):
            created = repo.created[kind]
            report.add_stored(self.platform, kind, len(created), created=len(created), updated=0)
        return duplicates

    def _begin(self, first: Source) -> Connection:
        """The writer's connection (opened the first time, with the bulk settings), in a new transaction."""
        if self.conn is None:
            self.conn = self.engine.connect()
        self.transaction, self.open_from = self.conn.begin(), first
        if self.bulk_load and not self.prepared:
            prepare_bulk_load(self.conn)
            self.prepared = True
        return self.conn

    def commit(self) -> None:
        """Commit the open transaction, if any."""
        if self.transaction is None:
            return
        try:
            with storage_errors(self.engine, f"commit rows {self.open_from}.. into platform {self.platform!r}"):
                self.transaction.commit()
        except BaseException:
            self.rollback()
            raise
        self.transaction, self.open_events = None, 0
        self._committed()

    def rollback(self) -> None:
        """Roll back the open transaction, if any, and forget the keys learnt in it."""
        self.cache.rollback()
        transaction, self.transaction, self.open_events = self.transaction, None, 0
        if transaction is not None and self.conn is not None:
            try:
                transaction.rollback()
            except Exception:  # a broken connection (the error being raised says why): not pooled again
                self.conn.invalidate()

    def close(self) -> None:
        """End the writer: its open transaction rolled back, the bulk settings undone (SQLite's page cache handed
        back), its connection back to the pool."""
        self.rollback()
        conn, self.conn = self.conn, None
        if conn is None:
            return
        try:
            if self.prepared and not conn.invalidated:
                with conn.begin():
                    release_bulk_load(conn)
        except Exception:  # what was written is committed or rolled back already: this connection is given up
            conn.invalidate()
        finally:
            self.prepared = False
            conn.close()

    def _committed(self) -> None:
        self.cache.commit()
        self.batches += 1
        if self.batches & (self.batches - 1) == 0:  # after batch 1, 2, 4, 8...: tables grew a lot
            with storage_errors(self.engine, "refresh table statistics"), self.engine.begin() as conn:
                PlatformRepo(conn, self.cache.platform_id).refresh_statistics()

    def _private(self, rows: list[Row]) -> list[tuple[str, str, str]]:
        """Pseudonymise the batch's user ids (when the settings say so; the rows get copies of the records,
        the caller's records are left as they are) and hash the users' identities: (stored user id,
        identity type, keyed hash) rows."""
        privacy = self.privacy
        if privacy is not None and privacy.pseudonymize:
            for row in rows:
                row.records = [replace(r, user_id=privacy.user_id(self.platform, r.user_id))
                               if isinstance(r, EventRecord | UserRecord) else r for r in row.records]
        out: list[tuple[str, str, str]] = []
        for u in (r for row in rows for r in row.records if isinstance(r, UserRecord)):
            if u.identity is None:
                continue
            if privacy is None:
                raise ConfigError("user identities need SHOPREC_SECRET_KEY to be set (they are stored as keyed "
                                  "hashes only)")
            out.append((u.user_id, u.identity.type, privacy.identity_hash(u.identity)))
        return out


def _first_seen(rows: list[Row], kind: type, attr: str) -> list[str]:
    """Ids of `kind` records and of events (`attr`: user_id / item_id) in order of first appearance."""
    seen: dict[str, None] = {}
    for row in rows:
        for r in row.records:
            if isinstance(r, kind | EventRecord):
                seen.setdefault(getattr(r, attr), None)
    return list(seen)


def _duplicate_rows(rows: list[Row], owner: list[int], duplicates: list[int]) -> list[bool]:
    """Rows whose events were all duplicates (rows without events are never duplicates)."""
    n_events = [0] * len(rows)
    n_dup = [0] * len(rows)
    for o in owner:
        n_events[o] += 1
    for pos in duplicates:
        n_dup[owner[pos]] += 1
    return [n > 0 and d == n for n, d in zip(n_events, n_dup, strict=True)]
