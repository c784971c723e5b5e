"""UCI Online Retail transactions (`InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country`).

- Each line is one event of CustomerID ("17850.0" -> "17850") on StockCode: `purchase`, or `return` when the
  InvoiceNo starts with "C" (a cancellation; its value is the source's negative quantity). value = Quantity,
  context {"price": UnitPrice}, session_id = InvoiceNo. InvoiceDate (`YYYY-MM-DD HH:MM[:SS]` or the original
  `M/D/YYYY H:MM`) is read as UTC. Lines without CustomerID are kept as events with an empty user id, which the
  cleaning rule missing_user then rejects (so the report counts them).
- Users: one UserRecord per customer at its first line, with the country as attribute.
- Items: one ItemRecord per StockCode after the last line: title = the most frequent description of that
  code (ties: the first seen; whitespace and case do not make a new description), price = its most frequent
  positive unit price (GBP). Codes never sold at a positive price (stock adjustments such as "damages") get
  no item record. Both the streaming reader and the in-memory loader use the same code for this choice.
"""

from __future__ import annotations

import csv
import gzip
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shoprec.data.records import EventRecord, ItemRecord, Note, Record, Rejected, Source, UserRecord
from shoprec.datasets._common import bad_encoding, check_file, open_text, parse_float
from shoprec.datasets.dataset import EventTable, Irregular, RecordCollector, add_ids, clean_columns
from shoprec.errors import DataError
from shoprec.preprocess.clean import (
    CleaningConfig,
    EventColumns,
    RecordCleaner,
    choose_most_frequent,
    normalise_text,
    text_key,
)
from shoprec.preprocess.report import CleaningReport
from shoprec.types import EventType

COLUMNS = ("invoiceno", "stockcode", "description", "quantity", "invoicedate", "unitprice", "customerid", "country")
DATE_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%m/%d/%Y %H:%M", "%m/%d/%Y %H:%M:%S")
CURRENCY = "GBP"
NOTES = (
    "online-retail: cancellations (InvoiceNo starting with 'C') are return events; their value is the "
    "source's negative quantity",
    "online-retail: item titles are the most frequent description of each StockCode, prices its most frequent "
    "positive unit price (GBP)",
)
_FLOAT_ID = re.compile(r"^(\d+)\.0+$")


def customer_id(raw: str) -> str:
    raw = raw.strip()
    m = _FLOAT_ID.match(raw)
    return m.group(1) if m else raw


def _header(fields: list[str], path: Path) -> dict[str, int]:
    """Position of each column; key "" holds the number of fields a line must have."""
    names = [f.strip().lower() for f in fields]
    missing = [c for c in COLUMNS if c not in names]
    if missing:
        raise DataError(f"{path}:1: not an Online Retail file: the header has no {missing[0]!r} column "
                        f"(expected {','.join(COLUMNS)}, case-insensitive)")
    return {"": len(names)} | {c: names.index(c) for c in COLUMNS}


class _Cached:
    """A parser called once per distinct text (an invoice's lines share a date, prices repeat, ...)."""

    def __init__(self, parse: Any) -> None:
        self.parse = parse
        self.cache: dict[str, Any] = {}

    def __call__(self, raw: str) -> Any:
        try:
            return self.cache[raw]
        except KeyError:
            value = self.cache[raw] = self.parse(raw)
            return value


class _Dates(_Cached):
    """InvoiceDate text -> unix seconds."""

    def __init__(self) -> None:
        super().__init__(lambda raw: self._parse(raw.strip()))

    @staticmethod
    def _parse(text: str) -> float:
        for fmt in DATE_FORMATS:
            try:
                return datetime.strptime(text, fmt).replace(tzinfo=UTC).timestamp()
            except ValueError:
                continue
        raise ValueError(f"not a date like 2010-12-01 08:26:00: {text!r}")


# ------------------------------------------------------------------------- records
VOTE_COLUMNS = ["item", "key", "text", "count", "first"]


def item_records(order: dict[str, int], texts: pd.DataFrame, prices: pd.DataFrame, file: str) -> list[ItemRecord]:
    """One ItemRecord per StockCode that was ever sold at a positive price (in first-seen order; `order` maps
    it to its first line) from the description and price votes (frames in the shape `choose_most_frequent`
    takes). Codes seen only at price <= 0 are stock adjustments ("damages", "?"), not products."""
    titles = choose_most_frequent(texts)
    best_price = choose_most_frequent(prices)
    out = []
    for item, line in order.items():
        price = best_price.get(item)
        if price is not None:
            out.append(ItemRecord(item_id=item, title=titles.get(item, ""), price=float(price), currency=CURRENCY,
                                  source=Source(file, line)))
    return out


