"""Public-dataset readers (record stream): Online Retail, MovieLens 100K, S3-Rec, OTTO, CDRIB."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from dshelpers import make_cdrib, make_movielens, make_otto, make_s3rec, rejected

from shoprec.data.records import Domain, EventRecord, ItemRecord, Note, UserRecord
from shoprec.datasets import read_records
from shoprec.datasets._common import SYNTHETIC_EPOCH, SYNTHETIC_STEP
from shoprec.errors import DataError
from shoprec.types import EventType


def _events(records: list) -> list[EventRecord]:
    return [r for r in records if isinstance(r, EventRecord)]


# ---------------------------------------------------------------------------- online retail
def test_online_retail_events_users_items(retail_file: Path) -> None:
    records = list(read_records("online-retail", retail_file))
    events = _events(records)
    assert len(events) == 12 and not rejected(records)
    first = events[0]
    assert (first.user_id, first.item_id, first.event_type, first.value) == ("17850", "85123A", EventType.PURCHASE, 6)
    assert first.session_id == "536365" and first.context == {"price": 2.55}
    assert first.timestamp == datetime(2010, 12, 1, 8, 26, tzinfo=UTC).timestamp()
    assert events[4].user_id == ""  # no CustomerID: left to the missing_user cleaning rule
    ret = events[5]
    assert (ret.event_type, ret.value, ret.session_id) == (EventType.RETURN, -1, "C536379")
    assert events[11].timestamp == datetime(2010, 12, 1, 10, 26, tzinfo=UTC).timestamp()  # M/D/YYYY H:MM
    users = [r for r in records if isinstance(r, UserRecord)]
    assert [(u.user_id, u.attributes["country"]) for u in users] == [
        ("17850", "United Kingdom"), ("13047", "France"), ("12583", "France"), ("14000", "United Kingdom")]
    items = {r.item_id: r for r in records if isinstance(r, ItemRecord)}
    # 85123A: 2 of 3 descriptions are the same text up to case/whitespace -> that one wins, first spelling kept
    assert items["85123A"].title == "WHITE HANGING HEART T-LIGHT HOLDER"
    assert items["71053"].price == 3.39 and items["71053"].currency == "GBP"  # the 0 price never wins
    assert list(items) == ["85123A", "71053", "22633", "POST", "gift_0001_20", "21730"]
    assert sum(isinstance(r, Note) for r in records) >= 1


def test_online_retail_bad_lines_name_line_and_field(retail_bad_file: Path) -> None:
    records = list(read_records("online-retail", retail_bad_file))
    assert len(_events(records)) == 12
    assert [(r.source.line, r.reason, r.field) for r in rejected(records)] == [
        (14, "bad_value", "Quantity"), (15, "bad_timestamp", "InvoiceDate"), (16, "bad_row", None),
        (17, "bad_value", "UnitPrice")]
    assert all(r.source.file == "retail_bad.csv" for r in rejected(records))


def test_online_retail_wrong_header(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("user_id,item_id\n1,2\n")
    with pytest.raises(DataError, match=r"InvoiceNo|invoiceno"):
        read_records("online-retail", path)


# -------------------------------------------------------------------------------- movielens
def test_movielens_items_users_ratings(tmp_path: Path) -> None:
    records = list(read_records("movielens-100k", make_movielens(tmp_path / "ml")))
    items = [r for r in records if isinstance(r, ItemRecord)]
    assert [i.item_id for i in items] == ["1", "2", "3"]
    assert items[0].category == "Animation|Children's|Comedy" and items[0].attributes["year"] == 1995
    assert items[1].title == "Café au lait (1993)"  # decoded as Latin-1
    assert "year" not in items[2].attributes and items[2].category == "unknown"
    users = [r for r in records if isinstance(r, UserRecord)]
    assert users[1].attributes == {"age": 53, "gender": "F", "occupation": "other", "zip": "94043"}
    ratings = _events(records)
    assert len(ratings) == 8 and all(r.event_type == EventType.RATING for r in ratings)
    assert (ratings[0].user_id, ratings[0].item_id, ratings[0].value, ratings[0].timestamp) == ("1", "1", 5, 874965758)
    # records come items, users, then events: id maps follow the files' order
    kinds = [type(r).__name__ for r in records]
    assert kinds.index("EventRecord") > max(i for i, k in enumerate(kinds) if k != "EventRecord")


def test_movielens_bad_lines(tmp_path: Path) -> None:
    records = list(read_records("movielens-100k", make_movielens(tmp_path / "ml", bad=True)))
    assert [(r.source.file, r.source.line, r.reason, r.field) for r in rejected(records)] == [
        ("u.data", 9, "bad_value", "rating"), ("u.data", 10, "bad_row", None),
        ("u.data", 11, "bad_timestamp", "timestamp")]
    with pytest.raises(DataError, match=r"u\.data"):
        read_records("movielens-100k", tmp_path)


# ------------------------------------------------------------------------------------ s3rec
def test_s3rec_order_synthetic_times_and_attributes(tmp_path: Path) -> None:
    records = list(read_records("s3rec", make_s3rec(tmp_path / "s")))
    events = _events(records)
    assert [(e.user_id, e.item_id) for e in events[:4]] == [("1", "1"), ("1", "2"), ("1", "3"), ("1", "4")]
    assert all(e.event_type == EventType.PURCHASE for e in events)
    times = [e.timestamp for e in events if e.user_id == "2"]
    assert times == [SYNTHETIC_EPOCH + k * SYNTHETIC_STEP for k in range(3)]
    notes = [r.text for r in records if isinstance(r, Note)]
    assert any("synthetic" in n for n in notes)
    attrs = {r.item_id: r.attributes["attribute_ids"] for r in records if isinstance(r, ItemRecord)}
    assert attrs == {"1": [1, 2], "2": [3], "7": [1], "8": [4]}


def test_s3rec_bad_line_and_no_attribute_file(tmp_path: Path) -> None:
    records = list(read_records("s3rec", make_s3rec(tmp_path / "s", bad=True, attributes=False)))
    assert [(r.source.line, r.reason, r.field) for r in rejected(records)] == [(2, "missing_item", "items")]
    assert not any(isinstance(r, ItemRecord) for r in records)


# ------------------------------------------------------------------------------------- otto
def test_otto_types_milliseconds_sessions(tmp_path: Path) -> None:
    records = list(read_records("otto", make_otto(tmp_path / "o", bad=True)))
    events = _events(records)
    assert [e.event_type for e in events] == [EventType.CLICK, EventType.CART, EventType.PURCHASE, EventType.CLICK]
    assert events[0].timestamp == pytest.approx(1659304800.025)
    assert {(e.user_id, e.session_id) for e in events} == {("0", "0"), ("1", "1")}
    assert [(r.source.line, r.reason, r.field) for r in rejected(records)] == [
        (2, "bad_timestamp", "events[1].ts"), (2, "bad_event_type", "events[2].type"), (3, "bad_json", None),
        (4, "bad_value", "events")]


# ------------------------------------------------------------------------------------ cdrib
def test_cdrib_domains_shared_users_and_splits(tmp_path: Path) -> None:
    records = list(read_records("cdrib", make_cdrib(tmp_path / "c")))
    domains = [(i, r.name) for i, r in enumerate(records) if isinstance(r, Domain)]
    assert [name for _, name in domains] == ["game", "video"]
    game = _events(records[domains[0][0]:domains[1][0]])
    video = _events(records[domains[1][0]:])
    assert {e.user_id for e in game} == {"0", "1", "2", "game:3", "game:4"}
    assert {e.user_id for e in video} == {"0", "1", "2", "video:3", "video:4"}
    assert all(e.item_id.startswith("game:") for e in game)
    assert [e.context["split"] for e in game if e.user_id == "2"] == ["valid", "test"]
    user4 = [e.timestamp for e in game if e.user_id == "game:4"]
    assert user4 == [SYNTHETIC_EPOCH, SYNTHETIC_EPOCH + SYNTHETIC_STEP]
    note = next(r.text for r in records if isinstance(r, Note))
    assert "below 3" in note and "synthetic" in note


def test_cdrib_bad_lines_and_layout(tmp_path: Path) -> None:
    records = list(read_records("cdrib", make_cdrib(tmp_path / "c", bad=True)))
    assert [(r.source.file, r.source.line, r.reason, r.field) for r in rejected(records)] == [
        ("game_video/train.txt", 7, "bad_value", "user"), ("game_video/train.txt", 8, "bad_row", None)]
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no CDRIB domain folder"):
        list(read_records("cdrib", tmp_path / "empty"))
