"""Cleaning rules, each with a planted case: streaming records (RecordCleaner) and Interactions."""

from __future__ import annotations

import numpy as np
import pytest

from shoprec.data.interactions import Interactions
from shoprec.data.records import Domain, EventRecord, ItemRecord, Note, Rejected, Source, UserRecord
from shoprec.errors import ConfigError
from shoprec.preprocess.clean import (
    CleaningConfig,
    NonProductMatcher,
    RecordCleaner,
    bot_users,
    choose_most_frequent,
    clean_interactions,
    duplicate_mask,
)
from shoprec.preprocess.report import CleaningReport
from shoprec.types import EventType

NOW = 1_700_000_000.0


def ev(user: str = "u", item: str = "i", etype: EventType = EventType.PURCHASE, ts: float = NOW - 100,
       value: float | None = None, price: float | None = None, line: int = 1) -> EventRecord:
    return EventRecord(user, item, etype, ts, value=value, context=None if price is None else {"price": price},
                       source=Source("f.csv", line))


def verdicts(records: list, config: CleaningConfig | None = None, batch_size: int = 2048) -> list[str | None]:
    """Per input record: None when kept, else the rejection reason (Notes from the cleaner are dropped)."""
    out = list(RecordCleaner(config, now=NOW, batch_size=batch_size)(records))
    kept = [r for r in out if not (isinstance(r, Note) and r.text.startswith("cleaning:"))]
    assert len(kept) == len(records)
    return [r.reason if isinstance(r, Rejected) else None for r in kept]


@pytest.mark.parametrize(("record", "reason", "field"), [
    (ev(user=""), "missing_user", "user_id"),
    (ev(user="  "), "missing_user", "user_id"),
    (ev(item=""), "missing_item", "item_id"),
    (ev(ts=float("nan")), "bad_timestamp", "timestamp"),
    (ev(ts=-5.0), "bad_timestamp", "timestamp"),
    (ev(ts=NOW + 2 * 86400), "future_timestamp", "timestamp"),
    (ev(ts=NOW * 1000), "future_timestamp", "timestamp"),
    (ev(item="POST"), "non_product_code", "item_id"),
    (ev(item=" BANK CHARGES"), "non_product_code", "item_id"),
    (ev(item="m"), "non_product_code", "item_id"),
    (ev(item="GIFT_0001_20"), "non_product_code", "item_id"),
    (ev(value=0), "non_positive_quantity", "value"),
    (ev(etype=EventType.CART, value=-2), "non_positive_quantity", "value"),
    (ev(value=2, price=0.0), "non_positive_price", "price"),
    (ev(etype=EventType.VIEW, price=-1.0), "non_positive_price", "price"),
])
def test_each_event_rule_rejects_its_planted_case(record: EventRecord, reason: str, field: str) -> None:
    out = list(RecordCleaner(now=NOW)([record]))
    assert len(out) == 1 and isinstance(out[0], Rejected)
    assert (out[0].reason, out[0].field, out[0].source) == (reason, field, Source("f.csv", 1))
    assert out[0].detail


def test_good_events_pass_and_exemptions_hold() -> None:
    records = [
        ev(value=3, price=2.5),
        ev(etype=EventType.RETURN, value=-3, price=2.5),  # returns: negative quantity is the source's way
        ev(etype=EventType.RETURN, value=-3, price=0.0),
        ev(etype=EventType.RATING, value=0),  # a rating of 0 is not a quantity
        ev(etype=EventType.VIEW),
        ev(item="85123A"), ev(item="DCGS0003"), ev(item="gift_card"),  # real products, not vouchers
        ev(item="b"), ev(item="post"), ev(item="POST2"),  # codes match exactly
        ev(ts=NOW + 3600),  # within the default tolerance of a day
    ]
    assert verdicts(records) == [None] * len(records)
    assert verdicts([ev(ts=NOW + 3600)], CleaningConfig(future_tolerance_seconds=0)) == ["future_timestamp"]


def test_first_failing_rule_wins_and_order_is_kept_across_batches() -> None:
    records = [ev(user="", item="POST", line=k) if k % 3 == 0 else ev(line=k) for k in range(10)]
    records.insert(4, Domain("game"))
    records.insert(7, UserRecord(""))
    out = list(RecordCleaner(now=NOW, batch_size=3)(records))
    assert isinstance(out[4], Domain)
    reasons = [getattr(r, "reason", None) for r in out]
    assert reasons.count("missing_user") == 5 and "non_product_code" not in reasons
    lines = [r.source.line for r in out if isinstance(r, EventRecord | Rejected) and r.source.file == "f.csv"]
    assert lines == list(range(10))


def test_configurable_non_product_codes() -> None:
    config = CleaningConfig(non_product_codes=("FEE",), non_product_pattern=r"(?i)x-\d+")
    assert verdicts([ev(item="FEE"), ev(item="X-12"), ev(item="POST"), ev(item="x-12b"), ev(item="fee")],
                    config) == ["non_product_code", "non_product_code", None, None, None]
    matcher = NonProductMatcher(CleaningConfig(non_product_pattern=None))
    assert matcher.many(np.array(["POST", "gift_0001_20", "1"], dtype=object)).tolist() == [True, False, False]


