"""The columnar fast path of file imports: events-csv parsed and checked a block of lines at a time.

    report = ingest_file(engine, "shop-a", "events-csv", path)   # any format: the record path otherwise

Why: the record path spends most of an import building and checking one EventRecord per line in Python
(profile in docs/benchmarks.md, "Scale: bulk import"). Here the csv module splits a block of lines into
fields (the same reader, so the same line numbers) and the checks run over whole columns: ids stripped and
measured, event types mapped once per distinct spelling, numbers converted with Python's own float() (so the
stored values are bit-identical to the record path's), then the cleaning rules' vectorised `event_reasons`.

A line that fails any fast check (wrong field count, non-ASCII text, an empty or over-long id, an unknown
type, a time that is not unix seconds...) goes through the record path itself (`csv_record` ->
`validate`), so its rejection, field and message are exactly the ones the record path gives. Accepted lines
become Rows for the pipeline's one writer (shoprec.ingest.pipeline): same batches and transactions, same
duplicate detection, same report. Files with other columns (context, price, text...) and other formats use
the record path whole. It lives in the service layer because it joins a reader (shoprec.datasets) to the
pipeline (shoprec.ingest), two layers that do not import each other.
"""

from __future__ import annotations

import csv
import itertools
import math
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from shoprec.data.records import EventRecord, Record, Rejected, Source
from shoprec.datasets import read_records
from shoprec.datasets._common import EVENT_ALIASES, check_file, open_text, parse_timestamp
from shoprec.datasets.events import (
    EVENT_HEADER_ALIASES,
    REQUIRED_EVENT_COLUMNS,
    csv_header,
    csv_record,
    event_from_row,
)
from shoprec.ingest.ahead import prefetched, read_apart
from shoprec.ingest.checks import STORED_TYPES
from shoprec.ingest.pipeline import (
    DEFAULT_BATCH_SIZE,
    SOURCE_ERRORS,
    Block,
    ImportReport,
    Progress,
    Row,
    drive,
    validate,
)
from shoprec.preprocess.clean import EVENT_RULES, CleaningConfig, EventColumns, NonProductMatcher, event_reasons
from shoprec.preprocess.clean import _rejected as rule_rejection
from shoprec.storage.bulk import EventBatch, dedupe_keys
from shoprec.storage.tables import MAX_EVENT_ID_LENGTH, MAX_ID_LENGTH
from shoprec.types import EVENT_TYPES, EventType

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from shoprec.privacy.keys import Privacy

__all__ = ["BATCH_SIZE", "FAST_COLUMNS", "ingest_file"]

FAST_COLUMNS = frozenset({"user_id", "item_id", "event_type", "timestamp", "value", "session_id", "event_id"})
"""The header columns (after aliases) the fast path handles; a file with any other uses the record path."""
BLOCK = DEFAULT_BATCH_SIZE  # lines checked together (memory: a few blocks of fields and of columns)
BATCH_SIZE = 500_000  # events per transaction here (blocks share them), with SQLite's 512 MiB bulk page cache: 10M
# events into SQLite in 156.5 s against 372.7 s in transactions of 50,000 (and 128 MiB), for a longer hold of SQLite's
# write lock (docs/benchmarks.md "Scale: bulk import", sixth round)
PROCESS_MIN_BYTES = 16 << 20  # files from this size are read and checked in a process of their own
# (shoprec.ingest.ahead.read_apart: ~1 s to start, against ~7 us of the writer's interpreter per line saved)


def ingest_file(engine: Engine, platform: str, fmt: str, path: Path, records: Iterable[Record] | None = None, *,
                cleaning: CleaningConfig | Literal[False] | None = None, batch_size: int | None = None,
                progress: Progress | None = None, now: float | None = None, source: str | None = None,
                privacy: Privacy | None = None) -> ImportReport:
    """Import the file `path` of format `fmt` into `platform`: `ingest(engine, platform, read_records(fmt,
    path), ...)`, with the same report and stored rows, through the fast path where it applies. `records`:
    `read_records(fmt, path)` when the caller made it already (used only by the record path). `batch_size`:
    rows per transaction (None: DEFAULT_BATCH_SIZE on the record path, BATCH_SIZE on the fast path)."""
    header = _fast_header(fmt, path)
    if header is None:
        from shoprec.ingest.pipeline import ingest

        records = read_records(fmt, path) if records is None else records
        return ingest(engine, platform, records, cleaning=cleaning,
                      batch_size=DEFAULT_BATCH_SIZE if batch_size is None else batch_size,
                      progress=progress, now=now, source=source, fmt=fmt, privacy=privacy, bulk_load=True)

    def rows(_report: ImportReport, t: float) -> Iterator[Row | Block]:
        if path.stat().st_size >= PROCESS_MIN_BYTES:
            return read_apart(_csv_rows, path, header, cleaning, t, BLOCK)  # BLOCK as this process sees it
        return prefetched(_csv_rows(path, header, cleaning, t, BLOCK))

    return drive(engine, platform, rows, batch_size=BATCH_SIZE if batch_size is None else batch_size,
                 progress=progress, now=now, source=source, fmt=fmt, privacy=privacy, bulk_load=True)


