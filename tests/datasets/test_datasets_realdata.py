"""Real datasets (../shared/data): the counts stated in each SOURCE.md. Skipped when the data is absent."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from shoprec.data.records import EventRecord, Rejected
from shoprec.datasets import load, read_records
from shoprec.preprocess.clean import RecordCleaner
from shoprec.types import EventType

pytestmark = pytest.mark.realdata


def test_beauty(shared_data: Path) -> None:
    ds = load("s3rec", shared_data / "amazon-beauty" / "Beauty.txt")
    inter = ds.interactions
    assert (len(inter), inter.n_users, inter.n_items) == (198_502, 22_363, 12_101)
    assert ds.report.counts() == {} and ds.synthetic_timestamps and any("synthetic" in n for n in ds.report.notes)
    assert all(len(a) > 0 for a in ds.catalog.attribute_ids)  # every item has brand/category attribute ids
    seqs = inter.to_sequences()
    first = inter.users.index("1")
    assert inter.items.externals(seqs[first]) == ["1", "2", "3", "4", "5"]  # line 1: "1 1 2 3 4 5", in order


def test_movielens(shared_data: Path) -> None:
    ds = load("movielens-100k", shared_data / "ml-100k")
    inter = ds.interactions
    assert (len(inter), inter.n_users, inter.n_items) == (100_000, 943, 1_682)
    assert ds.report.counts() == {}
    assert (int(inter.timestamp.min()), int(inter.timestamp.max())) == (874_724_710, 893_286_638)
    assert set(np.unique(inter.value).tolist()) == {1.0, 2.0, 3.0, 4.0, 5.0}
    assert ds.fold_names == ["u1", "u2", "u3", "u4", "u5"]
    for train, test in ds.folds:
        assert len(train) == 80_000 and len(test) == 20_000 and train.items is inter.items
    assert ds.catalog.title[inter.items.index("1")] == "Toy Story (1995)"
    assert ds.user_attributes[inter.users.index("1")]["occupation"] == "technician"


def test_otto(shared_data: Path) -> None:
    ds = load("otto", shared_data / "otto-sample" / "train.jsonl")
    inter = ds.interactions
    assert (len(inter), inter.n_users, inter.n_items) == (862, 20, 510)
    assert ds.summary()["events_by_type"] == {"click": 800, "cart": 52, "purchase": 10}
    assert int(inter.timestamp.min()) == 1659304800 and int(inter.timestamp.max()) == 1661723997


def test_cdrib(shared_data: Path) -> None:
    ds = load("cdrib", shared_data / "cdrib-game-video")
    game, video = ds.domains["game"], ds.domains["video"]
    assert (len(game.train), len(video.train)) == (155_036, 156_091)
    assert len(np.unique(game.train.user)) == 24_799 and len(np.unique(game.train.item)) == 12_319
    assert len(np.unique(video.train.user)) == 19_240 and len(np.unique(video.train.item)) == 8_751
    cold = np.union1d(game.valid.user, game.test.user)
    assert len(cold) == 226 and len(np.union1d(video.valid.user, video.test.user)) == 217
    assert not np.isin(cold, game.train.user).any()  # cold-start in the target domain...
    assert np.isin(cold, video.train.user).all()  # ...with a history in the other one
    assert any("below 2179" in n for n in ds.report.notes)


def test_online_retail(shared_data: Path) -> None:
    ds = load("online-retail", shared_data / "online-retail" / "online_retail.csv.gz")
    inter, removed = ds.interactions, ds.report.counts()
    item_rejections = removed.get("non_product_item", 0) + removed.get("missing_item", 0)
    assert len(inter) + ds.report.total - item_rejections == 541_909  # every row kept or removed with a reason
    assert removed["missing_user"] == 135_080 and inter.n_users == 4_372
    assert 0 < removed["duplicate"] <= 5_268 and removed["non_product_code"] > 0
    assert not {"POST", "DOT", "M", "BANK CHARGES", "AMAZONFEE"} & set(inter.items.to_list())
    returns = inter.event_type == EventType.RETURN.code
    assert 8_000 < returns.sum() <= 9_288 and (inter.value[returns] < 0).all()
    assert (inter.value[~returns] > 0).all()
    start, end = (datetime(2010, 12, 1, tzinfo=UTC).timestamp(), datetime(2011, 12, 10, tzinfo=UTC).timestamp())
    assert start <= inter.timestamp.min() and inter.timestamp.max() < end
    assert np.isfinite(ds.catalog.price).mean() > 0.99 and all(ds.catalog.title)


@pytest.mark.slow
def test_online_retail_record_path_reads_every_row(shared_data: Path) -> None:
    path = shared_data / "online-retail" / "online_retail.csv.gz"
    events = rejected_events = 0
    for rec in RecordCleaner()(read_records("online-retail", path)):
        if isinstance(rec, EventRecord):
            events += 1
        elif isinstance(rec, Rejected) and rec.reason not in ("non_product_item", "missing_item"):
            rejected_events += 1
    assert events + rejected_events == 541_909
    fast = load("online-retail", path)
    assert events == len(fast.interactions) + fast.report.counts()["duplicate"]
