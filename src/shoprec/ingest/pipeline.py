"""The ingest pipeline that bulk import and the REST API share: records -> checks -> cleaning -> database.

    report = ingest(engine, "shop-a", read_records("events-csv", path))

Streaming: records are grouped into rows (records sharing a Source) and rows into batches of `batch_size`; each
batch is written in ONE transaction (whole or not at all), so memory holds one batch plus the per-import id caches
(the columnar path's Blocks share transactions of `batch_size` events). The platform is created when missing; items
and users are upserted, events inserted once: an event already stored (same client `event_id`, or same user, item,
type, timestamp, value and session) is rejected as `duplicate`, so importing the same file twice adds nothing, and a
client that retries events with event_ids (and no timestamps) never stores them twice. A `Domain(name)` record
switches the following records to platform f"{platform}-{name}". If the source fails midway (a truncated file), the
rows read before it are stored and a DataError says how far the import got. Give records a `Source` (e.g.
Source("request", i)) to have them counted and named in the report; records without one are stored but not counted.
"""

from __future__ import annotations

import csv
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal

from shoprec.data.records import Domain, EventRecord, ItemRecord, Note, Record, Rejected, Source, UserRecord
from shoprec.errors import ConfigError, DataError, ShoprecError
from shoprec.ingest.checks import STORED_TYPES, Stored, check_record
from shoprec.ingest.report import DUPLICATE, ImportReport
from shoprec.ingest.vectors import fixed_dims, store_vectors
from shoprec.preprocess.clean import CleaningConfig, RecordCleaner
from shoprec.storage import KeyCache, PlatformRepo, get_or_create_platform, storage_errors
from shoprec.storage.bulk import EventBatch
from shoprec.storage.bulk import prepare as prepare_bulk_load
from shoprec.storage.bulk import release as release_bulk_load
from shoprec.storage.privacy import PrivacyRepo

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine, RootTransaction

    from shoprec.privacy.keys import Privacy

__all__ = ["DEFAULT_BATCH_SIZE", "SOURCE_ERRORS", "ImportReport", "Row", "check_record", "drive", "ingest", "validate"]

DEFAULT_BATCH_SIZE = 50_000  # rows per transaction (SQLite rewrites fewer index pages per event in larger ones;
# 50,000: 1M events 11% faster than 20,000, peak RSS +57 MB, docs/benchmarks.md "Scale: bulk import")
SOURCE_ERRORS = (ShoprecError, OSError, EOFError, UnicodeError, csv.Error, zlib.error)
"""What reading a source can raise: a bad file (truncated, corrupt gzip, wrong encoding) as well as DataError."""
Progress = Callable[[int], None]


@dataclass
class Row:
    """The records of one input row (same Source), or the reason it was rejected."""

    source: Source
    records: list[Stored] = field(default_factory=list)
    rejected: Rejected | None = None
    counted: bool = True  # False for derived records (no source line): stored, not counted as a row


@dataclass
class Block:
    """Accepted events of lines of one file, one event per line, as columns (the columnar fast path's rows:
    shoprec.service.file_import); written in slices of batch_size, each in one transaction, like Rows."""

    file: str
    lines: list[int]
    events: EventBatch


# ---------------------------------------------------------------------------- public entry point
def ingest(
    engine: Engine,
    platform: str,
    records: Iterable[Record],
    *,
    cleaning: CleaningConfig | Literal[False] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress | None = None,
    now: float | None = None,
    source: str | None = None,
    fmt: str | None = None,
    privacy: Privacy | None = None,
    validated: bool = False,
    bulk_load: bool = False,
) -> ImportReport:
    """Clean `records` and write them into `platform`; returns the ImportReport.

    `cleaning`: a shoprec.preprocess.clean.CleaningConfig (None: its defaults; False: no cleaning
    rules, only the pipeline's own checks). `progress(rows_read)` is called after each batch.
    `source` / `fmt` only label the report. `privacy` (shoprec.privacy.Privacy): user ids are stored
    pseudonymised when it says so, and users' identities as keyed hashes (an identity without a
    secret, or without `privacy`, is a ConfigError). `validated`: `records` are already `validate`'s output
    (a caller that refuses a whole batch before writing any of it); they are not checked again. Raises
    StorageError when the database fails (batches committed before stay; the failed batch is rolled back)
    and DataError for a bad platform name. `bulk_load`: see `drive`.
    """
    return drive(engine, platform,
                 lambda report, t: _rows(fixed_dims(records if validated else validate(records, cleaning, t), engine,
                                                    platform), report),
                 batch_size=batch_size, progress=progress, now=now, source=source, fmt=fmt, privacy=privacy,
                 bulk_load=bulk_load)