def _fast_header(fmt: str, path: Path) -> list[str] | None:
    """The header of an events-csv file whose columns the fast path handles, else None."""
    if fmt != "events-csv":
        return None
    path = check_file(path)
    with open_text(path) as f:
        header = csv_header(csv.reader(f), path, REQUIRED_EVENT_COLUMNS, EVENT_HEADER_ALIASES)
    return header if set(header) <= FAST_COLUMNS and len(set(header)) == len(header) else None


def _csv_rows(path: Path, header: list[str], cleaning: CleaningConfig | Literal[False] | None,
              now: float, block: int) -> Iterator[Row | Block]:
    """Rows of the file in order: blocks of `block` lines checked column-wise, the lines that fail through the
    record path."""
    checker = _BlockChecker(header, path.name, cleaning, now)
    with open_text(path) as f:
        reader = csv.reader(f)
        csv_header(reader, path, REQUIRED_EVENT_COLUMNS, EVENT_HEADER_ALIASES)
        line = reader.line_num
        lines: list[int] = []
        fields: list[list[str]] = []
        while True:
            try:
                for row in reader:
                    start, line = line + 1, reader.line_num
                    if not row or (len(row) == 1 and not row[0].strip()):
                        continue
                    lines.append(start)
                    fields.append(row)
                    if len(fields) >= block:
                        yield from checker.check(lines, fields)
                        lines, fields = [], []
                break
            except SOURCE_ERRORS as exc:
                yield from checker.check(lines, fields)  # the lines before count (the file may fail: truncated...)
                lines, fields = [], []
                if not isinstance(exc, csv.Error):
                    raise
                yield Row(Source(path.name, line + 1), rejected=Rejected(Source(path.name, line + 1), "bad_row",
                                                                         None, f"unreadable CSV: {exc}"))
                line = reader.line_num
        yield from checker.check(lines, fields)