class _ItemVotes:
    """Per StockCode, streaming: how often each description (by text_key) and each positive price occurs."""

    def __init__(self) -> None:
        self.order: dict[str, int] = {}
        self.normal = _Cached(lambda d: (normalise_text(d), text_key(d)))
        self.texts: dict[tuple[str, str], list[Any]] = {}
        self.prices: dict[tuple[str, float], list[int]] = {}

    def add(self, pos: int, line: int, item: str, description: str, price: float) -> None:
        self.order.setdefault(item, line)
        text, key = self.normal(description)
        entry = self.texts.get((item, key))
        if entry is None:
            self.texts[(item, key)] = [1, pos, text]
        else:
            entry[0] += 1
        if price > 0:
            p = self.prices.get((item, price))
            if p is None:
                self.prices[(item, price)] = [1, pos]
            else:
                p[0] += 1

    def items(self, file: str) -> list[ItemRecord]:
        texts = pd.DataFrame([(i, k, t, c, f) for (i, k), (c, f, t) in self.texts.items()], columns=VOTE_COLUMNS)
        prices = pd.DataFrame([(i, repr(p), p, c, f) for (i, p), (c, f) in self.prices.items()],
                              columns=VOTE_COLUMNS)
        return item_records(self.order, texts, prices, file)


def read_online_retail(path: str | Path) -> Iterator[Record]:
    """Records of an Online Retail CSV (see the module docstring); bad lines become Rejected."""
    path = check_file(path)
    with open_text(path) as f:
        _header(next(csv.reader(f), []), path)
    return _records(path)


def _records(path: Path) -> Iterator[Record]:
    yield from (Note(n) for n in NOTES)
    votes, seen_users, name = _ItemVotes(), set(), path.name
    parsers = _LineParsers()
    with open_text(path) as f:
        reader = csv.reader(f)
        col = _header(next(reader), path)
        line, pos = reader.line_num, 0
        for fields in reader:
            start, line = line + 1, reader.line_num
            if not fields or (len(fields) == 1 and not fields[0].strip()):
                continue
            parsed = _parse_line(fields, col, parsers, Source(name, start))
            if isinstance(parsed, Rejected):
                yield parsed
                continue
            user = parsed.user_id
            if user and user not in seen_users:
                seen_users.add(user)
                yield UserRecord(user, {"country": fields[col["country"]].strip()}, source=parsed.source)
            votes.add(pos, start, parsed.item_id, fields[col["description"]], (parsed.context or {})["price"])
            pos += 1
            yield parsed
    yield from votes.items(path.name)


class _LineParsers:
    def __init__(self) -> None:
        self.number, self.date, self.customer = _Cached(number), _Dates(), _Cached(customer_id)


def _parse_line(fields: list[str], col: dict[str, int], parsers: _LineParsers, source: Source
                ) -> EventRecord | Rejected:
    if len(fields) != col[""]:
        return Rejected(source, "bad_row", None, f"expected {col['']} fields, got {len(fields)}")
    if not all(map(str.isascii, fields)):
        bad = next((c for c in COLUMNS if bad_encoding(fields[col[c]])), None)
        if bad is not None:
            return Rejected(source, "bad_encoding", SOURCE_NAMES[bad], "the value is not valid UTF-8")
    values: dict[str, Any] = {}
    for name, parse, reason in (("quantity", parsers.number, "bad_value"), ("unitprice", parsers.number, "bad_value"),
                                ("invoicedate", parsers.date, "bad_timestamp")):
        try:
            values[name] = parse(fields[col[name]])
        except ValueError as exc:
            return Rejected(source, reason, SOURCE_NAMES[name], str(exc))
    invoice = fields[col["invoiceno"]].strip()
    return EventRecord(user_id=parsers.customer(fields[col["customerid"]]), item_id=fields[col["stockcode"]].strip(),
                       event_type=event_type(invoice), timestamp=values["invoicedate"], value=values["quantity"],
                       session_id=invoice or None, context={"price": values["unitprice"]}, source=source)


SOURCE_NAMES = dict(zip(COLUMNS, ("InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice",
                                  "CustomerID", "Country"), strict=True))


def event_type(invoice: str) -> EventType:
    return EventType.RETURN if invoice[:1].upper() == "C" else EventType.PURCHASE


def number(raw: str) -> float:
    value = parse_float(raw)
    if value is None:
        raise ValueError("empty")
    return value


