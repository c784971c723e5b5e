"""Splits: no leakage, every event in exactly one part, time order respected, documented edge cases."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shoprec.data import IdMap, Interactions
from shoprec.data.splits import kfold, leave_one_out, temporal, to_timestamp
from shoprec.errors import ConfigError, DataError


def make(users: list[int], items: list[int], times: list[int]) -> Interactions:
    n_users = max(users, default=0) + 1
    n_items = max(items, default=0) + 1
    return Interactions(user=np.array(users, dtype=np.int32), item=np.array(items, dtype=np.int32),
                        users=IdMap(f"u{i}" for i in range(n_users)), items=IdMap(f"i{i}" for i in range(n_items)),
                        timestamp=np.array(times, dtype=np.int64), value=np.arange(len(users), dtype=np.float32))


def row_ids(part: Interactions) -> list[int]:
    """Original row positions, recovered from `value` (the tests store the row number there)."""
    return part.value.astype(int).tolist()


events = st.lists(st.tuples(st.integers(0, 5), st.integers(0, 7), st.integers(0, 6)), min_size=1, max_size=60)


@given(events)
@settings(max_examples=150, deadline=None)
def test_leave_one_out_partitions_events_without_leakage(rows):
    data = make(*map(list, zip(*rows, strict=True)))
    split = leave_one_out(data)
    assert split.valid is not None
    ids = row_ids(split.train) + row_ids(split.valid) + row_ids(split.test)
    assert sorted(ids) == list(range(len(data)))  # every event in exactly one part
    for part in (split.train, split.valid, split.test):
        assert part.users is data.users and part.items is data.items
    n_events = np.bincount(data.user, minlength=data.n_users)
    for u in range(data.n_users):
        tr = split.train.user == u
        va = split.valid.user == u
        te = split.test.user == u
        assert te.sum() == (1 if n_events[u] >= 2 else 0)
        assert va.sum() == (1 if n_events[u] >= 3 else 0)
        # time order: the test event is the user's last (ties broken by file position), valid second to last
        train_pos = [(t, r) for t, r in zip(split.train.timestamp[tr], row_ids(split.train.subset(tr)), strict=True)]
        if te.any():
            test_pos = (split.test.timestamp[te][0], row_ids(split.test.subset(te))[0])
            assert all(p < test_pos for p in train_pos)
            if va.any():
                valid_pos = (split.valid.timestamp[va][0], row_ids(split.valid.subset(va))[0])
                assert all(p < valid_pos for p in train_pos) and valid_pos < test_pos


def test_leave_one_out_small_users():
    # u0: 3 events -> train/valid/test; u1: 2 events -> train + test; u2: 1 event -> train only
    data = make([0, 0, 0, 1, 1, 2], [0, 1, 2, 3, 4, 5], [1, 2, 3, 1, 2, 1])
    split = leave_one_out(data)
    assert split.valid is not None
    assert split.test.item.tolist() == [2, 4]
    assert split.valid.item.tolist() == [1]
    assert sorted(split.train.item.tolist()) == [0, 3, 5]


def test_leave_one_out_without_validation_and_same_timestamps_keep_file_order():
    data = make([0, 0, 0], [7, 3, 5], [10, 10, 10])
    split = leave_one_out(data, validation=False)
    assert split.valid is None
    assert split.test.item.tolist() == [5]
    assert split.train.item.tolist() == [7, 3]


@given(events, st.integers(0, 7))
@settings(max_examples=150, deadline=None)
def test_temporal_split_partitions_at_the_cutoff(rows, cut):
    data = make(*map(list, zip(*rows, strict=True)))
    if not (data.timestamp < cut).any() or not (data.timestamp >= cut).any():
        with pytest.raises(DataError):
            temporal(data, cut)
        return
    split = temporal(data, cut)
    assert split.valid is None
    assert sorted(row_ids(split.train) + row_ids(split.test)) == list(range(len(data)))
    assert (split.train.timestamp < cut).all() and (split.test.timestamp >= cut).all()


def test_temporal_validation_window_and_dates():
    day = 86400
    start = to_timestamp("2011-11-01")
    data = make([0, 0, 1, 1], [0, 1, 2, 3], [start - 10 * day, start - day, start - 3 * day, start + day])
    split = temporal(data, "2011-11-01", valid_from="2011-10-30")
    assert split.valid is not None
    assert split.train.item.tolist() == [0, 2]
    assert split.valid.item.tolist() == [1]
    assert split.test.item.tolist() == [3]
    with pytest.raises(ConfigError, match="after the cut-off"):
        temporal(data, "2011-11-01", valid_from="2011-12-01")


def test_to_timestamp_accepts_iso_dates_and_numbers_and_rejects_garbage():
    assert to_timestamp("1970-01-02") == 86400
    assert to_timestamp("86400") == 86400
    assert to_timestamp(5.7) == 5
    with pytest.raises(ConfigError, match="ISO date"):
        to_timestamp("next tuesday")


@given(events, st.integers(2, 6), st.integers(0, 2**31))
@settings(max_examples=100, deadline=None)
def test_kfold_tests_every_event_exactly_once(rows, k, seed):
    data = make(*map(list, zip(*rows, strict=True)))
    if k > len(data):
        with pytest.raises(ConfigError):
            kfold(data, k, np.random.default_rng(seed))
        return
    splits = kfold(data, k, np.random.default_rng(seed))
    assert len(splits) == k
    tested = [r for s in splits for r in row_ids(s.test)]
    assert sorted(tested) == list(range(len(data)))
    for s in splits:
        assert not set(row_ids(s.train)) & set(row_ids(s.test))
        assert len(s.train) + len(s.test) == len(data)
        assert len(s.test) >= len(data) // k


def test_kfold_is_seeded():
    data = make(list(range(20)), list(range(20)), list(range(20)))
    a = [row_ids(s.test) for s in kfold(data, 4, np.random.default_rng(1))]
    b = [row_ids(s.test) for s in kfold(data, 4, np.random.default_rng(1))]
    c = [row_ids(s.test) for s in kfold(data, 4, np.random.default_rng(2))]
    assert a == b
    assert a != c
    with pytest.raises(ConfigError, match="at least 2"):
        kfold(data, 1, np.random.default_rng(0))