def drive(engine: Engine, platform: str, make_rows: Callable[[ImportReport, float], Iterator[Row | Domain | Block]], *,
          batch_size: int = DEFAULT_BATCH_SIZE, progress: Progress | None = None, now: float | None = None,
          source: str | None = None, fmt: str | None = None, privacy: Privacy | None = None,
          bulk_load: bool = False) -> ImportReport:
    """The writing half of `ingest`, shared with the columnar fast path (shoprec.service.file_import):
    `make_rows(report, now)` yields the checked Rows (Notes go to the report); they are batched and written.
    `bulk_load`: the connection gets bulk-load settings (shoprec.storage.bulk.prepare: memory, not durability)."""
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    now = time.time() if now is None else now
    report = ImportReport(platform=platform, source=source, format=fmt)
    started = time.perf_counter()
    run = _Run(engine, platform, report, now, batch_size, progress, privacy)
    run.bulk_load = bulk_load
    rows = make_rows(report, now)
    try:
        while True:
            try:
                item = next(rows)
            except StopIteration:
                break
            except SOURCE_ERRORS as exc:  # the source failed: keep what was read before it
                run.finish()
                report.seconds = time.perf_counter() - started
                raise _source_error(exc, report) from exc
            run.feed(item)  # a database error propagates: this batch rolled back, earlier ones stay
        run.finish()
    finally:
        if run.writer is not None:  # after an error: its open transaction rolled back (none is open after finish)
            run.writer.rollback()
        close = getattr(rows, "close", None)
        if close is not None:  # a generator: its file (and a reader thread) end now, not when it is collected
            close()
    report.seconds = time.perf_counter() - started
    if progress is not None:
        progress(report.read)
    return report


def _source_error(exc: Exception, report: ImportReport) -> ShoprecError:
    """The error to raise when reading the source failed midway (a truncated or corrupt file...)."""
    if isinstance(exc, ShoprecError):
        error, message = type(exc), str(exc)
    else:
        error, message = DataError, f"{report.source or 'the input'}: cannot be read further ({exc})"
    if report.accepted:
        message += (f" (import stopped after {report.read:,} rows; the {report.accepted:,} accepted rows before "
                    "were stored: importing again adds only what is missing)")
    return error(message)


# ---------------------------------------------------------------------------- checks and cleaning
def validate(records: Iterable[Record], cleaning: CleaningConfig | Literal[False] | None = None,
             now: float | None = None) -> Iterator[Record]:
    """The one validation of the pipeline: its own checks (`check_record`), then the cleaning rules. Yields the
    records to store (ids stripped), a Rejected for each refused record (naming its Source and field) and Notes."""
    return iter(_clean(_checked(records), cleaning, time.time() if now is None else now))


def _clean(records: Iterable[Record], cleaning: CleaningConfig | Literal[False] | None,
           now: float) -> Iterable[Record]:
    """The cleaning rules (shoprec.preprocess.clean.RecordCleaner), unless `cleaning` is False."""
    if cleaning is False:
        return records
    return RecordCleaner(cleaning if cleaning is not None else CleaningConfig(), now=now)(records)


# ---------------------------------------------------------------------------- rows
DERIVED = Source("?", 0)
"""The Source of a Rejected made for a record that had none (the cleaning rules use the same placeholder)."""


