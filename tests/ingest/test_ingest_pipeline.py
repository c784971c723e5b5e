"""The ingest pipeline: counts, idempotency, one transaction per batch, streaming, domains, checks."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from shoprec.data.records import Domain, EventRecord, ItemRecord, Note, Record, Rejected, Source, UserRecord
from shoprec.errors import ConfigError, DataError, StorageError
from shoprec.ingest.pipeline import ingest
from shoprec.storage import PlatformRepo, find_platform, load_interactions
from shoprec.storage.repo import PlatformRepo as Repo
from shoprec.types import EventType

T0 = 1_600_000_000.0


def events_file(n: int, name: str = "events.csv") -> list[Record]:
    """n rows: row k is a purchase of item k % 7 by user k % 5 (each with its item record)."""
    out: list[Record] = [Note("timestamps are real")]
    for k in range(n):
        src = Source(name, k + 2)
        out.append(ItemRecord(f"i{k % 7}", title=f"Item {k % 7}", price=1.0 + k % 7, source=src))
        out.append(EventRecord(f"u{k % 5}", f"i{k % 7}", EventType.PURCHASE, T0 + k, value=1.0,
                               session_id=f"s{k // 3}", source=src))
    return out


def stats(engine: sa.Engine, platform: str) -> dict[str, Any]:
    with engine.connect() as conn:
        key = find_platform(conn, platform)
        assert key is not None
        return PlatformRepo(conn, key).stats()


def test_import_counts_and_platform_creation(engine: sa.Engine, platform: str) -> None:
    bad: list[Record] = [EventRecord("", "i1", EventType.VIEW, T0, source=Source("events.csv", 100)),
           Rejected(Source("events.csv", 101), "bad_row", None, "expected 6 fields, got 2")]
    report = ingest(engine, platform, [*events_file(40), *bad], batch_size=16, source="events.csv", fmt="events-csv")
    assert (report.read, report.accepted) == (42, 40)
    assert report.rejected == {"bad_row": 1, "missing_user": 1}
    assert report.read == report.accepted + report.rejected_total
    assert stats(engine, platform) == {"users": 5, "items": 7, "events": 40, "events_by_type": {"purchase": 40}}
    out = report.to_dict()
    assert out["platform"] == platform and out["stored"]["events"] == 40
    assert out["notes"] == ["timestamps are real"]
    assert out["examples"]["bad_row"] == ["events.csv:101: bad_row: expected 6 fields, got 2"]


def test_importing_twice_adds_nothing(engine: sa.Engine, platform: str) -> None:
    first = ingest(engine, platform, events_file(30), batch_size=8)
    before = stats(engine, platform)
    again = ingest(engine, platform, events_file(30), batch_size=7)
    assert first.accepted == 30
    assert again.accepted == 0 and again.rejected == {"duplicate": 30}
    assert again.to_dict()["stored"]["events"] == 0
    assert again.ok  # everything is already there: not a failure
    assert stats(engine, platform) == before


def test_exact_duplicate_lines_are_rejected_as_duplicate(engine: sa.Engine, platform: str) -> None:
    e = EventRecord("u", "i", EventType.CART, T0, value=2.0, session_id="s1")
    rows = [EventRecord(e.user_id, e.item_id, e.event_type, e.timestamp, e.value, e.session_id,
                        source=Source("f", line)) for line in (2, 3, 4)]
    rows.append(EventRecord("u", "i", EventType.CART, T0, value=3.0, session_id="s1", source=Source("f", 5)))
    report = ingest(engine, platform, rows, batch_size=2)
    assert report.accepted == 2 and report.rejected == {"duplicate": 2}
    assert report.cleaning.rules["duplicate"].examples[0].startswith("f:3: duplicate")
    assert stats(engine, platform)["events"] == 2


def test_a_failed_batch_is_not_written_at_all(engine: sa.Engine, platform: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    original = Repo.add_events
    calls = {"n": 0}

    def failing(self: Repo, events: Any, now: Any = None) -> list[int]:
        calls["n"] += 1
        result = original(self, events, now)  # the batch's rows are written, then the database fails
        if calls["n"] == 2:
            raise sa.exc.OperationalError("INSERT", {}, Exception("disk full"))
        return result

    monkeypatch.setattr(Repo, "add_events", failing)
    records = events_file(20)
    records.append(ItemRecord("late", title="only in batch 2", source=Source("events.csv", 22)))
    with pytest.raises(StorageError, match="disk full"):
        ingest(engine, platform, records, batch_size=10)
    after_failure = stats(engine, platform)
    assert after_failure["events"] == 10  # batch 1 committed, batch 2 rolled back whole
    with engine.connect() as conn:
        repo = PlatformRepo(conn, find_platform(conn, platform))  # type: ignore[arg-type]
        assert repo.get_item("late") is None
    monkeypatch.setattr(Repo, "add_events", original)
    report = ingest(engine, platform, records, batch_size=10)  # keys cached in the failed batch are not reused
    assert report.accepted == 11 and report.rejected == {"duplicate": 10}  # 10 events + the item row
    assert stats(engine, platform)["events"] == 20


def test_streams_and_commits_batch_by_batch(sqlite_engine: sa.Engine, platform: str) -> None:
    """Rows are pulled lazily: when row k + 1 is asked for, the full batch ending at row k is committed
    (the pipeline looks one row ahead to know a row is complete)."""
    batch = 25
    seen: list[tuple[int, int]] = []

    def generate() -> Iterator[Record]:
        for k in range(100):
            if k % batch == 1 and k > 1:
                with sqlite_engine.connect() as conn:
                    key = find_platform(conn, platform)
                    seen.append((k, PlatformRepo(conn, key).count_events() if key else 0))
            yield EventRecord(f"u{k}", "i", EventType.VIEW, T0 + k, source=Source("s", k + 1))

    ingest(sqlite_engine, platform, generate(), batch_size=batch, cleaning=False)
    assert seen == [(26, 25), (51, 50), (76, 75)]


def test_domain_records_go_to_their_own_platforms(engine: sa.Engine, platform: str) -> None:
    records: list[Record] = [
        Domain("game"),
        EventRecord("shared", "g1", EventType.PURCHASE, T0, source=Source("game.txt", 1)),
        Domain("video"),
        EventRecord("shared", "v1", EventType.PURCHASE, T0, source=Source("video.txt", 1)),
        EventRecord("other", "v2", EventType.PURCHASE, T0, source=Source("video.txt", 2)),
    ]
    report = ingest(engine, platform, records)
    assert report.platforms == [f"{platform}-game", f"{platform}-video"]
    assert stats(engine, f"{platform}-game")["events"] == 1
    assert stats(engine, f"{platform}-video")["users"] == 2
    assert report.to_dict()["platforms"][f"{platform}-video"]["events"] == 2


def test_snapshot_numbers_ids_in_order_of_first_appearance(engine: sa.Engine, platform: str) -> None:
    records: list[Record] = [
        UserRecord("zed", {"country": "UK"}, source=Source("f", 1)),
        EventRecord("zed", "pan", EventType.VIEW, T0, source=Source("f", 1)),
        EventRecord("amy", "mug", EventType.VIEW, T0 + 1, source=Source("f", 2)),
        ItemRecord("lamp", title="Lamp", source=Source("f", 3)),
        EventRecord("amy", "pan", EventType.CART, T0 + 2, source=Source("f", 4)),
        ItemRecord("mug", title="Mug", source=Source("f", 5)),
        UserRecord("bob", source=Source("f", 6)),
    ]
    ingest(engine, platform, records)
    inter, catalog = load_interactions(engine, platform)
    assert inter.items.to_list() == ["pan", "mug", "lamp"]
    assert inter.users.to_list() == ["zed", "amy", "bob"]
    assert catalog.title == ["", "Mug", "Lamp"]


def test_pipeline_checks_without_cleaning(sqlite_engine: sa.Engine, platform: str) -> None:
    src = [Source("x.jsonl", k) for k in range(1, 10)]
    records: list[Record] = [
        EventRecord("  u1 ", " i1", "Purchase", T0, source=src[0]),  # type: ignore[arg-type]  # ids stripped
        EventRecord("u" * 257, "i1", EventType.VIEW, T0, source=src[1]),
        EventRecord("u2", "i1", "teleport", T0, source=src[2]),  # type: ignore[arg-type]
        EventRecord("u2", "i1", EventType.VIEW, float("inf"), source=src[3]),
        EventRecord("u2", "i1", EventType.RATING, T0, value="five", source=src[4]),  # type: ignore[arg-type]
        ItemRecord("i2", price=float("nan"), source=src[5]),
        ItemRecord("i3", currency="EUROS-LONG", source=src[6]),
        UserRecord("", source=src[7]),
        EventRecord("u3", "i1", EventType.VIEW, T0, session_id="  ", source=src[8]),  # empty session: none
    ]
    report = ingest(sqlite_engine, platform, records, cleaning=False)
    assert report.rejected == {"id_too_long": 1, "bad_event_type": 1, "bad_timestamp": 1, "bad_value": 1,
                               "bad_price": 1, "bad_currency": 1, "missing_user": 1}
    assert report.accepted == 2
    assert report.cleaning.rules["id_too_long"].examples == ["x.jsonl:2 field=user_id: id_too_long: "
                                                             "257 characters (at most 256)"]
    assert "unknown event type 'teleport'" in report.cleaning.rules["bad_event_type"].examples[0]
    with sqlite_engine.connect() as conn:
        repo = PlatformRepo(conn, find_platform(conn, platform))  # type: ignore[arg-type]
        assert repo.user_history("u1") == [("i1", "purchase", T0)]
        assert repo.get_user("u3") is not None


def test_cleaning_rules_run_by_default(sqlite_engine: sa.Engine, platform: str) -> None:
    future = 4_000_000_000.0
    records: list[Record] = [
        EventRecord("u1", "POST", EventType.PURCHASE, T0, value=1.0, source=Source("f", 1)),
        EventRecord("u1", "i1", EventType.PURCHASE, future, value=1.0, source=Source("f", 2)),
        EventRecord("u1", "i1", EventType.PURCHASE, T0, value=1.0, source=Source("f", 3)),
    ]
    report = ingest(sqlite_engine, platform, records, now=T0 + 10)
    assert report.rejected == {"non_product_code": 1, "future_timestamp": 1}
    assert report.accepted == 1
    unclean = ingest(sqlite_engine, platform + "-raw", records, cleaning=False, now=T0 + 10)
    assert unclean.accepted == 3


def test_derived_records_are_stored_but_not_counted(sqlite_engine: sa.Engine, platform: str) -> None:
    records: list[Record] = [
        EventRecord("u1", "i1", EventType.PURCHASE, T0, value=1.0, source=Source("f", 2)),
        ItemRecord("i1", title="built from many lines"),
        ItemRecord("POST", title="postage"),  # rejected by the cleaning rules: a note says so
    ]
    report = ingest(sqlite_engine, platform, records)
    assert (report.read, report.accepted, report.rejected) == (1, 1, {})
    assert report.to_dict()["stored"]["items"] == 1
    assert any(n.startswith("records derived") and n.endswith(" 1") for n in report.notes)
    _, catalog = load_interactions(sqlite_engine, platform)
    assert catalog.title == ["built from many lines"]


def test_records_citing_an_earlier_line_are_not_counted_again(sqlite_engine: sa.Engine, platform: str) -> None:
    """Online Retail yields its items after the last line, each citing the line where it first appeared."""
    records: list[Record] = [
        EventRecord("u1", "mug", EventType.PURCHASE, T0, value=1.0, source=Source("f", 2)),
        EventRecord("u2", "pan", EventType.PURCHASE, T0, value=1.0, source=Source("f", 3)),
        ItemRecord("mug", title="Mug", source=Source("f", 2)),
        ItemRecord("pan", title="Pan", source=Source("f", 3)),
        ItemRecord("lamp", title="Lamp", source=Source("other", 2)),  # another file: a row of its own
    ]
    report = ingest(sqlite_engine, platform, records)
    assert (report.read, report.accepted) == (3, 3)
    assert report.to_dict()["stored"]["items"] == 3
    assert load_interactions(sqlite_engine, platform)[1].title == ["Mug", "Pan", "Lamp"]


def test_progress_is_reported_per_batch(sqlite_engine: sa.Engine, platform: str) -> None:
    calls: list[int] = []
    ingest(sqlite_engine, platform, events_file(50), batch_size=20, progress=calls.append)
    assert calls == sorted(calls) and calls[-1] == 50 and len(calls) >= 3


def test_nothing_importable_is_not_ok(sqlite_engine: sa.Engine, platform: str) -> None:
    empty = ingest(sqlite_engine, platform, [])
    assert not empty.ok and empty.read == 0
    rejected = ingest(sqlite_engine, platform, [EventRecord("", "i", EventType.VIEW, T0, source=Source("f", 1))])
    assert not rejected.ok and rejected.rejected == {"missing_user": 1}


def test_bad_arguments(sqlite_engine: sa.Engine) -> None:
    with pytest.raises(ConfigError, match="batch_size"):
        ingest(sqlite_engine, "p", [], batch_size=0)
    with pytest.raises(DataError, match="platform name"):
        ingest(sqlite_engine, " bad ", events_file(1))


def test_a_reader_error_midway_keeps_earlier_batches(sqlite_engine: sa.Engine, platform: str) -> None:
    def broken() -> Iterator[Record]:
        yield from events_file(10)
        raise DataError("events.csv: file ends inside a quoted field")

    with pytest.raises(DataError, match=r"quoted field \(import stopped after 10 rows; the 10 accepted rows"):
        ingest(sqlite_engine, platform, broken(), batch_size=4, cleaning=False)
    assert stats(sqlite_engine, platform)["events"] == 10


def test_a_value_the_database_cannot_take_is_a_storage_error(sqlite_engine: sa.Engine, platform: str) -> None:
    records: list[Record] = [EventRecord("u", "i", EventType.VIEW, T0, context={"tags": {"a", "b"}},
                                         source=Source("f", 1))]  # a set is not JSON
    with pytest.raises(StorageError, match="not JSON serializable"):
        ingest(sqlite_engine, platform, records)
