"""The harness on the real datasets in ../shared/data (skipped when absent)."""

from __future__ import annotations

import numpy as np
import pytest
from evalhelpers import ItemMean

from shoprec.data.splits import leave_one_out
from shoprec.evaluation.engine import ItemStats, evaluate_ranking, make_task
from shoprec.evaluation.protocols import EvalConfig, FoldData, evaluate_ratings, run_protocol
from shoprec.models.base import create_model

datasets = pytest.importorskip("shoprec.datasets")


def load(fmt, path):
    if not hasattr(datasets, "load"):
        pytest.skip("shoprec.datasets.load is not available")
    return datasets.load(fmt, str(path))


@pytest.mark.slow
def test_beauty_most_popular_matches_the_measured_anchor(shared_data):
    """ANCHORS section 5: MostPopular 0.0141 / 0.0063 / 0.0217 / 0.0082 (HR@10, NDCG@10, HR@20, NDCG@20), strict.

    That row counted popularity on train + valid; the harness' loo protocol fits on train only.
    """
    data = load("s3rec", shared_data / "amazon-beauty" / "Beauty.txt").interactions
    split = leave_one_out(data)
    assert split.valid is not None
    history = split.train.concat(split.valid)
    task = make_task(history, split.test, exclude_seen=True)
    assert len(task) == 22363
    model = create_model("popular").fit(history)
    out = evaluate_ranking(model, task, (10, 20), ItemStats.from_train(split.train))
    m = out.metrics
    assert m["HR@10"] == pytest.approx(0.0141, abs=0.001) and m["NDCG@10"] == pytest.approx(0.0063, abs=0.0005)
    assert m["HR@20"] == pytest.approx(0.0217, abs=0.001) and m["NDCG@20"] == pytest.approx(0.0082, abs=0.0005)
    strict = run_protocol(data, None, lambda: create_model("popular"), EvalConfig(protocol="loo"))
    assert strict.n_users_evaluated == 22363
    assert 0.005 < strict.metrics["HR@10"] < m["HR@10"]  # fewer counts (no valid events) rank worse here


def test_movielens_official_folds_with_an_item_mean_baseline(shared_data):
    dataset = load("movielens-100k", shared_data / "ml-100k")
    assert dataset.fold_names == ["u1", "u2", "u3", "u4", "u5"]
    folds = [FoldData(name, f.train, f.test) for name, f in zip(dataset.fold_names, dataset.folds, strict=True)]
    result = evaluate_ratings(folds, None, ItemMean, EvalConfig(protocol="official-folds"))
    assert [f["n_ratings"] for f in result.per_fold] == [20000] * 5
    assert result.per_user["n"].sum() == 100000
    # an item-mean predictor is far from the anchors (SVD 0.934) but far better than a constant (~1.15)
    assert 0.98 < result.metrics["RMSE"] < 1.06
    assert result.n_users_evaluated == 943


@pytest.mark.slow
def test_online_retail_temporal_with_popular(shared_data):
    dataset = load("online-retail", shared_data / "online-retail" / "online_retail.csv.gz")
    cfg = EvalConfig(protocol="temporal", cutoff="2011-11-01")
    result = run_protocol(dataset.interactions, dataset.catalog, lambda: create_model("popular"), cfg)
    assert 1000 < result.n_users_evaluated < dataset.interactions.n_users
    assert 0 < result.metrics["Recall@10"] < result.metrics["HR@10"] <= 1
    assert np.isfinite(result.metrics["NDCG@10"])
