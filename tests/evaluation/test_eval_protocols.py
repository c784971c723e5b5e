"""Protocols with tiny in-test models: what the model sees, what is held out, and what is measured."""

from __future__ import annotations

import math

import numpy as np
import pytest
from evalhelpers import Recorder, random_data, sequences_data

from shoprec.data import Interactions
from shoprec.errors import ConfigError, DataError
from shoprec.evaluation.protocols import EvalConfig, FoldData, evaluate_loo, evaluate_temporal, run_protocol
from shoprec.models.base import RankingValidation, RatingValidation, create_model

SEQS = {"a": ["x1", "x2", "x3", "x4"], "b": ["y1", "y2", "y3"], "c": ["z1", "z2"], "d": ["w1"]}


def oracle_for(data: Interactions, answers: dict[int, list[int]]):
    def score(q, n_items):
        s = np.zeros(n_items, dtype=np.float32)
        s[answers.get(q.user, [])] = 1.0
        return s
    return score


def last_items(data: Interactions) -> dict[int, list[int]]:
    seqs = data.to_sequences()
    return {u: [int(s[-1])] for u, s in enumerate(seqs) if len(s)}


def test_loo_fits_on_train_validates_on_second_to_last_and_tests_on_last():
    data = sequences_data(SEQS)
    model = Recorder(oracle_for(data, last_items(data)))
    result = evaluate_loo(data, None, lambda: model, EvalConfig(protocol="loo"))
    items = data.items
    train = model.seen_train
    assert sorted(items.externals(train.item)) == ["w1", "x1", "x2", "y1", "z1"]
    val = model.seen_validation
    assert isinstance(val, RankingValidation)
    assert items.externals(val.targets) == ["x3", "y2"]
    assert [items.externals(q.history) for q in val.queries] == [["x1", "x2"], ["y1"]]
    # test queries: train + valid events in time order, with timestamps; user d (1 event) is not evaluated
    tests = {data.users.external(q.user): q for q in model.seen_queries[len(val.queries):]}
    assert sorted(tests) == ["a", "b", "c"]
    assert items.externals(tests["a"].history) == ["x1", "x2", "x3"]
    assert tests["a"].timestamps is not None and np.all(np.diff(tests["a"].timestamps) > 0)
    assert result.n_users_evaluated == 3 and sorted(result.unit_keys) == ["a", "b", "c"]
    assert result.metrics["HR@10"] == 1.0 and result.metrics["NDCG@10"] == pytest.approx(1.0)
    assert result.metrics["MRR"] == 1.0
    assert len(result.per_user["HR@10"]) == 3


def test_strict_protocol_excludes_seen_items_but_keep_seen_ranks_them():
    # the model loves items in the history, then lower indices
    def score(q, n_items):
        s = -np.arange(n_items, dtype=np.float32) / n_items
        s[q.history] += 10.0
        return s
    data = sequences_data({"a": ["i0", "i1", "i2", "i3"], "b": ["i4", "i5", "i6"]})
    strict = evaluate_loo(data, None, lambda: Recorder(score), EvalConfig(protocol="loo", ks=(4, 5)))
    # a: i0-i2 excluded -> i3 first; b: i4, i5 excluded -> i0..i3 come before i6 (rank 4)
    assert strict.metrics["MRR"] == pytest.approx((1 + 1 / 5) / 2)
    assert strict.metrics["HR@4"] == 0.5 and strict.metrics["HR@5"] == 1.0
    keep = evaluate_loo(data, None, lambda: Recorder(score), EvalConfig(protocol="loo", ks=(4, 5), exclude_seen=False))
    assert keep.metrics["MRR"] == pytest.approx((1 / 4 + 1 / 7) / 2)
    assert keep.metrics["NDCG@4"] == pytest.approx(1 / math.log2(5) / 2)


def test_batches_do_not_change_results():
    data = random_data(seed=5)
    score = oracle_for(data, {u: [u % 7, (3 * u) % 11] for u in range(60)})
    a = evaluate_loo(data, None, lambda: Recorder(score), EvalConfig(protocol="loo", batch_size=3))
    b = evaluate_loo(data, None, lambda: Recorder(score), EvalConfig(protocol="loo", batch_size=1024))
    assert a.metrics == b.metrics
    assert 0 < a.metrics["HR@10"] < 1


