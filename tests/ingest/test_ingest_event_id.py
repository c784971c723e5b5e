"""A client's `event_id`: an event whose id is already stored (per platform) is a duplicate, not stored again,
whatever its timestamp; on SQLite, PostgreSQL and MariaDB (the `engine` fixture), through the one pipeline
and in every event file format."""

from __future__ import annotations

import json
from collections.abc import Collection
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from shoprec.data.records import EventRecord, Source
from shoprec.datasets import read_records
from shoprec.ingest.pipeline import ingest
from shoprec.storage import PlatformRepo, downgrade, find_platform, migrate
from shoprec.storage import tables as T
from shoprec.types import EventType


def _event(user: str, item: str, ts: float, event_id: str | None, line: int = 0) -> EventRecord:
    return EventRecord(user_id=user, item_id=item, event_type=EventType.VIEW, timestamp=ts, event_id=event_id,
                       source=Source("test", line))


def _stored(engine: sa.Engine, platform: str) -> list[tuple[str | None, float]]:
    ev = T.events
    with engine.connect() as conn:
        pid = find_platform(conn, platform)
        rows = conn.execute(sa.select(ev.c.event_id, ev.c.timestamp).where(ev.c.platform_id == pid)
                            .order_by(ev.c.id)).all()
    return [(r[0], float(r[1])) for r in rows]


def test_an_event_id_already_stored_is_a_duplicate_whatever_its_timestamp(engine: sa.Engine, platform: str) -> None:
    first = ingest(engine, platform, [_event("u1", "i1", 100.0, "e-1", 1), _event("u1", "i2", 101.0, "e-2", 2)])
    assert first.stored_total("events") == 2 and first.accepted == 2
    # the retry: the same events, new arrival times (as for events sent without a timestamp)
    retry = ingest(engine, platform, [_event("u1", "i1", 500.0, "e-1", 1), _event("u1", "i2", 501.0, "e-2", 2)])
    assert retry.stored_total("events") == 0
    assert retry.rejected == {"duplicate": 2}
    assert "same event_id" in retry.cleaning.to_dict()["examples"]["duplicate"][0]
    assert _stored(engine, platform) == [("e-1", 100.0), ("e-2", 101.0)]


def test_event_ids_within_one_batch_and_events_without_one(engine: sa.Engine, platform: str) -> None:
    report = ingest(engine, platform, [
        _event("u1", "i1", 1.0, "same", 1), _event("u2", "i2", 2.0, "same", 2),  # the second is a duplicate
        _event("u1", "i1", 3.0, None, 3), _event("u1", "i1", 4.0, None, 4),  # NULL event ids never collide
        _event("u1", "i1", 5.0, "", 5),  # empty: no event id
    ])
    assert report.stored_total("events") == 4 and report.rejected == {"duplicate": 1}
    assert _stored(engine, platform) == [("same", 1.0), (None, 3.0), (None, 4.0), (None, 5.0)]


def test_event_ids_are_per_platform(engine: sa.Engine, platform: str) -> None:
    ingest(engine, platform, [_event("u1", "i1", 1.0, "shared-id")])
    other = ingest(engine, platform + "-b", [_event("u1", "i1", 1.0, "shared-id")])
    assert other.stored_total("events") == 1
    assert _stored(engine, platform + "-b") == [("shared-id", 1.0)]


class _Racing(PlatformRepo):
    """A repository that does not see stored event ids, as when a concurrent request stored them between this
    one's check and its INSERT: the INSERT itself must skip the row (no IntegrityError, no second copy)."""

    def existing_event_ids(self, event_ids: Collection[str]) -> set[str]:
        return set()


def test_the_insert_itself_skips_a_stored_event_id(engine: sa.Engine, platform: str) -> None:
    ingest(engine, platform, [_event("u1", "i1", 1.0, "raced")])
    with engine.begin() as conn:
        repo = _Racing(conn, find_platform(conn, platform) or 0)
        repo.add_events([_event("u1", "i1", 2.0, "raced")], now=10.0)
    assert _stored(engine, platform) == [("raced", 1.0)]


@pytest.mark.parametrize(("event_id", "detail"), [
    ("x" * 129, "129 characters (at most 128)"),
    ("tab\there", "printable"),
    ("nul\x00", "printable"),
    ("\u202eevil", "printable"),
    (17, "must be text"),
])
def test_a_bad_event_id_is_rejected_naming_the_field(sqlite_engine: sa.Engine, event_id: object, detail: str) -> None:
    bad = _event("u1", "i1", 1.0, None, 1)
    bad.event_id = event_id  # type: ignore[assignment]
    report = ingest(sqlite_engine, "shop", [bad, _event("u1", "i1", 2.0, "fine", 2)])
    assert report.rejected == {"bad_event_id": 1} and report.stored_total("events") == 1
    example = report.cleaning.to_dict()["examples"]["bad_event_id"][0]
    assert example.startswith("test:1 field=event_id: bad_event_id: ") and detail in example, example


def test_event_id_in_every_event_file_format(tmp_path: Path, sqlite_engine: sa.Engine) -> None:
    csv = tmp_path / "e.csv"
    csv.write_text("user_id,item_id,event_type,timestamp,event_id\nu1,i1,view,100,c-1\nu1,i2,view,101,\n")
    jsonl = tmp_path / "e.jsonl"
    jsonl.write_text(json.dumps({"user_id": "u1", "item_id": "i1", "event_type": "view", "timestamp": 200,
                                 "event_id": "c-1"}) + "\n"  # the CSV's event: a duplicate
                     + json.dumps({"user_id": "u2", "item_id": "i1", "event_type": "view", "timestamp": 201,
                                   "event_id": 7}) + "\n")  # an integer id is read as text
    parquet = tmp_path / "e.parquet"
    pq.write_table(pa.table({"user_id": ["u3", "u3"], "item_id": ["i1", "i1"], "event_type": ["view", "view"],
                             "timestamp": [300.0, 301.0], "event_id": ["7", "p-1"]}), parquet)
    events = [r for r in read_records("events-csv", csv) if isinstance(r, EventRecord)]
    assert [e.event_id for e in events] == ["c-1", None] and events[0].context is None  # not a context column
    reports = [ingest(sqlite_engine, "shop", read_records(fmt, path))
               for fmt, path in (("events-csv", csv), ("events-jsonl", jsonl), ("events-parquet", parquet))]
    assert [r.stored_total("events") for r in reports] == [2, 1, 1]
    assert [r.rejected for r in reports] == [{}, {"duplicate": 1}, {"duplicate": 1}]
    with sqlite_engine.connect() as conn:
        assert PlatformRepo(conn, find_platform(conn, "shop") or 0).count_events() == 4


def test_migration_0010_keeps_stored_events_and_adds_the_column(engine: sa.Engine, platform: str) -> None:
    """Down to 0009 and up again on a database holding events: they stay, without an event id; ids work after."""
    ingest(engine, platform, [_event("u1", "i1", 1.0, "before")])
    downgrade(engine, "0009")
    try:
        with engine.connect() as conn:
            inspector = sa.inspect(conn)
            assert "event_id" not in {c["name"] for c in inspector.get_columns("events")}
            assert "idempotency_keys" not in inspector.get_table_names()
    finally:
        migrate(engine)
    assert _stored(engine, platform) == [(None, 1.0)]
    ingest(engine, platform, [_event("u1", "i1", 2.0, "after"), _event("u2", "i2", 3.0, "after")])
    assert _stored(engine, platform) == [(None, 1.0), ("after", 2.0)]
