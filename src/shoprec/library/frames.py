"""DataFrames in: the rows of a pandas (or polars) DataFrame parsed by THE row parsers of the import formats.

`event_records` / `item_records` give each row to `shoprec.datasets.events.event_from_row` / `item_from_row`
and then to the ingest pipeline's own checks (`shoprec.ingest.checks.check_record`), exactly as a row of an
events-csv / events-parquet file goes through `shoprec import`: the same column names and aliases (`type` for
`event_type`, event type synonyms such as `add_to_cart`), timestamp forms (datetime, ISO-8601 string, unix
seconds), id rules and attributes (extra item columns). A row that fails is an error naming the frame, its
row (1-based, as a file's data rows are counted) and field; nothing is fitted.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

from shoprec.data.records import Record, Rejected, Source
from shoprec.datasets.events import (
    EVENT_HEADER_ALIASES,
    REQUIRED_EVENT_COLUMNS,
    REQUIRED_ITEM_COLUMNS,
    event_from_row,
    item_from_row,
)
from shoprec.errors import DataError
from shoprec.ingest.checks import check_record

MAX_NAMED = 3  # rejected rows named in the error message


def frame_rows(frame: Any, what: str) -> tuple[list[str], list[dict[str, Any]]]:
    """(lower-case column names, rows as dicts with missing values as None) of a pandas or polars DataFrame."""
    if hasattr(frame, "to_dicts"):  # polars
        rows = frame.to_dicts()
    elif hasattr(frame, "to_dict"):  # pandas
        rows = frame.to_dict("records")
    else:
        raise DataError(f"{what} must be a pandas or polars DataFrame, got {type(frame).__name__}")
    columns = [str(c).strip().lower() for c in frame.columns]
    return columns, [{str(k).strip().lower(): _value(v) for k, v in row.items()} for row in rows]


def _value(v: Any) -> Any:
    """None for a missing value (NaN, NaT, None); the value otherwise."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    return None if type(v).__name__ in ("NaTType", "NAType") else v


def _check_columns(columns: list[str], required: tuple[str, ...], aliases: Mapping[str, str], what: str) -> None:
    present = set(columns) | {aliases[c] for c in columns if c in aliases}
    missing = [c for c in required if c not in present]
    if missing:
        raise DataError(f"{what} has no {missing[0]!r} column (found: {', '.join(columns) or 'none'}; "
                        f"required: {', '.join(required)})")


def event_records(frame: Any, name: str = "events") -> list[Record]:
    """The EventRecords of an events DataFrame (user_id, item_id, event_type, timestamp[, value][, ...])."""
    columns, rows = frame_rows(frame, name)
    _check_columns(columns, REQUIRED_EVENT_COLUMNS, EVENT_HEADER_ALIASES, f"DataFrame {name!r}")
    return _checked((event_from_row(row, Source(name, n)) for n, row in enumerate(rows, start=1)), name)


def item_records(frame: Any, name: str = "items") -> list[Record]:
    """The ItemRecords of an items DataFrame (item_id[, title, description, category, brand, price, ...])."""
    columns, rows = frame_rows(frame, name)
    _check_columns(columns, REQUIRED_ITEM_COLUMNS, {}, f"DataFrame {name!r}")
    return _checked((item_from_row(row, Source(name, n)) for n, row in enumerate(rows, start=1)), name)


def _checked(records: Iterator[Record], name: str) -> list[Record]:
    out: list[Record] = []
    bad: list[Rejected] = []
    for rec in records:
        if not isinstance(rec, Rejected):
            rec = check_record(rec, rec.source)  # type: ignore[arg-type,union-attr]
        if isinstance(rec, Rejected):
            bad.append(rec)
        else:
            out.append(rec)
    if bad:
        named = "; ".join(f"row {r.source.line}, field {r.field}: {r.detail or r.reason}" for r in bad[:MAX_NAMED])
        more = f" (and {len(bad) - MAX_NAMED} more rows)" if len(bad) > MAX_NAMED else ""
        raise DataError(f"DataFrame {name!r}: {len(bad)} bad row(s): {named}{more}")
    return out
