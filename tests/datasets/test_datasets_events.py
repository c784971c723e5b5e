"""Canonical event and item formats: CSV, JSON Lines, Parquet; bad lines become Rejected naming line and field."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dshelpers import rejected, write

from shoprec.data.records import EventRecord, ItemRecord
from shoprec.datasets import FORMATS, read_records
from shoprec.errors import DataError
from shoprec.types import EventType

EVENTS_CSV = (
    "user_id,item_id,event_type,timestamp,value,session_id,price\n"
    "u1,i1,view,2024-01-02T03:04:05Z,,s1,\n"  # 2
    "u1,i2,add_to_cart,1704164645,2,s1,9.5\n"  # 3 (alias, unix seconds, price to context)
    "u2,i1,purchase,2024-01-02 03:04:05,1,,\n"  # 4 naive ISO = UTC
    "u2,i3,teleport,1704164645,,,\n"  # 5 bad event type
    "u3,i3,view,last tuesday,,,\n"  # 6 bad timestamp
    "u3,i3,rating,1704164645,lots,,\n"  # 7 bad value
    "u3,i3,view,1704164645\n"  # 8 too few fields
    "\n"  # 9 blank: skipped
    "u4,i4,purchase,1704164645,1,,free\n"  # 10 bad price
    ',i5,"click",1704164645,,,\n'  # 11 missing user: kept by the reader (a cleaning rule rejects it)
)


def test_events_csv_parses_good_rows_and_names_bad_ones(tmp_path: Path) -> None:
    records = list(read_records("events-csv", write(tmp_path / "events.csv", EVENTS_CSV)))
    events = [r for r in records if isinstance(r, EventRecord)]
    assert [(e.user_id, e.item_id, e.event_type) for e in events] == [
        ("u1", "i1", EventType.VIEW), ("u1", "i2", EventType.CART), ("u2", "i1", EventType.PURCHASE),
        ("", "i5", EventType.CLICK)]
    t = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp()
    assert [e.timestamp for e in events[:3]] == [t, t, t]
    assert events[0].value is None and events[1].value == 2.0
    assert events[1].context == {"price": 9.5} and events[1].session_id == "s1" and events[2].session_id is None
    assert events[0].source is not None and (events[0].source.file, events[0].source.line) == ("events.csv", 2)
    bad = {(r.source.line, r.reason, r.field) for r in rejected(records)}
    assert bad == {(5, "bad_event_type", "event_type"), (6, "bad_timestamp", "timestamp"), (7, "bad_value", "value"),
                   (8, "bad_row", None), (10, "bad_value", "price")}
    assert all(r.source.file == "events.csv" and r.detail for r in rejected(records))


def test_events_csv_gzip_and_bom(tmp_path: Path) -> None:
    path = write(tmp_path / "e.csv.gz", "\ufeffUSER_ID,item_id,event_type,timestamp\nu,i,click,5\n", gz=True)
    (event,) = list(read_records("events-csv", path))
    assert isinstance(event, EventRecord) and (event.user_id, event.timestamp) == ("u", 5.0)


def test_events_csv_bad_bytes_reject_only_that_line(tmp_path: Path) -> None:
    path = tmp_path / "e.csv"
    path.write_bytes(b"user_id,item_id,event_type,timestamp\nu\xff,i,click,5\nu,i,click,6\n")
    records = list(read_records("events-csv", path))
    assert [(r.source.line, r.reason, r.field) for r in rejected(records)] == [(2, "bad_encoding", "user_id")]
    assert sum(isinstance(r, EventRecord) for r in records) == 1


def test_missing_column_file_and_format_raise_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="timestamp"):
        read_records("events-csv", write(tmp_path / "e.csv", "user_id,item_id,event_type\nu,i,view\n"))
    with pytest.raises(DataError, match="not found"):
        read_records("events-csv", tmp_path / "nope.csv")
    with pytest.raises(DataError, match=r"unknown format 'csv'.*events-csv"):
        read_records("csv", tmp_path)
    with pytest.raises(DataError, match="empty"):
        read_records("items-csv", write(tmp_path / "empty.csv", ""))
    assert "events-parquet" in FORMATS and "cdrib" in FORMATS


def test_events_jsonl(tmp_path: Path) -> None:
    lines = [
        json.dumps({"user_id": 7, "item_id": "a", "event_type": "purchase", "timestamp": 1700000000, "value": 3,
                    "campaign": "x"}),
        "{not json",
        json.dumps([1, 2]),
        json.dumps({"user_id": "u", "item_id": "a", "event_type": "view", "timestamp": True}),
        "",
        json.dumps({"user_id": "u", "item_id": "b", "event_type": "like", "timestamp": "2023-11-14T22:13:20+01:00"}),
    ]
    records = list(read_records("events-jsonl", write(tmp_path / "e.jsonl", "\n".join(lines))))
    events = [r for r in records if isinstance(r, EventRecord)]
    assert (events[0].user_id, events[0].value, events[0].context) == ("7", 3.0, {"campaign": "x"})
    assert events[1].timestamp == 1700000000 - 3600
    assert [(r.source.line, r.reason, r.field) for r in rejected(records)] == [
        (2, "bad_json", None), (3, "bad_row", None), (4, "bad_timestamp", "timestamp")]


def test_events_parquet(tmp_path: Path) -> None:
    table = pa.table({
        "user_id": ["u1", "u2", "u3"], "item_id": ["a", "b", "c"], "event_type": ["view", "cart", "nope"],
        "timestamp": pa.array([datetime(2024, 1, 1), datetime(2024, 1, 2), datetime(2024, 1, 3)],
                              pa.timestamp("s")),
        "value": [None, 2.0, 1.0],
    })
    pq.write_table(table, tmp_path / "e.parquet")
    records = list(read_records("events-parquet", tmp_path / "e.parquet"))
    events = [r for r in records if isinstance(r, EventRecord)]
    assert [e.timestamp for e in events] == [datetime(2024, 1, d, tzinfo=UTC).timestamp() for d in (1, 2)]
    assert [(r.source.line, r.reason, r.field) for r in rejected(records)] == [(3, "bad_event_type", "event_type")]
    pq.write_table(table.drop_columns(["timestamp"]), tmp_path / "bad.parquet")
    with pytest.raises(DataError, match="timestamp"):
        read_records("events-parquet", tmp_path / "bad.parquet")
    with pytest.raises(DataError, match="Parquet"):
        read_records("events-parquet", write(tmp_path / "x.parquet", "not parquet"))


def test_items_csv_and_jsonl(tmp_path: Path) -> None:
    csv_text = (
        "item_id,title,description,category,brand,price,currency,available,color\n"
        "i1,Red mug,A mug,Home>Kitchen > Mugs,Acme,9.90,EUR,true,red\n"
        "i2,Tops,,Clothes > Tops/T-shirts,,,,0,\n"
        "i3,Bad price,,,,cheap,,,\n"
        "i4,Bad flag,,,,1,,maybe,\n"
    )
    records = list(read_records("items-csv", write(tmp_path / "items.csv", csv_text)))
    items = [r for r in records if isinstance(r, ItemRecord)]
    assert items[0].category == "Home > Kitchen > Mugs" and items[0].price == 9.9 and items[0].currency == "EUR"
    assert items[0].attributes == {"color": "red"} and items[0].available
    assert items[1].category == "Clothes > Tops/T-shirts" and items[1].price is None and not items[1].available
    assert [(r.source.line, r.reason, r.field) for r in rejected(records)] == [
        (4, "bad_value", "price"), (5, "bad_value", "available")]
    jsonl = json.dumps({"item_id": "j1", "title": "T", "category": ["A", "B"], "attributes": {"size": "M"},
                        "available": False, "price": 3})
    (item,) = list(read_records("items-jsonl", write(tmp_path / "items.jsonl", jsonl + "\n")))
    assert isinstance(item, ItemRecord)
    assert (item.category, item.attributes, item.available, item.price) == ("A > B", {"size": "M"}, False, 3.0)
