"""`load`: the in-memory Dataset, and the fast loaders give exactly what the record path gives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from dshelpers import NOW, make_cdrib, make_movielens, make_otto, make_s3rec

from shoprec.data.records import EventRecord, ItemRecord
from shoprec.datasets import Dataset, load, load_records
from shoprec.errors import ConfigError, DataError
from shoprec.preprocess.clean import CleaningConfig
from shoprec.types import EventType


def assert_same(a: Dataset, b: Dataset) -> None:
    """Two datasets are identical: events, id maps, catalog, user attributes, report, domains."""
    for col in ("user", "item", "weight", "value", "timestamp", "event_type"):
        assert np.array_equal(getattr(a.interactions, col), getattr(b.interactions, col), equal_nan=True), col
    assert a.interactions.users == b.interactions.users and a.interactions.items == b.interactions.items
    ca, cb = a.catalog, b.catalog
    assert (ca.title, ca.description, ca.category, ca.brand, ca.attributes) == (
        cb.title, cb.description, cb.category, cb.brand, cb.attributes)
    assert np.array_equal(ca.price, cb.price, equal_nan=True) and np.array_equal(ca.available, cb.available)
    assert all(np.array_equal(x, y) for x, y in zip(ca.attribute_ids, cb.attribute_ids, strict=True))
    assert a.user_attributes == b.user_attributes
    assert a.report.counts() == b.report.counts() and a.report.notes == b.report.notes
    assert list(a.domains) == list(b.domains)
    for name in a.domains:
        for part in ("train", "valid", "test"):
            pa, pb = getattr(a.domains[name], part), getattr(b.domains[name], part)
            assert np.array_equal(pa.user, pb.user) and np.array_equal(pa.item, pb.item)


def _fixtures(tmp_path: Path, retail_file: Path, retail_bad_file: Path) -> list[tuple[str, Path]]:
    return [
        ("online-retail", retail_file), ("online-retail", retail_bad_file),
        ("movielens-100k", make_movielens(tmp_path / "ml")),
        ("movielens-100k", make_movielens(tmp_path / "mlb", bad=True)),
        ("s3rec", make_s3rec(tmp_path / "s")), ("s3rec", make_s3rec(tmp_path / "sb", bad=True)),
        ("cdrib", make_cdrib(tmp_path / "c")), ("cdrib", make_cdrib(tmp_path / "cb", bad=True)),
        ("otto", make_otto(tmp_path / "o", bad=True)),
    ]


def test_fast_loaders_equal_record_path(tmp_path: Path, retail_file: Path, retail_bad_file: Path) -> None:
    strict = CleaningConfig(kcore_users=2, bot_max_events=1, bot_window_seconds=3600, future_tolerance_seconds=0,
                            non_product_codes=("71053", "5"), non_product_pattern=r"game:\d")
    triggered: set[str] = set()
    for fmt, path in _fixtures(tmp_path, retail_file, retail_bad_file):
        for config in (None, strict):
            for now in (NOW, 1e9):  # 1e9 (2001): retail and ratings lie in the future
                fast = load(fmt, path, now=now, cleaning=config)
                assert_same(fast, load(fmt, path, now=now, cleaning=config, fast=False))
                triggered |= set(fast.report.counts())
    assert {"bot_user", "kcore", "future_timestamp", "non_product_code", "duplicate", "missing_user",
            "bad_value", "bad_row", "bad_timestamp", "missing_item"} <= triggered


def test_online_retail_cleaning(retail_file: Path) -> None:
    ds = load("online-retail", retail_file, now=NOW)
    assert ds.report.counts() == {"duplicate": 1, "missing_user": 1, "non_positive_price": 1,
                                  "non_positive_quantity": 1, "non_product_code": 2, "non_product_item": 2}
    inter = ds.interactions
    assert len(inter) == 6
    returns = inter.event_type == EventType.RETURN.code
    assert returns.sum() == 1 and inter.value[returns][0] == -1
    assert "POST" not in inter.items and "gift_0001_20" not in inter.items
    idx = inter.items.index("85123A")
    assert ds.catalog.title[idx] == "WHITE HANGING HEART T-LIGHT HOLDER"
    assert ds.catalog.price[idx] == pytest.approx(2.55)
    assert ds.user_attributes[inter.users.index("13047")] == {"country": "France"}
    example = ds.report.rules["missing_user"].examples[0]
    assert example.startswith("retail.csv.gz:6 field=user_id")


def test_movielens_folds_share_id_maps(tmp_path: Path) -> None:
    ds = load("movielens-100k", make_movielens(tmp_path / "ml"), now=NOW)
    assert len(ds.interactions) == 8 and ds.fold_names == ["u1", "u2"]
    assert ds.interactions.users.to_list() == ["1", "2", "3"] and ds.interactions.items.to_list() == ["1", "2", "3"]
    for train, test in ds.folds:
        assert train.users is ds.interactions.users and test.items is ds.interactions.items
        assert len(train) + len(test) == 8
        assert np.isfinite(train.value).all() and set(np.unique(test.value)) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    train, test = ds.folds[0]
    assert (ds.interactions.users.external(int(test.user[0])), test.value[0]) == ("1", 2.0)
    assert ds.catalog.attributes[1]["genres"] == ["Comedy"]


def test_cdrib_domain_splits(tmp_path: Path) -> None:
    ds = load("cdrib", make_cdrib(tmp_path / "c"), now=NOW)
    assert list(ds.domains) == ["game", "video"] and ds.synthetic_timestamps
    game = ds.domains["game"]
    assert (len(game.train), len(game.valid), len(game.test)) == (6, 1, 1)
    users = ds.interactions.users
    assert users.external(int(game.test.user[0])) == "2"
    # the shared user "0" is one row of the map for both domains; domain-only users stay apart
    assert "0" in users and "game:3" in users and "video:3" in users and "3" not in users
    assert game.train.users is ds.interactions.users


def test_load_errors_and_cleaning_dict(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="unknown format"):
        load("nope", tmp_path)
    with pytest.raises(DataError, match="not found"):
        load("s3rec", tmp_path / "missing.txt")
    with pytest.raises(ConfigError, match="kcore_user"):
        load("s3rec", make_s3rec(tmp_path / "s"), cleaning={"kcore_user": 2})
    ds = load("s3rec", make_s3rec(tmp_path / "s2"), cleaning={"kcore_users": 2, "kcore_items": 2})
    # sequences 1: 1 2 3 4 / 2: 5 1 6 / 3: 2 2 7 -> iterating leaves user 3 with item 2 twice; maps compacted
    assert ds.interactions.users.to_list() == ["3"] and ds.interactions.items.to_list() == ["2"]
    assert len(ds.interactions) == 2 and len(ds.catalog) == 1 and len(ds.user_attributes) == 1
    assert ds.catalog.attribute_ids[0].tolist() == [3]
    assert ds.report.counts()["kcore"] == 8


def test_load_records_and_future_timestamps() -> None:
    records = [
        ItemRecord("a", title="  A   thing "), ItemRecord("a", title="a THING"),
        EventRecord("u", "a", EventType.VIEW, NOW - 10),
        EventRecord("u", "b", EventType.VIEW, NOW + 10 * 86400),
        EventRecord("v", "a", EventType.RATING, NOW - 5, value=4),
    ]
    ds = load_records(records, now=NOW)
    assert len(ds.interactions) == 2 and ds.report.counts() == {"future_timestamp": 1}
    assert ds.catalog.title[0] == "A thing"
    assert ds.summary()["events_by_type"] == {"view": 1, "rating": 1}
