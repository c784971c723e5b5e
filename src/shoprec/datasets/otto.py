"""OTTO sessions (JSON Lines): `{"session": int, "events": [{"aid": int, "ts": int_ms, "type": "clicks"}, ...]}`.

clicks / carts / orders -> click / cart / purchase; ts in milliseconds -> seconds; the session id is both the
user id and the session_id (OTTO has no user ids). A bad line, or a bad event inside a line, becomes a
Rejected naming the line and the field (e.g. `events[3].ts`); the other events of that line are kept.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from shoprec.data.records import EventRecord, Record, Rejected, Source
from shoprec.datasets._common import check_file, json_object, open_text, parse_event_type, parse_id


def read_otto(path: str | Path) -> Iterator[Record]:
    """Records of an OTTO JSON Lines file (see the module docstring)."""
    return _records(check_file(path, "OTTO JSON Lines file"))


def _records(path: Path) -> Iterator[Record]:
    with open_text(path) as f:
        for n, line in enumerate(f, start=1):
            if line.strip():
                yield from _session(line, Source(path.name, n))


def _session(line: str, source: Source) -> Iterator[Record]:
    obj = json_object(line, source)
    if isinstance(obj, Rejected):
        yield obj
        return
    try:
        session = parse_id(obj.get("session"))
    except ValueError as exc:
        yield Rejected(source, "bad_value", "session", str(exc))
        return
    events = obj.get("events")
    if not isinstance(events, list):
        yield Rejected(source, "bad_value", "events", "expected a list of events")
        return
    for j, event in enumerate(events):
        yield _event(event, j, session, source)


def _event(event: Any, j: int, session: str, source: Source) -> Record:
    where = f"events[{j}]"
    if not isinstance(event, dict):
        return Rejected(source, "bad_value", where, "expected an object with aid, ts, type")
    try:
        item = parse_id(event.get("aid"))
    except ValueError as exc:
        return Rejected(source, "bad_value", f"{where}.aid", str(exc))
    try:
        etype = parse_event_type(event.get("type"))
    except ValueError as exc:
        return Rejected(source, "bad_event_type", f"{where}.type", str(exc))
    ts = event.get("ts")
    if isinstance(ts, bool) or not isinstance(ts, int | float):
        return Rejected(source, "bad_timestamp", f"{where}.ts", f"expected milliseconds since 1970, got {ts!r}")
    return EventRecord(user_id=session, item_id=item, event_type=etype, timestamp=ts / 1000.0,
                       session_id=session or None, source=source)
