"""Helpers shared by the readers: opening files, parsing times, numbers, booleans and event types."""

from __future__ import annotations

import gzip
import io
import json
import math
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from shoprec.data.records import Rejected, Source
from shoprec.errors import DataError
from shoprec.types import EventType

SYNTHETIC_EPOCH = 946684800  # 2000-01-01T00:00:00Z
SYNTHETIC_STEP = 3600
"""Formats without times get synthetic ones: the n-th event of a user (0-based) at SYNTHETIC_EPOCH + n hours.
They keep each user's order and never trip the bot rule; they carry no meaning across users."""

EVENT_ALIASES: dict[str, EventType] = {
    "clicks": EventType.CLICK, "views": EventType.VIEW, "pageview": EventType.VIEW, "page_view": EventType.VIEW,
    "detail_view": EventType.VIEW, "carts": EventType.CART, "add_to_cart": EventType.CART,
    "addtocart": EventType.CART, "remove_from_basket": EventType.REMOVE_FROM_CART, "orders": EventType.PURCHASE,
    "order": EventType.PURCHASE, "transaction": EventType.PURCHASE, "buy": EventType.PURCHASE,
    "returns": EventType.RETURN, "ratings": EventType.RATING, "reviews": EventType.REVIEW,
    "impressions": EventType.IMPRESSION,
}

_SURROGATE = re.compile("[\udc80-\udcff]")


def check_file(path: str | Path, what: str = "file") -> Path:
    """`path` as a Path when it is an existing file; DataError otherwise."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"{p}: {what} not found")
    if not p.is_file():
        raise DataError(f"{p}: expected a {what}, found a directory")
    return p


def check_dir(path: str | Path, what: str = "directory") -> Path:
    p = Path(path)
    if not p.exists():
        raise DataError(f"{p}: {what} not found")
    if not p.is_dir():
        raise DataError(f"{p}: expected a {what}, found a file")
    return p


def open_text(path: Path, encoding: str = "utf-8-sig") -> TextIO:
    """A text stream over `path` (gzip when it ends in .gz); undecodable bytes become surrogates that
    `bad_encoding` detects, so one bad line is rejected instead of the whole file failing."""
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding=encoding, errors="surrogateescape", newline="")
    return open(path, encoding=encoding, errors="surrogateescape", newline="")


def bad_encoding(text: str) -> bool:
    return not text.isascii() and _SURROGATE.search(text) is not None


def json_object(line: str, source: Source) -> dict[str, Any] | Rejected:
    """One JSON Lines line as an object, or why it is rejected (bad encoding, bad JSON, not an object)."""
    if bad_encoding(line):
        return Rejected(source, "bad_encoding", None, "the line is not valid UTF-8")
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        return Rejected(source, "bad_json", None, f"invalid JSON: {exc.msg} at column {exc.colno}")
    if not isinstance(obj, dict):
        return Rejected(source, "bad_row", None, f"expected a JSON object, got {type(obj).__name__}")
    return obj


def parse_timestamp(raw: Any) -> float:
    """Unix seconds from a number, a numeric string, an ISO-8601 string (naive = UTC) or a datetime.

    Raises ValueError with a short reason."""
    if isinstance(raw, bool):
        raise ValueError(f"not a time: {raw!r}")
    if isinstance(raw, int | float):
        if not math.isfinite(raw):
            raise ValueError(f"not a finite time: {raw!r}")
        return float(raw)
    if isinstance(raw, datetime):
        return (raw if raw.tzinfo else raw.replace(tzinfo=UTC)).timestamp()
    text = "" if raw is None else str(raw).strip()
    if not text:
        raise ValueError("empty")
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(value):
            raise ValueError(f"not a finite time: {text!r}")
        return value
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not ISO-8601 or unix seconds: {text!r}") from None
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()


def parse_float(raw: Any) -> float | None:
    """A finite float, None for an empty value; ValueError otherwise."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    if isinstance(raw, bool):
        raise ValueError(f"not a number: {raw!r}")
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise ValueError(f"not a number: {raw!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"not a finite number: {raw!r}")
    return value


_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f"}


def parse_bool(raw: Any, default: bool = True) -> bool:
    """true/false/1/0/yes/no (any case); empty -> `default`; ValueError otherwise."""
    if raw is None:
        return default
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, int) and raw in (0, 1):
        return bool(raw)
    text = str(raw).strip().lower()
    if not text:
        return default
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"not true/false/1/0: {raw!r}")


def parse_event_type(raw: Any) -> EventType:
    text = "" if raw is None else str(raw).strip().lower()
    alias = EVENT_ALIASES.get(text)
    return alias if alias is not None else EventType.parse(text)


def parse_id(raw: Any) -> str:
    """An external id as a stripped string ('' when missing); integral floats are written without decimals."""
    if raw is None:
        return ""
    if isinstance(raw, bool):
        raise ValueError(f"not an id: {raw!r}")
    if isinstance(raw, float):
        if not math.isfinite(raw):
            raise ValueError(f"not an id: {raw!r}")
        return str(int(raw)) if raw.is_integer() else repr(raw)
    if isinstance(raw, int | str):
        return str(raw).strip()
    raise ValueError(f"not an id: {raw!r}")


def normalise_category(raw: Any) -> str:
    """A category path joined with " > ". Input: "A > B" (the one separator, spaces optional) or a list."""
    if raw is None:
        return ""
    parts = [str(p) for p in raw] if isinstance(raw, list | tuple) else str(raw).split(">")
    return " > ".join(p.strip() for p in parts if p.strip())