def test_unscorable_users_count_as_misses():
    class Picky(Recorder):
        def can_score(self, query):
            return query.user != 0

        def _fit(self, train, catalog, validation):
            self.seen_train = train

    data = sequences_data(SEQS)
    result = evaluate_loo(data, None, lambda: Picky(oracle_for(data, last_items(data))), EvalConfig(protocol="loo"))
    assert result.metrics["HR@10"] == pytest.approx(2 / 3)
    assert any("could not be scored" in n for n in result.notes)


def test_temporal_relevant_sets_known_users_and_validation_from_train():
    day = 86400
    cut = 100 * day
    rows = [  # user, item, time
        ("a", "p1", cut - 9 * day), ("a", "p2", cut - 5 * day), ("a", "p3", cut + day), ("a", "p4", cut + 2 * day),
        ("a", "p3", cut + 3 * day), ("b", "p2", cut - 3 * day), ("b", "p5", cut - 2 * day), ("b", "p1", cut + day),
        ("c", "p1", cut - day), ("new", "p2", cut + day),
    ]
    data = Interactions.from_ids([r[0] for r in rows], [r[1] for r in rows], timestamp=[r[2] for r in rows])
    ix = data.items.index
    answers = {data.users.index("a"): [ix("p3"), ix("p4")], data.users.index("b"): [ix("p1")]}
    model = Recorder(oracle_for(data, answers))
    result = evaluate_temporal(data, None, lambda: model, EvalConfig(protocol="temporal", cutoff=str(cut)))
    # users a and b have training events and later events; c has no later event, "new" no training event
    assert sorted(result.unit_keys) == ["a", "b"]
    assert result.metrics["Recall@10"] == 1.0 and result.metrics["NDCG@10"] == pytest.approx(1.0)
    assert result.metrics["Precision@10"] == pytest.approx((2 / 10 + 1 / 10) / 2)
    # validation: the last training event of a and b is held out of fit
    assert sorted(data.items.externals(model.seen_train.item)) == ["p1", "p1", "p2"]
    assert data.items.externals(model.seen_validation.targets) == ["p2", "p5"]
    # test queries see all training events, in time order
    tests = {data.users.external(q.user): q for q in model.seen_queries[2:]}
    assert data.items.externals(tests["a"].history) == ["p1", "p2"]
    no_val = Recorder(oracle_for(data, answers))
    evaluate_temporal(data, None, lambda: no_val, EvalConfig(protocol="temporal", cutoff=str(cut), validation=False))
    assert no_val.seen_validation is None and len(no_val.seen_train) == 5


def test_temporal_needs_a_cutoff_and_later_events():
    with pytest.raises(ConfigError, match="cut-off"):
        EvalConfig(protocol="temporal")
    data = sequences_data(SEQS)
    with pytest.raises(DataError, match="empty"):
        run_protocol(data, None, Recorder, EvalConfig(protocol="temporal", cutoff="2100-01-01"))


def unique_pairs(data: Interactions) -> Interactions:
    keys = data.user.astype(np.int64) * data.n_items + data.item
    return data.subset(np.sort(np.unique(keys, return_index=True)[1]))


def test_kfold_rating_prediction_tests_every_rating_once():
    data = unique_pairs(random_data(seed=1))
    truth = {(int(u), int(i)): float(v) for u, i, v in zip(data.user, data.item, data.value, strict=True)}
    cfg = EvalConfig(protocol="kfold", folds=3, seed=4)
    result = run_protocol(data, None, lambda: Recorder(rate_fn=lambda u, i: truth[(u, i)] + 0.5), cfg)
    assert result.per_user["n"].sum() == len(data)
    assert len(result.per_fold) == 3 and sum(f["n_ratings"] for f in result.per_fold) == len(data)
    assert {k.split(":")[0] for k in result.unit_keys} == {"1", "2", "3"}
    assert result.metrics["RMSE"] == pytest.approx(0.5) and result.metrics["MAE"] == pytest.approx(0.5)
    assert result.per_user["SE"].sum() == pytest.approx(0.25 * len(data))
    assert result.n_users_evaluated == len(np.unique(data.user))