def _checked(records: Iterable[Record]) -> Iterator[Record]:
    """The pipeline's own checks (`check_record`) before the cleaning rules see the records."""
    for rec in records:
        if isinstance(rec, STORED_TYPES):
            yield check_record(rec, rec.source or DERIVED)
        else:
            yield rec


def _rows(records: Iterable[Record], report: ImportReport) -> Iterator[Row | Domain]:
    """Group consecutive records with the same Source into Rows; Notes go to the report.

    Readers yield a file's lines in order. A record whose Source is an EARLIER line than the last
    row of its file (e.g. the items Online Retail builds at the end, each citing its first line) or
    that has no Source is derived: it is stored, but not counted as a row again; how many derived
    records were rejected is stated in a note.
    """
    grouper = _Grouper()
    try:
        for rec in records:
            if isinstance(rec, Note):
                report.note(rec.text)
            else:
                yield from grouper.add(rec)
    except SOURCE_ERRORS:  # the source failed: the row read so far is complete
        yield from grouper.close()
        raise
    yield from grouper.close()
    if grouper.derived_rejected:
        counts = ", ".join(f"{reason} {n:,}" for reason, n in sorted(grouper.derived_rejected.items()))
        report.note(f"records derived from earlier lines (or without a source) were rejected: {counts}")


class _Grouper:
    def __init__(self) -> None:
        self.current: Row | None = None
        self.last_line: dict[str, int] = {}  # per file, the line of the newest row
        self.derived_rejected: dict[str, int] = {}

    def add(self, rec: Record) -> Iterator[Row | Domain]:
        src = None if isinstance(rec, (Domain, Note)) else rec.source
        cur = self.current
        if cur is not None and src is not None and (src is cur.source or src == cur.source):
            self._append(cur, rec)
            return
        yield from self.close()
        if isinstance(rec, Domain):
            yield rec
        elif src is None or src == DERIVED or src.line <= self.last_line.get(src.file, -1):
            if isinstance(rec, Rejected):
                self.derived_rejected[rec.reason] = self.derived_rejected.get(rec.reason, 0) + 1
            elif isinstance(rec, STORED_TYPES):
                yield Row(src or DERIVED, [rec], counted=False)
        else:
            self.last_line[src.file] = src.line
            self.current = Row(src)
            self._append(self.current, rec)

    @staticmethod
    def _append(row: Row, rec: Record) -> None:
        if isinstance(rec, Rejected):
            row.rejected = row.rejected or rec
        elif isinstance(rec, STORED_TYPES):
            row.records.append(rec)

    def close(self) -> Iterator[Row]:
        if self.current is not None:
            yield self.current
            self.current = None


# ---------------------------------------------------------------------------- writing
DUPLICATE_DETAIL = ("an event with the same event_id, or an equal event (user, item, type, timestamp, value, "
                    "session), is already stored")