def test_items_normalised_first_title_kept_and_note() -> None:
    records = [
        ItemRecord("a", title=" Red   mug ", description="x\n y", price=0.0),
        ItemRecord("a", title="RED MUG", price=3.0),
        ItemRecord("a", title="Blue mug"),
        ItemRecord("a", title=""),
        ItemRecord("", title="no id"),
        ItemRecord("POST", title="postage"),
    ]
    out = list(RecordCleaner(now=NOW)(records))
    items = [r for r in out if isinstance(r, ItemRecord)]
    assert [i.title for i in items] == ["Red mug", "Red mug", "Red mug", ""]
    assert items[0].description == "x y" and items[0].price is None and items[1].price == 3.0
    assert [r.reason for r in out if isinstance(r, Rejected)] == ["missing_item", "non_product_item"]
    note = out[-1]
    assert isinstance(note, Note) and "1 item record" in note.text and "1 item price" in note.text


def test_choose_most_frequent_breaks_ties_by_first_seen() -> None:
    import pandas as pd

    votes = pd.DataFrame([("a", "x", "X", 2, 5), ("a", "y", "Y", 2, 1), ("a", "z", "Z", 1, 0), ("b", "", "", 9, 0),
                          ("b", "w", "W", 1, 3)], columns=["item", "key", "text", "count", "first"])
    assert choose_most_frequent(votes) == {"a": "Y", "b": "W"}


# ------------------------------------------------------------------------------ interactions
def _inter(rows: list[tuple[str, str, int, float]], etype: EventType = EventType.CLICK) -> Interactions:
    users, items, ts, value = zip(*rows, strict=True)
    return Interactions.from_ids(users, items, timestamp=ts, value=value,
                                 event_type=np.full(len(rows), etype.code))


def test_exact_duplicates_removed_first_kept() -> None:
    nan = float("nan")
    inter = _inter([("u", "a", 10, nan), ("u", "a", 10, nan), ("u", "a", 10, 2.0), ("u", "a", 11, nan),
                    ("v", "a", 10, nan), ("u", "a", 10, nan)])
    assert duplicate_mask(inter).tolist() == [False, True, False, False, False, True]
    report = CleaningReport()
    out = clean_interactions(inter, CleaningConfig(bot_max_events=None), report)
    assert len(out) == 4 and report.counts() == {"duplicate": 2}
    assert "user 'u' item 'a'" in report.rules["duplicate"].examples[0]
    assert out.users is inter.users  # id maps kept


def test_bot_users_sustained_rate() -> None:
    bot = [("bot", f"i{k}", 1000 + 10 * k, 1.0) for k in range(50)]  # 50 distinct times in 500 s
    basket = [("shop", f"i{k}", 5000, 1.0) for k in range(200)]  # one invoice: one time, 200 lines
    human = [("h", f"i{k}", 1000 + 600 * k, 1.0) for k in range(50)]  # one every 10 minutes
    inter = _inter(bot + basket + human)
    assert bot_users(inter, window_seconds=3600, max_events=20) == {0: 50}
    assert bot_users(inter, window_seconds=60, max_events=6) == {}  # 6 in any [t, t + 60)
    assert bot_users(inter, window_seconds=60, max_events=5) == {0: 6}
    report = CleaningReport()
    out = clean_interactions(inter, CleaningConfig(bot_max_events=20), report)
    assert set(out.users.externals(np.unique(out.user))) == {"shop", "h"}
    assert report.counts() == {"bot_user": 50}
    assert "'bot': 50 distinct event times" in report.rules["bot_user"].examples[0]


def test_bot_window_handles_huge_time_spans() -> None:
    inter = _inter([("a", "x", 0, 1.0), ("a", "y", 1, 1.0), ("b", "x", 9e15, 1.0), ("b", "y", 9e15 + 1, 1.0)])
    assert bot_users(inter, window_seconds=10, max_events=1) == {0: 2, 1: 2}


def test_kcore_through_clean_interactions() -> None:
    rows = [("u1", "a", 1, 1.0), ("u1", "b", 2, 1.0), ("u2", "a", 3, 1.0), ("u2", "b", 4, 1.0), ("u3", "c", 5, 1.0)]
    report = CleaningReport()
    out = clean_interactions(_inter(rows), CleaningConfig(kcore_users=2, kcore_items=2), report)
    assert len(out) == 4 and report.counts() == {"kcore": 1}


def test_config_validation() -> None:
    with pytest.raises(ConfigError, match="non_product_pattern"):
        CleaningConfig(non_product_pattern="(")
    with pytest.raises(ConfigError, match="quantity_event_types"):
        CleaningConfig(quantity_event_types=("purchase", "buy-now"))
    with pytest.raises(ConfigError, match="kcore_items"):
        CleaningConfig(kcore_items=-1)
    with pytest.raises(ConfigError, match="bot_max_events"):
        CleaningConfig(bot_max_events=0)
    with pytest.raises(ConfigError, match="bot_window"):
        CleaningConfig.from_dict({"bot_window": 5})
    assert CleaningConfig.from_dict({"non_product_codes": ["X"], "kcore_users": 5}).non_product_codes == ("X",)