def test_rating_folds_exact_errors_and_validation_fraction():
    data = random_data(seed=2)
    half = len(data) // 2
    idx = np.arange(len(data))
    folds = [FoldData("u1", data.subset(idx >= half), data.subset(idx < half)),
             FoldData("u2", data.subset(idx < half), data.subset(idx >= half))]
    models = []

    def make():
        models.append(Recorder(rate_fn=lambda u, i: 3.0))
        return models[-1]

    cfg = EvalConfig(protocol="official-folds", valid_fraction=0.2, seed=0)
    result = run_protocol(data, None, make, cfg, folds=folds)
    expected = [math.sqrt(np.mean((f.test.value - 3.0) ** 2)) for f in folds]
    assert [f["RMSE"] for f in result.per_fold] == pytest.approx(expected)
    assert result.metrics["RMSE"] == pytest.approx(np.mean(expected))
    assert [f["fold"] for f in result.per_fold] == ["u1", "u2"]
    assert len(models) == 2  # a fresh model per fold
    for model, fold in zip(models, folds, strict=True):
        assert isinstance(model.seen_validation, RatingValidation)
        assert len(model.seen_train) + len(model.seen_validation.users) == len(fold.train)
        assert 0.05 < len(model.seen_validation.users) / len(fold.train) < 0.4


def test_rating_protocols_need_predict_and_ratings():
    data = random_data(seed=3)
    with pytest.raises(ConfigError, match="does not predict"):
        run_protocol(data, None, lambda: create_model("popular"), EvalConfig(protocol="kfold", folds=2))
    no_ratings = Interactions(user=data.user, item=data.item, users=data.users, items=data.items)
    with pytest.raises(DataError, match="no rating value"):
        run_protocol(no_ratings, None, lambda: Recorder(rate_fn=lambda u, i: 3.0), EvalConfig(protocol="kfold"))
    with pytest.raises(DataError, match="official folds"):
        run_protocol(data, None, Recorder, EvalConfig(protocol="official-folds"))


def test_popular_model_runs_through_loo_and_is_deterministic():
    data = random_data(n_users=200, n_items=50, n_events=3000, seed=7)
    cfg = EvalConfig(protocol="loo", ks=(5, 10), seed=1)
    a = run_protocol(data, None, lambda: create_model("popular"), cfg)
    b = run_protocol(data, None, lambda: create_model("popular"), cfg)
    assert a.metrics == b.metrics
    for key in ("Coverage@5", "Novelty@5", "PopularityPct@5", "Diversity@5"):
        assert key in a.metrics
    # popularity recommends the most popular items
    assert a.metrics["PopularityPct@5"] > 0.8
    assert a.metrics["HR@10"] >= a.metrics["HR@5"]


def test_temporal_later_returns_are_not_relevant():
    from shoprec.types import EventType

    purchase, ret = EventType.PURCHASE.code, EventType.RETURN.code
    rows = [("a", "p1", 1, purchase), ("a", "p2", 2, purchase), ("a", "p3", 10, purchase), ("a", "p2", 11, ret),
            ("b", "p1", 1, purchase), ("b", "p2", 2, purchase), ("b", "p1", 12, ret)]
    data = Interactions.from_ids([r[0] for r in rows], [r[1] for r in rows], timestamp=[r[2] for r in rows],
                                 event_type=[r[3] for r in rows])
    model = Recorder()
    result = evaluate_temporal(data, None, lambda: model,
                               EvalConfig(protocol="temporal", cutoff="5", validation=False))
    assert result.unit_keys == ["a"]  # b only returned an item later
    tests = model.seen_queries[-1:]
    assert data.items.externals(tests[0].history) == ["p1", "p2"]
    assert result.metrics["Recall@10"] == 1.0  # p3, the only relevant item, is found (all scores tie at 0)
