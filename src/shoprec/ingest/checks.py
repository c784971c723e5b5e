"""The pipeline's own record checks, applied whatever cleaning runs: what the database needs.

Ids present (stripped of surrounding spaces) and at most MAX_ID_LENGTH characters, event types known,
times and numbers finite, JSON fields objects, an item's named vectors finite numbers (shoprec.data.vectors),
an event's event_id printable text of at most MAX_EVENT_ID_LENGTH characters (empty: none). A failing record
becomes a `Rejected` naming the field;
the fast paths keep the per-record cost low for well-formed input (most of every import).
"""

from __future__ import annotations

import math
from typing import Any

from shoprec.data.records import EventRecord, ItemRecord, Rejected, Source, UserRecord
from shoprec.data.vectors import VectorError, parse_vectors
from shoprec.storage.tables import MAX_CURRENCY_LENGTH, MAX_EVENT_ID_LENGTH, MAX_ID_LENGTH
from shoprec.types import EventType

Stored = EventRecord | ItemRecord | UserRecord
STORED_TYPES = (EventRecord, ItemRecord, UserRecord)
_isfinite = math.isfinite


def check_record(rec: Stored, src: Source) -> Stored | Rejected:
    """`rec` with its ids stripped, or a Rejected (at `src`) naming the field that is wrong."""
    if isinstance(rec, EventRecord):
        return _check_event(rec, src)
    if isinstance(rec, ItemRecord):
        return _check_item(rec, src)
    if isinstance(rec, UserRecord):
        return _check_user(rec, src)
    return Rejected(src, "unknown_record", "record", f"cannot store a {type(rec).__name__}")


def check_id(value: Any, src: Source, fld: str, missing: str) -> str | Rejected:
    """A stripped, non-empty id of at most MAX_ID_LENGTH characters, or a Rejected (`missing` / id_too_long)."""
    if type(value) is str and 0 < len(value) <= MAX_ID_LENGTH and not value[0].isspace() \
            and not value[-1].isspace():
        return value  # the common case, already clean
    if value is None:
        return Rejected(src, missing, fld, "empty")
    value = str(value).strip()
    if not value:
        return Rejected(src, missing, fld, "empty")
    if len(value) > MAX_ID_LENGTH:
        return Rejected(src, "id_too_long", fld, f"{len(value)} characters (at most {MAX_ID_LENGTH})")
    return value


def is_number(value: Any) -> bool:
    """A finite int or float (not a bool)."""
    kind = type(value)
    return (kind is float or kind is int) and _isfinite(value)


def _check_event(rec: EventRecord, src: Source) -> EventRecord | Rejected:
    user = check_id(rec.user_id, src, "user_id", "missing_user")
    if isinstance(user, Rejected):
        return user
    item = check_id(rec.item_id, src, "item_id", "missing_item")
    if isinstance(item, Rejected):
        return item
    if type(rec.event_type) is not EventType:
        try:
            rec.event_type = EventType.parse(str(rec.event_type))
        except ValueError as exc:
            return Rejected(src, "bad_event_type", "event_type", str(exc))
    if not is_number(rec.timestamp):
        return Rejected(src, "bad_timestamp", "timestamp", f"must be finite unix seconds, got {rec.timestamp!r}")
    if rec.value is not None and not is_number(rec.value):
        return Rejected(src, "bad_value", "value", f"must be a finite number, got {rec.value!r}")
    if rec.session_id is not None:
        session = check_id(rec.session_id, src, "session_id", "missing_session")
        if isinstance(session, Rejected) and session.reason != "missing_session":
            return session
        rec.session_id = session if isinstance(session, str) else None  # an empty session id means none
    if rec.context is not None and type(rec.context) is not dict:
        return Rejected(src, "bad_context", "context", f"must be an object, got {rec.context!r}")
    if rec.event_id is not None:
        event_id = check_event_id(rec.event_id, src)
        if isinstance(event_id, Rejected):
            return event_id
        rec.event_id = event_id
    rec.user_id, rec.item_id = user, item
    return rec


def check_event_id(value: Any, src: Source) -> str | Rejected | None:
    """A client's event id: printable text (no control or format characters) of 1..MAX_EVENT_ID_LENGTH
    characters without surrounding spaces (they are stripped; empty means none), or a Rejected (bad_event_id)."""
    if type(value) is not str:
        return Rejected(src, "bad_event_id", "event_id", f"must be text, got {value!r}")
    value = value.strip()
    if not value:
        return None
    if len(value) > MAX_EVENT_ID_LENGTH:
        return Rejected(src, "bad_event_id", "event_id",
                        f"{len(value)} characters (at most {MAX_EVENT_ID_LENGTH}): {value[:40]!r}...")
    if not value.isprintable():
        bad = next(c for c in value if not c.isprintable())
        return Rejected(src, "bad_event_id", "event_id",
                        f"must be printable text, found the character {bad!r} in {value[:40]!r}")
    return value


def _check_item(rec: ItemRecord, src: Source) -> ItemRecord | Rejected:
    item = check_id(rec.item_id, src, "item_id", "missing_item")
    if isinstance(item, Rejected):
        return item
    for name in ("title", "description", "category", "brand"):
        if type(getattr(rec, name)) is not str:
            return Rejected(src, f"bad_{name}", name, f"must be text, got {getattr(rec, name)!r}")
    if rec.price is not None and not is_number(rec.price):
        return Rejected(src, "bad_price", "price", f"must be a finite number, got {rec.price!r}")
    if rec.currency is not None and (type(rec.currency) is not str or len(rec.currency) > MAX_CURRENCY_LENGTH):
        return Rejected(src, "bad_currency", "currency", f"at most {MAX_CURRENCY_LENGTH} characters: {rec.currency!r}")
    if type(rec.available) is not bool:
        return Rejected(src, "bad_available", "available", f"must be true or false, got {rec.available!r}")
    if type(rec.attributes) is not dict:
        return Rejected(src, "bad_attributes", "attributes", f"must be an object, got {rec.attributes!r}")
    if rec.vectors is not None:
        try:
            rec.vectors = parse_vectors(rec.vectors) or None
        except VectorError as err:
            return Rejected(src, err.reason, err.field, err.detail)
    rec.item_id = item
    return rec


def _check_user(rec: UserRecord, src: Source) -> UserRecord | Rejected:
    user = check_id(rec.user_id, src, "user_id", "missing_user")
    if isinstance(user, Rejected):
        return user
    if type(rec.attributes) is not dict:
        return Rejected(src, "bad_attributes", "attributes", f"must be an object, got {rec.attributes!r}")
    rec.user_id = user
    return rec
