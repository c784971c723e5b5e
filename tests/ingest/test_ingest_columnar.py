"""The columnar fast path of `shoprec import` (shoprec.service.file_import): the same report and the same stored rows as
the record path on every database, for a file with every rejection reason; idempotent; COPY on PostgreSQL; a
killed import loses no committed batch."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from shoprec.datasets import read_records
from shoprec.errors import DataError, StorageError
from shoprec.ingest.pipeline import ingest
from shoprec.service import file_import
from shoprec.service.file_import import ingest_file
from shoprec.storage import bulk, create_db
from shoprec.storage.bulk import COPY_MIN_ROWS, STAGE

NOW = 1_700_000_000.0
HEADER = "user_id,item_id,event_type,timestamp,value,session_id,event_id"
LINES = [
    "u1,i1,view,1600000000,,s1,e1",
    " u2 , i2 ,PURCHASE,1600000001,2,,",
    "u2,i2,purchase,1600000001,2,,",  # duplicate of the line before
    ",i3,view,1600000002,,,",  # missing_user
    "u3,,view,1600000002,,,",  # missing_item
    "u3,i3,bogus,1600000002,,,",  # bad_event_type
    "u3,i3,view,notatime,,,",  # bad_timestamp
    "u3,i3,view,2023-01-02T03:04:05,,,",  # ISO-8601: kept
    "u3,i3,view,2023-01-02 03:04:05+02:00,,,",
    "u3,i3,view,9999999999,,,",  # future_timestamp
    "u3,POST,view,1600000003,,,",  # non_product_code
    "u3,gift_0001_20,view,1600000003,,,",
    "u3,i4,purchase,1600000004,0,,",  # non_positive_quantity
    "u3,i4,purchase,1600000004,abc,,",  # bad_value
    "u3,i4,purchase,1600000004,inf,,",
    "u3,i4,view,nan,,,",  # bad_timestamp
    "u3,i4,view,-5,,,",
    "u4,i5,add_to_cart,1600000005,1,,e2",
    "u4,i5,view,1600000006,,,e2",  # duplicate event_id
    "u4,i5,view,1600000007,,,e3\x07",  # bad_event_id
    "u4,i5,view,1600000008,,," + "x" * 300,
    "u" + "x" * 300 + ",i5,view,1600000009,,,",  # id_too_long
    "u4,i5,view,1600000010,," + "s" * 300 + ",",
    "u4,i5,view,1600000010,,  ,",  # an empty session: none
    "u4,i5,view",  # bad_row
    "u5,\u00ef6,view,1600000011,,,",  # non-ASCII: through the record path, kept
    "",
    "u5,i6,view, 1600000012 ,,,",
    "u5,i6,Page_View,1600000013,1.5,,",
    "u5,i6,view,1_600_000_014,,,",
    "u5,i6,view,1600000015.25,,,",
    '"u6","i7","view","1600000016","","",""',
    '"u6\nx","i7","view","1600000017","","",""',  # a quoted line break: line numbers follow the file
    "u7,i8,view,1600000018,,,",
]


@pytest.fixture
def messy(tmp_path: Path) -> Path:
    path = tmp_path / "events.csv"
    path.write_text("\n".join([HEADER, *LINES]) + "\n", encoding="utf-8")
    return path


def report_of(report: Any) -> dict[str, Any]:
    out: dict[str, Any] = report.to_dict()
    for key in ("seconds", "platform", "source", "format"):
        out.pop(key, None)
    out["platforms"] = list(out.get("platforms", {}).values())  # the two imports' platform names differ
    return out


def stored(engine: sa.Engine, platform: str) -> tuple[list[Any], list[Any], list[Any]]:
    query = sa.text(
        "SELECT u.external_id, i.external_id, e.event_type, e.value, e.timestamp, e.session_id, e.context, e.text, "
        "e.dedupe_key, e.event_id FROM events e JOIN users u ON u.id = e.user_id JOIN items i ON i.id = e.item_id "
        "JOIN platforms p ON p.id = e.platform_id WHERE p.name = :p ORDER BY e.id")
    with engine.connect() as conn:
        events = [tuple(r) for r in conn.execute(query, {"p": platform})]
        users, items = ([tuple(r) for r in conn.execute(sa.text(
            f"SELECT t.external_id FROM {table} t JOIN platforms p ON p.id = t.platform_id WHERE p.name = :p "
            "ORDER BY t.id"), {"p": platform})] for table in ("users", "items"))
    return events, users, items


def test_same_report_and_rows_as_the_record_path(engine: sa.Engine, platform: str, messy: Path) -> None:
    slow = ingest(engine, platform + "-r", read_records("events-csv", messy), now=NOW, batch_size=4)
    fast = ingest_file(engine, platform + "-f", "events-csv", messy, now=NOW, batch_size=4)
    assert report_of(fast) == report_of(slow)
    assert fast.stored_total("events") == slow.stored_total("events") == 14
    assert fast.stored_total("users") == slow.stored_total("users")
    assert set(fast.rejected) == {"bad_event_id", "bad_event_type", "bad_row", "bad_timestamp", "bad_value",
                                  "duplicate", "future_timestamp", "id_too_long", "missing_item", "missing_user",
                                  "non_positive_quantity", "non_product_code"}
    assert stored(engine, platform + "-f") == stored(engine, platform + "-r")


def test_reimport_adds_nothing(engine: sa.Engine, platform: str, messy: Path) -> None:
    first = ingest_file(engine, platform, "events-csv", messy, now=NOW)
    again = ingest_file(engine, platform, "events-csv", messy, now=NOW)
    assert again.stored_total("events") == 0
    assert again.rejected["duplicate"] == first.accepted + first.rejected["duplicate"]
    assert again.accepted == 0
    # the record path agrees: nothing new either
    assert ingest(engine, platform, read_records("events-csv", messy), now=NOW).stored_total("events") == 0


def test_other_columns_take_the_record_path(engine: sa.Engine, platform: str, tmp_path: Path) -> None:
    path = tmp_path / "priced.csv"
    path.write_text("user_id,item_id,event_type,timestamp,price\nu1,i1,purchase,1600000000,0\n"
                    "u1,i2,purchase,1600000001,2.5\n")
    report = ingest_file(engine, platform, "events-csv", path, now=NOW)
    assert report.rejected == {"non_positive_price": 1}
    context = stored(engine, platform)[0][0][6]
    assert (json.loads(context) if isinstance(context, str) else context) == {"price": 2.5}


def test_postgresql_writes_through_copy(engine: sa.Engine, platform: str, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """COPY straight into events while nothing collides; a batch that collides with stored events (here the
    re-import) goes through the staging table, which skips them."""
    if engine.dialect.name != "postgresql":
        pytest.skip("COPY is the PostgreSQL path")
    path = tmp_path / "big.csv"  # batches large enough for COPY, with every rejection reason among them
    clean = [f"v{k % 37},j{k % 53},view,{1600000100 + k},,," for k in range(COPY_MIN_ROWS * 2)]
    path.write_text("\n".join([HEADER, *LINES, *clean, *LINES]) + "\n", encoding="utf-8")
    targets: list[str] = []
    copy = bulk._copy

    def spy(conn: Any, target: str, *args: Any, **kwargs: Any) -> None:
        targets.append(target.split()[0])
        copy(conn, target, *args, **kwargs)

    monkeypatch.setattr(bulk, "_copy", spy)
    fast = ingest_file(engine, platform + "-f", "events-csv", path, now=NOW)
    assert targets == ["events"], "the events were not copied straight into the table"
    slow = ingest(engine, platform + "-r", read_records("events-csv", path), now=NOW)
    assert report_of(fast) == report_of(slow)
    assert fast.rejected["duplicate"] == 18  # the second copy of LINES: its 14 events; and 2 within each copy
    assert stored(engine, platform + "-f") == stored(engine, platform + "-r")
    targets.clear()
    again = ingest_file(engine, platform + "-f", "events-csv", path, now=NOW)
    assert STAGE in targets, "the colliding batch did not go through the staging table"
    assert again.stored_total("events") == 0
    assert again.rejected["duplicate"] == fast.accepted + fast.rejected["duplicate"]


def test_contexts_through_copy(engine: sa.Engine, platform: str, tmp_path: Path) -> None:
    """The record path's events with a context (here a price), in batches large enough for COPY on PostgreSQL:
    the JSON arrives whole, and the rows are those that small batches (plain INSERTs) store."""
    path = tmp_path / "priced.csv"
    lines = [f"u{k % 41},i{k % 43},purchase,{1600000000 + k},1,{k % 7 + 0.25}" for k in range(COPY_MIN_ROWS + 10)]
    path.write_text("user_id,item_id,event_type,timestamp,value,price\n" + "\n".join(lines) + "\n")
    big = ingest_file(engine, platform + "-big", "events-csv", path, now=NOW)
    small = ingest_file(engine, platform + "-small", "events-csv", path, now=NOW, batch_size=100)
    assert big.stored_total("events") == small.stored_total("events") == COPY_MIN_ROWS + 10
    rows = stored(engine, platform + "-big")[0]
    assert rows == stored(engine, platform + "-small")[0]
    context = rows[3][6]
    assert (json.loads(context) if isinstance(context, str) else context) == {"price": 3.25}


def test_a_batch_partly_stored_before(engine: sa.Engine, platform: str, tmp_path: Path) -> None:
    """A batch of which some events are stored already (an import that was interrupted, run again): the
    database skips those (PostgreSQL: the staging table after the direct COPY collided; SQLite: the rows the
    INSERT stored are the last ones), and the report and rows are the record path's."""
    clean = [f"v{k % 37},j{k % 53},view,{1600000100 + k},,," for k in range(COPY_MIN_ROWS * 3)]
    part, whole = tmp_path / "part.csv", tmp_path / "whole.csv"
    part.write_text("\n".join([HEADER, *clean[COPY_MIN_ROWS:COPY_MIN_ROWS * 2]]) + "\n", encoding="utf-8")
    whole.write_text("\n".join([HEADER, *LINES, *clean]) + "\n", encoding="utf-8")
    ingest_file(engine, platform + "-f", "events-csv", part, now=NOW)
    ingest(engine, platform + "-r", read_records("events-csv", part), now=NOW)
    fast = ingest_file(engine, platform + "-f", "events-csv", whole, now=NOW)
    slow = ingest(engine, platform + "-r", read_records("events-csv", whole), now=NOW)
    assert report_of(fast) == report_of(slow)
    assert fast.stored_total("events") == 14 + COPY_MIN_ROWS * 2
    assert fast.rejected["duplicate"] == 1 + 1 + COPY_MIN_ROWS
    assert stored(engine, platform + "-f") == stored(engine, platform + "-r")
    # a later import of new events stores them all
    more = tmp_path / "more.csv"
    more.write_text("\n".join([HEADER, *(f"w{k},j1,view,{1700000000 + k},,," for k in range(COPY_MIN_ROWS))]) + "\n")
    assert ingest_file(engine, platform + "-f", "events-csv", more, now=NOW).stored_total("events") == COPY_MIN_ROWS