class _Run:
    """Batches rows and writes each batch in one transaction into the current platform."""

    def __init__(self, engine: Engine, platform: str, report: ImportReport, now: float, batch_size: int,
                 progress: Progress | None, privacy: Privacy | None = None) -> None:
        self.engine, self.base, self.report, self.now = engine, platform, report, now
        self.privacy = privacy
        self.batch_size, self.progress = batch_size, progress
        self.batch: list[Row] = []
        self.writer: _Writer | None = None
        self.platform = platform
        self.bulk_load = False

    def feed(self, item: Row | Domain | Block) -> None:
        if isinstance(item, Block):
            self.flush()
            self._write_block(item)
            return
        if isinstance(item, Domain):
            self.finish()
            self.platform = f"{self.base}-{item.name}"
            self.writer = None
            return
        if item.counted:
            self.report.read += 1
            if item.rejected is not None:
                self.report.reject(item.rejected)
        if item.records:
            self.batch.append(item)
            if len(self.batch) >= self.batch_size:
                self.flush()

    def _writer(self) -> _Writer:
        if self.writer is None:
            self.writer = _Writer(self.engine, self.platform, self.now, self.privacy)
            self.writer.bulk_load = self.bulk_load
        return self.writer

    def finish(self) -> None:
        """Write what is pending and commit the open transaction (the end, or before another platform)."""
        self.flush()
        if self.writer is not None:
            self.writer.commit(last=True)

    def flush(self) -> None:
        if not self.batch:
            return
        duplicate = self._writer().write(self.batch, self.report)
        for row, dup in zip(self.batch, duplicate, strict=True):
            if not row.counted:
                continue
            if dup:
                self.report.reject(Rejected(row.source, DUPLICATE, None, DUPLICATE_DETAIL))
            elif row.rejected is None:
                self.report.accepted += 1
        self.batch = []
        if self.progress is not None:
            self.progress(self.report.read)

    def _write_block(self, block: Block) -> None:
        """A Block's lines are counted as read (and accepted unless duplicates) slice by slice as written. The
        writer's transaction stays open across Blocks until it holds batch_size events (see _Writer.commit)."""
        n, start = len(block.events), 0
        while start < n:
            writer = self._writer()
            stop = min(n, start + self.batch_size - writer.open_events)
            first, last = Source(block.file, block.lines[start]), Source(block.file, block.lines[stop - 1])
            duplicates = writer.write_events(block.events.part(start, stop), self.report, first, last)
            if writer.open_events >= self.batch_size:
                writer.commit()
            self.report.read += stop - start
            self.report.accepted += stop - start - len(duplicates)
            for pos in duplicates:
                source = Source(block.file, block.lines[start + pos])
                self.report.reject(Rejected(source, DUPLICATE, None, DUPLICATE_DETAIL))
            if self.progress is not None:
                self.progress(self.report.read)
            start = stop


class _Writer:
    """Writes batches into one platform, with a per-import KeyCache of external id -> key. `write`: Rows, in a
    transaction of their own. `write_events`: into a transaction left open (`open_events` so far) that Blocks
    share up to batch_size events, so SQLite rewrites the pages of its random-order indexes (users', items')
    once per transaction, not per Block; the caller ends it (`commit`, `rollback`), `write` commits it first."""

    def __init__(self, engine: Engine, platform: str, now: float, privacy: Privacy | None = None) -> None:
        self.engine, self.platform, self.now, self.privacy = engine, platform, now, privacy
        with storage_errors(engine, f"create platform {platform!r}"), engine.begin() as conn:
            self.cache = KeyCache(get_or_create_platform(conn, platform, now))
        self.batches = 0
        self.bulk_load = False
        self.open: tuple[Connection, RootTransaction] | None = None
        self.open_events = 0

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
            with storage_errors(self.engine, f"write rows {first}..{last} into platform {self.platform!r}"), \
                    self.engine.begin() as conn:
                if self.bulk_load:
                    prepare_bulk_load(conn)
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
            self.cache.rollback()
            raise
        self._committed()
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
        try:
            with storage_errors(self.engine, f"write rows {first}..{last} into platform {self.platform!r}"):
                if self.open is None:
                    conn = self.engine.connect()
                    self.open = conn, conn.begin()
                    if self.bulk_load:
                        prepare_bulk_load(conn)
                conn = self.open[0]
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

    def commit(self, last: bool = False) -> None:
        """Commit the open transaction of `write_events`, if any; `last`: the import's (bulk settings undone)."""
        if self.open is None:
            return
        conn, transaction = self.open
        try:
            with storage_errors(self.engine, f"commit {self.open_events:,} events into platform {self.platform!r}"):
                transaction.commit()
                if last and self.bulk_load:
                    release_bulk_load(conn)
        except BaseException:
            self.rollback()
            raise
        conn.close()
        self.open, self.open_events = None, 0
        self._committed()

    def rollback(self) -> None:
        """Roll back the open transaction of `write_events`, if any, and forget the keys learnt in it."""
        self.cache.rollback()
        if self.open is not None:
            conn, self.open, self.open_events = self.open[0], None, 0
            conn.invalidate()  # rolled back, and not pooled again (nor its bulk settings)

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
