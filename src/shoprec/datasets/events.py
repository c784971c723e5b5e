"""The canonical import formats: events-csv / events-jsonl / events-parquet and items-csv / items-jsonl /
items-parquet.

These row parsers (`event_from_row`, `item_from_row`, and shoprec.datasets.users.user_from_row) are THE
definition of an event, an item and a user: the REST API (shoprec.api.schemas) parses each record of a
request body with the same functions, so names, aliases, timestamp forms and attributes are the same on
both paths (docs/data-formats.md).

Events: `user_id,item_id,event_type,timestamp[,value][,session_id][,event_id]`; `type` is accepted for `event_type`
(event_type is the canonical name), and the type itself is case-insensitive with synonyms (`add_to_cart`,
`page_view`, ...: shoprec.datasets._common.EVENT_ALIASES). timestamp is ISO-8601 (naive = UTC) or unix
seconds (a number or a numeric string); over REST it may be left out (the time of arrival). value is
optional (a rating, a quantity). Optional `text` goes to EventRecord.text; a `context` object, `price` (a
number) and any other column go to the event's context. event_id is the client's id of the event (an
event whose event_id is already stored, e.g. sent earlier over REST, is a duplicate; empty = none).
Items: `item_id[,title][,description][,category][,brand][,price][,currency][,available]`; category is a path
whose ONE separator is ">" ("Beauty > Skin Care"; "/" is part of a name, e.g. "Tops/T-shirts"); JSON may give
a list instead. available is true/false/1/0/yes/no (empty = true). Other columns go to the item's attributes
(JSON: an "attributes" object is merged in). `vectors` holds the shop's own named item vectors: an object
{"image": [0.1, ...], ...} in JSON and Parquet (a struct or map of float lists), a JSON string in CSV; it is
checked by the pipeline (shoprec.data.vectors.parse_vectors), whatever the source.

A line that cannot be parsed becomes a Rejected naming file, line (the data row number for Parquet) and field;
a missing file or a header without a required column raises DataError. Files may be gzip-compressed (.gz).
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from shoprec.data.records import EventRecord, ItemRecord, Record, Rejected, Source
from shoprec.data.vectors import VectorError, decode_vectors
from shoprec.datasets._common import (
    bad_encoding,
    check_file,
    json_object,
    normalise_category,
    open_text,
    parse_bool,
    parse_event_type,
    parse_float,
    parse_id,
    parse_timestamp,
)
from shoprec.errors import DataError

EVENT_COLUMNS = ("user_id", "item_id", "event_type", "type", "timestamp", "value", "session_id", "context", "event_id")
EVENT_HEADER_ALIASES = {"type": "event_type"}  # a CSV / Parquet header may name the type column `type`
REQUIRED_EVENT_COLUMNS = ("user_id", "item_id", "event_type", "timestamp")
ITEM_COLUMNS = ("item_id", "title", "description", "category", "brand", "price", "currency", "available", "vectors")
REQUIRED_ITEM_COLUMNS = ("item_id",)

RowParser = Callable[[Mapping[str, Any], Source], "Record"]


class _FieldError(ValueError):
    def __init__(self, field: str, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.field, self.reason, self.detail = field, reason, detail


def _field(row: Mapping[str, Any], name: str, parse: Callable[[Any], Any], reason: str = "bad_value") -> Any:
    try:
        return parse(row.get(name))
    except ValueError as exc:
        raise _FieldError(name, reason, str(exc)) from None


def _text(raw: Any) -> str:
    return "" if raw is None else str(raw).strip()


def event_from_row(row: Mapping[str, Any], source: Source, now: float | None = None) -> Record:
    """One EventRecord from a row of the canonical schema, or a Rejected naming the bad field.

    `now`: the timestamp of an event without one (the REST API passes the time of arrival); None: a missing
    timestamp is refused (files)."""
    try:
        user_id = _field(row, "user_id", parse_id)
        item_id = _field(row, "item_id", parse_id)
        type_key = "event_type" if row.get("event_type") not in (None, "") or "type" not in row else "type"
        event_type = _field(row, type_key, parse_event_type, "bad_event_type")
        if now is not None and row.get("timestamp") in (None, ""):
            timestamp = now
        else:
            timestamp = _field(row, "timestamp", parse_timestamp, "bad_timestamp")
        value = _field(row, "value", parse_float)
        session = _field(row, "session_id", parse_id) or None
        context = {k: v for k, v in row.items() if k not in EVENT_COLUMNS and k != "text" and v not in (None, "")}
        nested = row.get("context")
        if nested is not None and not isinstance(nested, dict):
            raise _FieldError("context", "bad_context", "must be an object")
        context.update(nested or {})
        if "price" in context:
            context["price"] = _field(context, "price", parse_float)
    except _FieldError as err:
        return Rejected(source, err.reason, err.field, err.detail)
    text = _text(row.get("text")) or None
    event_id = row.get("event_id")  # checked by the pipeline (shoprec.ingest.checks.check_event_id)
    if type(event_id) is int:  # a JSON or Parquet integer column
        event_id = str(event_id)
    return EventRecord(user_id=user_id, item_id=item_id, event_type=event_type, timestamp=timestamp, value=value,
                       session_id=session, context=context or None, text=text, source=source,
                       event_id=event_id or None)


def item_from_row(row: Mapping[str, Any], source: Source) -> Record:
    """One ItemRecord from a row of the canonical item schema, or a Rejected naming the bad field."""
    try:
        item_id = _field(row, "item_id", parse_id)
        price = _field(row, "price", parse_float)
        available = _field(row, "available", parse_bool)
        vectors = decode_vectors(row.get("vectors"))
    except _FieldError as err:
        return Rejected(source, err.reason, err.field, err.detail)
    except VectorError as err:
        return Rejected(source, err.reason, err.field, err.detail)
    attributes = {k: v for k, v in row.items() if k not in ITEM_COLUMNS and k != "attributes" and v not in (None, "")}
    extra = row.get("attributes")
    if extra is not None and not isinstance(extra, dict):
        return Rejected(source, "bad_attributes", "attributes", "must be an object")
    attributes.update(extra or {})
    return ItemRecord(item_id=item_id, title=_text(row.get("title")), description=_text(row.get("description")),
                      category=normalise_category(row.get("category")), brand=_text(row.get("brand")),
                      price=price, currency=_text(row.get("currency")) or None, available=available,
                      attributes=attributes, source=source, vectors=vectors)


# --------------------------------------------------------------------------- CSV
def read_csv_rows(path: Path, required: tuple[str, ...], parse: RowParser,
                  aliases: Mapping[str, str] | None = None) -> Iterator[Record]:
    """Rows of a CSV file with a header, each parsed by `parse` (or rejected as a bad row); `aliases` renames
    header columns (e.g. type -> event_type) before the required ones are looked for.

    The file and its header are checked before this returns (DataError), the rows are read lazily."""
    path = check_file(path)
    with open_text(path) as f:
        csv_header(csv.reader(f), path, required, aliases)
    return _csv_rows(path, required, parse, aliases)


def _csv_rows(path: Path, required: tuple[str, ...], parse: RowParser,
              aliases: Mapping[str, str] | None) -> Iterator[Record]:
    with open_text(path) as f:
        reader = csv.reader(f)
        header = csv_header(reader, path, required, aliases)
        line = reader.line_num
        while True:
            try:
                fields = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield Rejected(Source(path.name, line + 1), "bad_row", None, f"unreadable CSV: {exc}")
                line = reader.line_num
                continue
            start, line = line + 1, reader.line_num
            if not fields or (len(fields) == 1 and not fields[0].strip()):
                continue
            yield csv_record(header, fields, Source(path.name, start), parse)


def csv_record(header: list[str], fields: list[str], source: Source, parse: RowParser) -> Record:
    if len(fields) != len(header):
        return Rejected(source, "bad_row", None, f"expected {len(header)} fields, got {len(fields)}")
    bad = next((h for h, v in zip(header, fields, strict=True) if bad_encoding(v)), None)
    if bad is not None:
        return Rejected(source, "bad_encoding", bad, "the value is not valid UTF-8")
    return parse(dict(zip(header, fields, strict=True)), source)


def _renamed(names: list[str], aliases: Mapping[str, str] | None) -> list[str]:
    """`names` with aliased ones renamed, unless the canonical name is there too."""
    if not aliases:
        return names
    return [aliases[n] if n in aliases and aliases[n] not in names else n for n in names]


def csv_header(reader: Any, path: Path, required: tuple[str, ...], aliases: Mapping[str, str] | None = None
                ) -> list[str]:
    try:
        header = _renamed([h.strip().lower() for h in next(reader)], aliases)
    except StopIteration:
        raise DataError(f"{path}: the file is empty (expected a header line)") from None
    except csv.Error as exc:
        raise DataError(f"{path}:1: unreadable header: {exc}") from None
    missing = [c for c in required if c not in header]
    if missing:
        raise DataError(f"{path}:1: the header has no {missing[0]!r} column (found: {', '.join(header)}; "
                        f"required: {', '.join(required)})")
    return header


# -------------------------------------------------------------------------- JSONL
def read_jsonl_rows(path: Path, parse: RowParser) -> Iterator[Record]:
    """Objects of a JSON Lines file, each parsed by `parse` (bad JSON and non-objects are rejected)."""
    path = check_file(path)
    name = path.name
    with open_text(path) as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            source = Source(name, n)
            obj = json_object(line, source)
            yield obj if isinstance(obj, Rejected) else parse({str(k).lower(): v for k, v in obj.items()}, source)


# ------------------------------------------------------------------------ Parquet
def read_parquet_rows(path: Path, required: tuple[str, ...], parse: RowParser,
                      aliases: Mapping[str, str] | None = None) -> Iterator[Record]:
    """Rows of a Parquet file (Source.line = 1-based row number), each parsed by `parse` (`aliases` as for
    read_csv_rows; the rows keep their own names, which `parse` accepts)."""
    import pyarrow.parquet as pq

    path = check_file(path)
    try:
        pfile = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a file that is not Parquet
        raise DataError(f"{path}: not a readable Parquet file ({exc})") from None
    columns = _renamed([c.lower() for c in pfile.schema_arrow.names], aliases)
    missing = [c for c in required if c not in columns]
    if missing:
        raise DataError(f"{path}: the Parquet schema has no {missing[0]!r} column (found: {', '.join(columns)})")
    return _parquet_rows(pfile, path.name, parse)


def _parquet_rows(pfile: Any, name: str, parse: RowParser) -> Iterator[Record]:
    row = 0
    for batch in pfile.iter_batches(batch_size=65536):
        for obj in batch.to_pylist():
            row += 1
            yield parse({str(k).lower(): v for k, v in obj.items()}, Source(name, row))


# ------------------------------------------------------------------------ formats
def read_events_csv(path: Path) -> Iterator[Record]:
    return read_csv_rows(path, REQUIRED_EVENT_COLUMNS, event_from_row, EVENT_HEADER_ALIASES)


def read_events_jsonl(path: Path) -> Iterator[Record]:
    return read_jsonl_rows(path, event_from_row)


def read_events_parquet(path: Path) -> Iterator[Record]:
    return read_parquet_rows(path, REQUIRED_EVENT_COLUMNS, event_from_row, EVENT_HEADER_ALIASES)


def read_items_csv(path: Path) -> Iterator[Record]:
    return read_csv_rows(path, REQUIRED_ITEM_COLUMNS, item_from_row)


def read_items_jsonl(path: Path) -> Iterator[Record]:
    return read_jsonl_rows(path, item_from_row)


def read_items_parquet(path: Path) -> Iterator[Record]:
    return read_parquet_rows(path, REQUIRED_ITEM_COLUMNS, item_from_row)
