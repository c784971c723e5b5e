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
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from shoprec.data.records import Domain, Note, Record, Rejected, Source
from shoprec.errors import ConfigError, DataError, ShoprecError
from shoprec.ingest.checks import STORED_TYPES, Stored, check_record
from shoprec.ingest.report import DUPLICATE, ImportReport
from shoprec.ingest.vectors import fixed_dims
from shoprec.ingest.writer import Writer
from shoprec.preprocess.clean import CleaningConfig, RecordCleaner
from shoprec.storage.bulk import EventBatch

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

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
        if run.writer is not None:  # after an error: its open transaction rolled back (a no-op after finish)
            run.writer.close()
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
        self.writer: Writer | None = None
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

    def _writer(self) -> Writer:
        if self.writer is None:
            self.writer = Writer(self.engine, self.platform, self.now, self.privacy)
            self.writer.bulk_load = self.bulk_load
        return self.writer

    def finish(self) -> None:
        """Write what is pending and commit the open transaction (the end, or before another platform)."""
        self.flush()
        if self.writer is not None:
            self.writer.commit()
            self.writer.close()

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
        writer's transaction stays open across Blocks until it holds batch_size events (see Writer.commit)."""
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