class _BlockChecker:
    """The checks of the record path (reader, pipeline checks, cleaning rules) over a block of CSV lines."""

    def __init__(self, header: list[str], file: str, cleaning: CleaningConfig | Literal[False] | None,
                 now: float) -> None:
        self.header, self.file, self.cleaning, self.now = header, file, cleaning, now
        self.config = None if cleaning is False else (cleaning or CleaningConfig())
        self.matcher = None if self.config is None else NonProductMatcher(self.config)
        self.col = {name: k for k, name in enumerate(header)}
        self.types: dict[str, int] = {}  # spelling -> EventType code (-1: not a type)

    def check(self, lines: list[int], fields: list[list[str]]) -> Iterator[Row | Block]:
        if not fields:
            return
        n, width = len(fields), len(self.header)
        if set(map(len, fields)) == {width} and "".join(itertools.chain.from_iterable(fields)).isascii():
            ok = np.ones(n, dtype=bool)  # the usual block: every line whole and ASCII, checked at C speed
            columns = list(zip(*fields, strict=True))
        else:
            ok = np.fromiter((len(f) == width and "".join(f).isascii() for f in fields), dtype=bool, count=n)
            columns = list(zip(*(f if len(f) == width else [""] * width for f in fields), strict=True))
        user, ok = self._ids(columns[self.col["user_id"]], ok)
        item, ok = self._ids(columns[self.col["item_id"]], ok)
        etype = self._types(columns[self.col["event_type"]])
        ok &= etype >= 0
        ts = self._numbers(columns[self.col["timestamp"]], timestamp=True)
        ok &= np.isfinite(ts)
        value = np.full(n, np.nan)
        has_value = np.zeros(n, dtype=bool)
        if "value" in self.col:
            raw = columns[self.col["value"]]
            has_value = np.fromiter((bool(v.strip()) for v in raw), dtype=bool, count=n)
            value = self._numbers(raw, timestamp=False)
            ok &= ~has_value | np.isfinite(value)
        session = self._optional(columns, "session_id", MAX_ID_LENGTH, ok)
        event_id = self._optional(columns, "event_id", MAX_EVENT_ID_LENGTH, ok, printable=True)
        reasons = self._reasons(user, item, etype, ts, value)
        codes = etype.tolist()
        tslist, vlist, rlist, oklist = ts.tolist(), value.tolist(), reasons.tolist(), ok.tolist()
        hv = has_value.tolist()
        names = [t.value for t in EVENT_TYPES]
        if all(oklist) and not reasons.any():  # the common case: every line passed the fast checks
            value_col = vlist if has_value.all() else [v if h else None for v, h in zip(vlist, hv, strict=True)]
            events = EventBatch(user, item, [names[c] for c in codes], tslist, value_col, session, [None] * n,
                                [None] * n, event_id)
            events.dedupe_key = dedupe_keys(events)  # here: in the reader's process, when it has one
            yield Block(self.file, lines, events)
            return
        block = Block(self.file, [], EventBatch())
        ev = block.events
        for r in range(n):
            if oklist[r] and not rlist[r]:
                block.lines.append(lines[r])
                ev.user_id.append(user[r])
                ev.item_id.append(item[r])
                ev.event_type.append(names[codes[r]])
                ev.timestamp.append(tslist[r])
                ev.value.append(vlist[r] if hv[r] else None)
                ev.session_id.append(session[r])
                ev.event_id.append(event_id[r])
                continue
            src = Source(self.file, lines[r])
            if oklist[r]:
                rule = EVENT_RULES[rlist[r] - 1]
                yield Row(src, rejected=rule_rejection(rule, self._cols, r, src, self.now))
                continue
            row = self._slow(fields[r], src)
            if row.rejected is not None or not row.records:
                yield row
                continue
            rec = row.records[0]  # one event per line: stored in line order with the block's others
            assert isinstance(rec, EventRecord) and rec.context is None and rec.text is None
            block.lines.append(lines[r])
            ev.user_id.append(rec.user_id)
            ev.item_id.append(rec.item_id)
            ev.event_type.append(str(rec.event_type))
            ev.timestamp.append(rec.timestamp)
            ev.value.append(rec.value)
            ev.session_id.append(rec.session_id)
            ev.event_id.append(rec.event_id)
        n_events = len(block.lines)
        ev.context, ev.text = [None] * n_events, [None] * n_events
        if n_events:
            ev.dedupe_key = dedupe_keys(ev)
            yield block

    # ------------------------------------------------------------------ columns
    @staticmethod
    def _ids(raw: tuple[str, ...], ok: np.ndarray) -> tuple[list[str], np.ndarray]:
        """Stripped ids; lines with an empty or too long one go the record path (its Rejected)."""
        ids = list(map(str.strip, raw))
        good = np.fromiter((0 < len(s) <= MAX_ID_LENGTH for s in ids), dtype=bool, count=len(ids))
        return ids, ok & good

    def _types(self, raw: tuple[str, ...]) -> np.ndarray:
        out = np.empty(len(raw), dtype=np.int16)
        types = self.types
        for k, text in enumerate(raw):
            code = types.get(text)
            if code is None:
                code = types[text] = _type_code(text)
            out[k] = code
        return out

    @staticmethod
    def _numbers(raw: tuple[str, ...], *, timestamp: bool) -> np.ndarray:
        """float() of each value (NaN where it fails or is empty); timestamps also as ISO-8601, through the
        readers' own parse_timestamp."""
        try:
            return np.array(raw, dtype=object).astype(np.float64)
        except ValueError:
            convert = _timestamp if timestamp else _float
            return np.fromiter(map(convert, raw), dtype=np.float64, count=len(raw))

    def _optional(self, columns: list[tuple[str, ...]], name: str, limit: int, ok: np.ndarray,
                  printable: bool = False) -> list[str | None]:
        """A column that may be empty (None), stripped; a too long (or unprintable) value: the record path."""
        if name not in self.col:
            return [None] * len(ok)
        values = [s or None for s in map(str.strip, columns[self.col[name]])]
        for k, v in enumerate(values):
            if v is not None and (len(v) > limit or (printable and not v.isprintable())):
                ok[k] = False
        return values

    def _reasons(self, user: list[str], item: list[str], etype: np.ndarray, ts: np.ndarray,
                 value: np.ndarray) -> np.ndarray:
        n = len(user)
        self._cols = EventColumns(user_id=np.array(user, dtype=object), item_id=np.array(item, dtype=object),
                                  event_type=np.maximum(etype, 0).astype(np.int8), timestamp=ts, value=value,
                                  price=np.full(n, np.nan))
        if self.config is None:
            return np.zeros(n, dtype=np.int8)
        return event_reasons(self._cols, self.config, self.now, self.matcher)

    def _slow(self, fields: list[str], src: Source) -> Row:
        """One line through the record path: reader, pipeline checks, cleaning rules."""
        row = Row(src)
        for rec in validate([csv_record(self.header, fields, src, event_from_row)], self.cleaning, self.now):
            if isinstance(rec, Rejected):
                row.rejected = row.rejected or rec
            elif isinstance(rec, STORED_TYPES):
                row.records.append(rec)
        return row


def _type_code(text: str) -> int:
    """The EventType code of a spelling (aliases and case as `parse_event_type`), -1 when it is none."""
    key = text.strip().lower()
    alias = EVENT_ALIASES.get(key)
    if alias is not None:
        return alias.code
    try:
        return EventType.parse(key).code
    except ValueError:
        return -1


def _float(text: str) -> float:
    try:
        return float(text) if text.strip() else math.nan
    except ValueError:
        return math.nan


def _timestamp(text: str) -> float:
    try:
        return parse_timestamp(text)
    except ValueError:
        return math.nan