def test_a_truncated_file_keeps_the_lines_before(engine: sa.Engine, platform: str, tmp_path: Path) -> None:
    body = (HEADER + "\n" + "".join(f"u{k},i{k % 50},view,{1600000000 + k},,,\n" for k in range(20000))).encode()
    whole = gzip.compress(body)
    path = tmp_path / "cut.csv.gz"
    path.write_bytes(whole[: len(whole) * 2 // 3])
    with pytest.raises(DataError, match="import stopped after"):
        ingest_file(engine, platform, "events-csv", path, now=NOW, batch_size=1000)
    assert len(stored(engine, platform)[0]) > 5000


def test_a_failed_write_stops_the_reader(sqlite_engine: sa.Engine, platform: str, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A database error mid-import propagates, the batches before it stay, and the thread reading ahead ends."""
    path = tmp_path / "many.csv"
    path.write_text(HEADER + "\n" + "".join(f"u{k},i{k % 50},view,{1600000000 + k},,,\n" for k in range(2000)))
    monkeypatch.setattr(file_import, "BLOCK", 100)
    calls: list[int] = []
    insert = bulk.insert_events

    def failing(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 3:
            raise sa.exc.OperationalError("INSERT", None, Exception("disk I/O error"))
        return insert(*args, **kwargs)

    monkeypatch.setattr(bulk, "insert_events", failing)
    with pytest.raises(StorageError):
        ingest_file(sqlite_engine, platform, "events-csv", path, now=NOW, batch_size=100)
    assert len(stored(sqlite_engine, platform)[0]) == 200
    assert not [t for t in threading.enumerate() if t.name == "shoprec-import-reader"]


def test_blocks_share_transactions_of_batch_size_events(sqlite_engine: sa.Engine, platform: str, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks of 100 lines, transactions of 250 events: a failure in the fourth block rolls back what the open
    transaction held (the third block's last 50 lines), and the 250 committed before stay."""
    path = tmp_path / "many.csv"
    path.write_text(HEADER + "\n" + "".join(f"u{k},i{k % 50},view,{1600000000 + k},,,\n" for k in range(1000)))
    monkeypatch.setattr(file_import, "BLOCK", 100)
    sizes: list[int] = []
    insert = bulk.insert_events

    def failing(conn: Any, rows: Any, *args: Any, **kwargs: Any) -> Any:
        sizes.append(len(rows))
        if len(sizes) == 5:
            raise sa.exc.OperationalError("INSERT", None, Exception("disk I/O error"))
        return insert(conn, rows, *args, **kwargs)

    monkeypatch.setattr(bulk, "insert_events", failing)
    with pytest.raises(StorageError):
        ingest_file(sqlite_engine, platform, "events-csv", path, now=NOW, batch_size=250)
    assert sizes == [100, 100, 50, 50, 100]
    assert len(stored(sqlite_engine, platform)[0]) == 250
    monkeypatch.setattr(bulk, "insert_events", insert)
    report = ingest_file(sqlite_engine, platform, "events-csv", path, now=NOW, batch_size=250)
    assert report.stored_total("events") == 750 and report.rejected == {"duplicate": 250}


KILLED_IMPORT = """
import sys
from pathlib import Path
from shoprec.service import file_import
from shoprec.service.file_import import ingest_file
from shoprec.storage import create_db
ingest_file(create_db(sys.argv[1]), "shop", "events-csv", Path(sys.argv[2]), batch_size=500)
"""


def test_a_killed_import_loses_no_committed_batch(tmp_path: Path) -> None:
    """kill -9 mid-import: what was committed stays whole (whole batches), importing again completes it."""
    n = 60_000
    path = tmp_path / "big.csv"
    path.write_text(HEADER + "\n" + "".join(f"u{k % 997},i{k % 101},view,{1600000000 + k},,,\n" for k in range(n)))
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    engine = create_db(url)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.Popen([sys.executable, "-c", KILLED_IMPORT, url, str(path)], env=env)
    count = sa.text("SELECT count(*) FROM events")
    try:
        deadline = time.monotonic() + 120
        with engine.connect() as conn:
            while proc.poll() is None and conn.execute(count).scalar_one() == 0 and time.monotonic() < deadline:
                time.sleep(0.05)
                conn.rollback()
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    with engine.connect() as conn:
        kept = conn.execute(count).scalar_one()
    assert kept % 500 == 0  # whole batches only
    report = ingest_file(engine, "shop", "events-csv", path)
    assert report.stored_total("events") == n - kept
    assert report.rejected.get("duplicate", 0) == kept
    with engine.connect() as conn:
        assert conn.execute(count).scalar_one() == n
    engine.dispose()


def test_a_pseudonymised_import_keys_its_events_by_the_stored_user(engine: sa.Engine, platform: str,
                                                                   messy: Path) -> None:
    """The reader computes the dedupe keys ahead; with pseudonyms the writer computes them again over the stored
    (pseudonymous) user id, as the record path does: the fast path finds the record path's events duplicates."""
    from shoprec.privacy import Privacy
    from shoprec.storage.repo import _dedupe

    privacy = Privacy("test-secret-0123456789", pseudonymize=True)
    fast = ingest_file(engine, platform, "events-csv", messy, now=NOW, privacy=privacy)
    assert fast.stored_total("events") == 14
    rows = stored(engine, platform)[0]
    assert "u1" not in {r[0] for r in rows}
    assert [r[8] for r in rows] == [_dedupe(r[0], r[1], r[2], r[4], r[3], r[5]) for r in rows]
    slow = ingest(engine, platform, read_records("events-csv", messy), now=NOW, privacy=privacy)
    assert slow.stored_total("events") == 0


@pytest.mark.parametrize("case", ["messy", "whole transactions", "record path"])
def test_a_file_import_hands_its_bulk_settings_back(tmp_path: Path, messy: Path, case: str) -> None:
    """The import's connection goes back to the pool with SQLite's default page cache (its memory freed): after a
    file that ends within a transaction, one that ends on a transaction's boundary, and the record path."""
    path, batch_size = messy, None
    if case == "whole transactions":
        path, batch_size = tmp_path / "ten.csv", 5
        path.write_text(HEADER + "\n" + "".join(f"u{k},i{k},view,{1600000000 + k},,,\n" for k in range(10)))
    elif case == "record path":  # a text column: not the fast path
        path = tmp_path / "texts.csv"
        path.write_text("user_id,item_id,event_type,timestamp,text\nu1,i1,review,1600000000,fine\n")
    engine = create_db(f"sqlite:///{tmp_path / 'db.sqlite'}")
    try:
        report = ingest_file(engine, "shop", "events-csv", path, now=NOW, batch_size=batch_size)
        assert report.stored_total("events") > 0
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA cache_size").scalar() == -2000
            assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 1000
    finally:
        engine.dispose()


def test_a_failed_import_into_an_in_memory_database_keeps_it(tmp_path: Path, messy: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """An in-memory SQLite database lives in its one connection: a failed import rolls back its open transaction
    and leaves the connection (and what was committed before) alone."""
    engine = create_db("sqlite://")
    try:
        assert ingest_file(engine, "shop", "events-csv", messy, now=NOW).stored_total("events") == 14

        def failing(*args: Any, **kwargs: Any) -> Any:
            raise sa.exc.OperationalError("INSERT", None, Exception("disk I/O error"))

        monkeypatch.setattr(bulk, "insert_events", failing)
        other = tmp_path / "other.csv"
        other.write_text(HEADER + "\nu9,i9,view,1600000000,,,\n")
        with pytest.raises(StorageError):
            ingest_file(engine, "shop", "events-csv", other, now=NOW)
        assert len(stored(engine, "shop")[0]) == 14
    finally:
        engine.dispose()
