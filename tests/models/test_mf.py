"""mf: biased matrix factorisation for ratings (gibbs and als solvers)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from shoprec.data import IdMap, Interactions
from shoprec.errors import ConfigError
from shoprec.models import Query, RatingValidation, create_model, load_model
from shoprec.models.mf import MFConfig, _rating_triples

FAST = {"solver": "gibbs", "epochs": 40, "burn_in": 10, "thin": 2}
ALS = {"epochs": 15, "regularization": 1.0}


def planted_ratings(n_users: int = 80, n_items: int = 50, rank: int = 2, density: float = 0.4,
                    seed: int = 0) -> tuple[Interactions, RatingValidation]:
    """Ratings 1..5 from mu + biases + a rank-2 interaction; returns (train, held-out pairs)."""
    rng = np.random.default_rng(seed)
    p, q = rng.normal(0, 0.8, (n_users, rank)), rng.normal(0, 0.8, (n_items, rank))
    truth = 3.5 + rng.normal(0, 0.4, (n_users, 1)) + rng.normal(0, 0.4, (1, n_items)) + p @ q.T
    u, i = np.nonzero(rng.random((n_users, n_items)) < density)
    r = np.clip(truth[u, i] + rng.normal(0, 0.1, len(u)), 1, 5)
    test = rng.random(len(u)) < 0.2
    users = IdMap(f"u{x}" for x in range(n_users))
    items = IdMap(f"i{x}" for x in range(n_items))
    train = Interactions(user=u[~test], item=i[~test], users=users, items=items, value=r[~test],
                         timestamp=np.arange(int((~test).sum())))
    return train, RatingValidation(u[test], i[test], r[test])


@pytest.fixture(scope="module")
def data() -> tuple[Interactions, RatingValidation]:
    return planted_ratings()


def baseline_rmse(train: Interactions, val: RatingValidation) -> float:
    return float(np.sqrt(np.mean((val.ratings - train.value.mean()) ** 2)))


@pytest.mark.parametrize("params", [FAST, ALS, {**FAST, "implicit": False}, {**ALS, "implicit": False}])
def test_learns_planted_ratings(data, params) -> None:
    train, val = data
    model = create_model("mf", params).fit(train)
    rmse = val.evaluate(model)["RMSE"]
    assert rmse < 0.5 * baseline_rmse(train, val), (params, rmse)


def test_predict_clips_and_handles_unknown_ids(data) -> None:
    train, _ = data
    model = create_model("mf", FAST).fit(train)
    users, items = np.meshgrid(np.arange(train.n_users), np.arange(train.n_items), indexing="ij")
    pred = model.predict(users.ravel(), items.ravel())
    low, high = np.nanmin(train.value), np.nanmax(train.value)
    assert pred.min() >= low and pred.max() <= high
    unknown = model.predict(np.array([-1, 0, -1]), np.array([0, -1, -1]))
    assert unknown[2] == pytest.approx(float(model.global_mean))
    assert unknown[0] == pytest.approx(float(np.clip(model.global_mean + model.item_bias[0], low, high)))
    assert unknown[1] == pytest.approx(float(np.clip(model.global_mean + model.user_bias[0], low, high)))


def test_score_is_unclipped_prediction(data) -> None:
    train, _ = data
    model = create_model("mf", FAST).fit(train)
    scores = model.score([Query(user=3), Query(user=7)])
    assert scores.shape == (2, train.n_items)
    pred = model.predict(np.full(train.n_items, 7), np.arange(train.n_items))
    np.testing.assert_allclose(np.clip(scores[1], *model.rating_range), pred, rtol=1e-5, atol=1e-5)


def test_kept_samples_are_stacked(data) -> None:
    train, _ = data
    params = {"solver": "gibbs", "epochs": 20, "burn_in": 10, "thin": 5, "embedding_size": 3}
    model = create_model("mf", params).fit(train)
    # kept: epochs 15 and 20 -> two samples of 3 factors
    assert model.user_factors.shape == (train.n_users, 6)
    assert model.item_factors.shape == (train.n_items, 6)


def test_validation_restores_best_epoch(data) -> None:
    train, val = data
    model = create_model("mf", {"solver": "als", "epochs": 30, "regularization": 0.05, "patience": 3})
    model.fit(train, validation=val)
    logged = [e["RMSE"] for e in model.training_log if "RMSE" in e]
    assert logged, "validation metrics are logged"
    assert val.evaluate(model)["RMSE"] == pytest.approx(min(logged), abs=1e-5)
    assert model.best_epoch == 1 + int(np.argmin(logged))


def test_gibbs_validates_on_kept_samples(data) -> None:
    train, val = data
    model = create_model("mf", {**FAST, "patience": 100}).fit(train, validation=val)
    epochs = [e["epoch"] for e in model.training_log if "RMSE" in e]
    assert epochs == [e for e in range(1, 41) if MFConfig(**FAST).keeps(e)]
    assert val.evaluate(model)["RMSE"] == pytest.approx(min(e["RMSE"] for e in model.training_log if "RMSE" in e),
                                                        abs=1e-5)


def test_same_seed_same_model_and_save_load(data, tmp_path: Path) -> None:
    train, val = data
    a = create_model("mf", {**FAST, "seed": 3}).fit(train)
    b = create_model("mf", {**FAST, "seed": 3}).fit(train)
    np.testing.assert_array_equal(a.predict(val.users, val.items), b.predict(val.users, val.items))
    loaded = load_model(a.save(tmp_path / "mf"))
    np.testing.assert_array_equal(loaded.predict(val.users, val.items), a.predict(val.users, val.items))
    np.testing.assert_array_equal(loaded.score([Query(user=1)]), a.score([Query(user=1)]))


def test_default_sweeps_depend_on_the_solver() -> None:
    assert (MFConfig().solver, MFConfig().sweeps) == ("als", 50)
    assert MFConfig(solver="gibbs").sweeps == 400
    assert MFConfig(solver="gibbs", epochs=7).sweeps == 7


def test_latest_rating_of_a_pair_counts() -> None:
    train = Interactions.from_ids(["a", "a", "b", "a"], ["x", "y", "x", "x"], value=[1, 3, 4, 5],
                                  timestamp=[10, 11, 12, 20])
    u, i, r = _rating_triples(train, MFConfig(), np.random.default_rng(0))
    pairs = {(int(a), int(b)): float(c) for a, b, c in zip(u, i, r, strict=True)}
    assert pairs == {(0, 0): 5.0, (0, 1): 3.0, (1, 0): 4.0}


@pytest.mark.parametrize("params", [FAST, ALS])
def test_implicit_data_ranks_co_occurring_item_first(params) -> None:
    # users who took items 0 and 1 always also took item 2; others take 3..9 at random
    rng = np.random.default_rng(0)
    users, items = [], []
    for u in range(40):
        picks = [0, 1, 2] if u < 20 else list(rng.choice(np.arange(3, 10), 3, replace=False))
        users += [f"u{u}"] * 3
        items += [f"i{x}" for x in picks]
    users += ["new", "new"]
    items += ["i0", "i1"]
    train = Interactions.from_ids(users, items)
    model = create_model("mf", {**params, "negatives": 4}).fit(train)
    scores = model.score([Query(user=train.users.index("new"))])[0]
    scores[[train.items.index("i0"), train.items.index("i1")]] = -np.inf
    assert int(np.argmax(scores)) == train.items.index("i2")


@pytest.mark.parametrize(("params", "name"), [({"embedding_size": 0}, "embedding_size"), ({"thin": 0}, "thin"),
                                              ({"solver": "newton"}, "solver"),
                                              ({"regularization": 0}, "regularization")])
def test_bad_config_names_the_parameter(params, name) -> None:
    with pytest.raises(ConfigError, match=name):
        create_model("mf", params)


@pytest.mark.slow
def test_movielens_u1_rmse(shared_data: Path) -> None:
    """Default mf on the official u1 fold: 0.886 measured; the target is <= 0.895 (SVD++ publishes 0.919)."""
    folder = shared_data / "ml-100k"
    base, test = np.loadtxt(folder / "u1.base", dtype=np.int64), np.loadtxt(folder / "u1.test", dtype=np.int64)
    users, items = IdMap(), IdMap()
    train = Interactions.from_ids(base[:, 0].astype(str), base[:, 1].astype(str), value=base[:, 2],
                                  timestamp=base[:, 3], users=users, items=items)
    val = RatingValidation(train.users.lookup(test[:, 0].astype(str)), train.items.lookup(test[:, 1].astype(str)),
                           test[:, 2].astype(np.float64))
    model = create_model("mf").fit(train)
    assert val.evaluate(model)["RMSE"] < 0.895


def test_a_ranking_protocol_can_evaluate_mf(data: tuple[Interactions, RatingValidation]) -> None:
    """`shoprec train` evaluates every model by leave-one-out ranking: mf fits there without early stopping
    (its validation is held-out ratings), ranking by predicted rating."""
    from shoprec.evaluation import EvalConfig, run_protocol

    train, _ = data
    result = run_protocol(train, None, lambda: create_model("mf", ALS), EvalConfig(protocol="loo"))
    assert result.n_users_evaluated > 0 and 0.0 <= result.metrics["NDCG@10"] <= 1.0
