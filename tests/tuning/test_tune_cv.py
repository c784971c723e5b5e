"""Cross-validation folds come from the training part only and never look ahead."""

from __future__ import annotations

import numpy as np
import pytest
from tunehelpers import rating_data, recency_data

from shoprec.data.splits import leave_one_out
from shoprec.errors import ConfigError, DataError
from shoprec.tuning.cv import parse_metric, ranking_folds, rating_folds


def _keys(data, rows=None):
    u, i, t = data.user, data.item, data.timestamp
    return set(zip(u.tolist(), i.tolist(), t.tolist(), strict=True))


def test_ranking_folds_roll_back_one_event_per_fold_and_never_see_the_test_targets():
    data = recency_data(n_users=30)
    split = leave_one_out(data, validation=False)
    folds = ranking_folds(split.train, 3)
    test_keys = _keys(split.test)
    last_train_time = {}
    for u, t in zip(split.train.user.tolist(), split.train.timestamp.tolist(), strict=True):
        last_train_time[u] = max(t, last_train_time.get(u, t))
    for j, fold in enumerate(folds):
        assert not (_keys(fold.train) & test_keys)
        assert fold.task is not None
        rel_users, rel_items = fold.task.relevant.nonzero()
        users = fold.task.users[rel_users]
        # the target of fold j is each user's (j+1)-th last training event: later than all of its fold training
        for u, i in zip(users.tolist(), rel_items.tolist(), strict=True):
            own = fold.train.user == u
            target_time = split.train.timestamp[(split.train.user == u) & (split.train.item == i)].max()
            assert fold.train.timestamp[own].max() < target_time
        n_later = [(split.train.timestamp[split.train.user == u] > split.train.timestamp[
            (split.train.user == u) & (split.train.item == i)].max()).sum()
            for u, i in zip(users.tolist(), rel_items.tolist(), strict=True)]
        assert set(n_later) == {j}


def test_ranking_folds_fail_clearly_when_users_are_too_short():
    data = recency_data(n_users=10)
    with pytest.raises(DataError, match="fold 14: no user has 15 training events"):
        ranking_folds(data, 15)


def test_rating_folds_partition_the_training_ratings():
    data = rating_data()
    folds = rating_folds(data, 4, np.random.default_rng(0))
    sizes = [len(f.test) for f in folds]
    assert sum(sizes) == len(data) and max(sizes) - min(sizes) <= 1
    for f in folds:
        assert len(f.train) + len(f.test) == len(data)
        assert not (_keys(f.train) & _keys(f.test))
    with pytest.raises(ConfigError, match="--folds >= 2"):
        rating_folds(data, 1, np.random.default_rng(0))


@pytest.mark.parametrize(("text", "name", "maximize"), [
    ("ndcg@10", "NDCG@10", True), ("HR@20", "HR@20", True), ("recall@5", "Recall@5", True),
    ("MRR", "MRR", True), ("rmse", "RMSE", False), ("MAE", "MAE", False)])
def test_metrics_parse_with_their_direction(text, name, maximize):
    metric = parse_metric(text)
    assert metric.name == name and metric.maximize is maximize


@pytest.mark.parametrize("text", ["NDCG", "NDCG@0", "AUC@10", "hr@x"])
def test_unknown_metrics_are_rejected(text):
    with pytest.raises(ConfigError, match="unknown metric"):
        parse_metric(text)