# ----------------------------------------------------------------------- in memory
def fast_table(path: Path, config: CleaningConfig, now: float, report: CleaningReport) -> EventTable:
    """The same result as cleaning `read_online_retail(path)` record by record, vectorised.

    Each column is dictionary-encoded and the reader's own parsers run once per distinct value, so parsing
    is identical by construction. Raises Irregular when a line would be rejected by the reader itself, or the
    file's shape needs the record reader (blank lines, quoted line breaks)."""
    cols, n = _columns(path)
    lines = np.arange(2, n + 2)
    for note in NOTES:
        report.note(note)
    user = _apply(cols["customerid"], customer_id)
    item = _apply(cols["stockcode"], str.strip)
    price = _apply(cols["unitprice"], number).astype(np.float64)
    events = EventColumns(
        user_id=user, item_id=item,
        event_type=_apply(cols["invoiceno"], lambda x: event_type(x.strip()).code).astype(np.int8),
        timestamp=_apply(cols["invoicedate"], _Dates()).astype(np.float64),
        value=_apply(cols["quantity"], number).astype(np.float64), price=price)
    collector = RecordCollector(report)
    collector.add_all(RecordCleaner(config, now=now)(_user_records(user, cols["country"], lines, path.name)))
    keep = clean_columns(events, lines, path.name, config=config, now=now, report=report)
    event_users, event_items = add_ids(collector.users, user[keep]), add_ids(collector.items, item[keep])
    texts = _apply(cols["description"], normalise_text)
    collector.add_all(RecordCleaner(config, now=now)(_fast_items(item, texts, price, lines, path.name)))
    return collector.table().set_events(event_users, event_items, events.event_type[keep], events.timestamp[keep],
                                        events.value[keep])


def _columns(path: Path) -> tuple[dict[str, Any], int]:
    """The file's columns as pyarrow string arrays (by our column name) and the number of rows."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    if path.suffix == ".gz":
        with gzip.open(path, "rb") as f:
            raw = f.read()
    else:
        raw = path.read_bytes()
    first = raw.split(b"\n", 1)[0].decode("utf-8-sig", errors="replace")
    col = _header(next(csv.reader([first]), []), path)
    names = [f"c{i}" for i in range(col[""])]
    try:
        table = pcsv.read_csv(pa.py_buffer(raw), read_options=pcsv.ReadOptions(skip_rows=1, column_names=names),
                              convert_options=pcsv.ConvertOptions(column_types={c: pa.string() for c in names},
                                                                  strings_can_be_null=False))
    except pa.ArrowInvalid as exc:
        raise Irregular(str(exc)) from None
    n_lines = raw.count(b"\n") + (0 if raw.endswith(b"\n") else 1)
    if n_lines != table.num_rows + 1:
        raise Irregular("blank lines or line breaks inside values")
    return {name: table.column(col[name]) for name in COLUMNS}, table.num_rows


def _apply(column: Any, parse: Any) -> np.ndarray:
    """parse(value) for every row, calling `parse` once per distinct value; ValueError -> Irregular."""
    encoded = column.combine_chunks().dictionary_encode()
    try:
        values = np.array([parse(v) for v in encoded.dictionary.to_pylist()] or [None], dtype=object)
    except ValueError as exc:
        raise Irregular(str(exc)) from None
    return values[encoded.indices.to_numpy(zero_copy_only=False)] if len(encoded) else np.zeros(0, dtype=object)


def _user_records(user: np.ndarray, country: Any, lines: np.ndarray, file: str) -> Iterator[UserRecord]:
    """A UserRecord per customer at its first line (as the reader emits them)."""
    codes, uniques = pd.factorize(user)
    first = np.full(len(uniques), len(user), dtype=np.int64)
    np.minimum.at(first, codes, np.arange(len(user)))
    countries = _apply(country, str.strip)
    for u, row in zip(uniques, first, strict=True):
        if u:
            yield UserRecord(str(u), {"country": countries[row]}, source=Source(file, int(lines[row])))


def _fast_items(item: np.ndarray, texts: np.ndarray, price: np.ndarray, lines: np.ndarray, file: str
                ) -> list[ItemRecord]:
    """The reader's item records, from vote frames computed with group-bys instead of dictionaries."""
    n = len(item)
    item_codes, item_names = pd.factorize(item)
    first = np.full(len(item_names), n, dtype=np.int64)
    np.minimum.at(first, item_codes, np.arange(n))
    by_first = np.argsort(first, kind="stable")
    order = {str(item_names[k]): int(lines[first[k]]) for k in by_first}
    keys = _distinct_map(texts, text_key)
    votes = pd.DataFrame({"item": item, "key": keys, "text": texts, "first": np.arange(n)})
    positive = price > 0
    pvotes = pd.DataFrame({"item": item[positive], "key": _distinct_map(price[positive], lambda p: repr(float(p))),
                           "text": price[positive], "first": np.flatnonzero(positive)})
    return item_records(order, _vote_frame(votes), _vote_frame(pvotes), file)


def _distinct_map(values: np.ndarray, fn: Any) -> np.ndarray:
    """fn(v) for every element, computed once per distinct value."""
    codes, uniques = pd.factorize(values)
    mapped = np.array([fn(u) for u in uniques] or [None], dtype=object)
    return mapped[codes]


def _vote_frame(frame: pd.DataFrame) -> pd.DataFrame:
    grouped = frame.groupby(["item", "key"], sort=False)
    out = grouped.agg(count=("first", "size"), first=("first", "min")).reset_index()
    out["text"] = frame.set_index("first")["text"].reindex(out["first"]).to_numpy()
    return out[VOTE_COLUMNS]
