"""Differentially private training (DP-SGD via Opacus) of `mf` and `ncf`: budget, learning, noise, configs."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from shoprec.cli import evaluate as cli_eval
from shoprec.data import IdMap, Interactions
from shoprec.errors import ConfigError, DataError
from shoprec.models import RatingValidation, Recommender, create_model, load_model
from shoprec.models.dp import MECHANISM

# Small, fast DP settings (3 epochs of ~23 Poisson batches); the planted data has strong item biases.
MF_DP = {"solver": "sgd", "implicit": False, "dp_rating_range": [1, 5], "epochs": 3, "batch_size": 256,
         "learning_rate": 0.05, "regularization": 1.0, "embedding_size": 2}
NCF_DP = {"implicit": False, "dp_rating_range": [1, 5], "epochs": 3, "batch_size": 256, "learning_rate": 0.03,
          "device": "cpu", "num_threads": 1, "embedding_size": 4, "layers": [8, 4], "averaging": 0.0}
HIGH, LOW = 10.0, 0.3  # epsilons: little noise (noise multiplier ~0.6) and much noise (~4.8)
SEEDS = (0, 1)


def dp_ratings(n_users: int = 300, n_items: int = 30, density: float = 0.8,
               seed: int = 0) -> tuple[Interactions, RatingValidation]:
    """Integer ratings 1..5 from 3.2 + item bias (sd 0.9) + user bias (sd 0.5) + noise; 20% held out."""
    rng = np.random.default_rng(seed)
    truth = 3.2 + rng.normal(0, 0.9, (1, n_items)) + rng.normal(0, 0.5, (n_users, 1))
    u, i = np.nonzero(rng.random((n_users, n_items)) < density)
    r = np.clip(np.round(truth[u, i] + rng.normal(0, 0.3, len(u))), 1, 5)
    test = rng.random(len(u)) < 0.2
    users, items = IdMap(f"u{x}" for x in range(n_users)), IdMap(f"i{x}" for x in range(n_items))
    train = Interactions(user=u[~test], item=i[~test], users=users, items=items, value=r[~test],
                         timestamp=np.arange(int((~test).sum())))
    return train, RatingValidation(u[test], i[test], r[test])


@pytest.fixture(scope="module")
def data() -> tuple[Interactions, RatingValidation]:
    return dp_ratings()


@pytest.fixture(scope="module")
def fits(data) -> dict[tuple[str, float, int], Recommender]:
    """DP models shared by the tests: mf at both epsilons and two seeds, ncf at both epsilons."""
    train, _ = data
    out: dict[tuple[str, float, int], Recommender] = {}
    for eps in (HIGH, LOW):
        for seed in SEEDS:
            out["mf", eps, seed] = create_model("mf", {**MF_DP, "dp_epsilon": eps, "seed": seed}).fit(train)
        out["ncf", eps, 0] = create_model("ncf", {**NCF_DP, "dp_epsilon": eps}).fit(train)
    return out


def rmse(model: Recommender, val: RatingValidation) -> float:
    return val.evaluate(model)["RMSE"]


def mean_rmse(train: Interactions, val: RatingValidation) -> float:
    return float(np.sqrt(np.mean((val.ratings - train.value.mean()) ** 2)))


@pytest.mark.parametrize("name", ["mf", "ncf"])
def test_reports_spent_budget_within_target(fits, data, name) -> None:
    train, _ = data
    for eps in (HIGH, LOW):
        privacy = fits[name, eps, 0].privacy
        assert privacy is not None
        assert 0 < privacy["epsilon"] <= eps and privacy["epsilon"] > 0.9 * eps  # spent, not just a bound
        assert privacy["delta"] == pytest.approx(min(1e-5, 1 / len(train)))
        assert privacy["mechanism"] == MECHANISM == "DP-SGD (Opacus)"
        assert privacy["sample_rate"] == pytest.approx(1 / np.ceil(len(train) / 256))
        assert privacy["steps"] > 0 and privacy["noise_multiplier"] > 0


@pytest.mark.parametrize("name", ["mf", "ncf"])
def test_learns_more_than_the_global_mean(fits, data, name) -> None:
    train, val = data
    base = mean_rmse(train, val)
    assert rmse(fits[name, HIGH, 0], val) < 0.6 * base  # ~0.46 vs 0.94: item and user biases learned
    assert rmse(fits[name, LOW, 0], val) < 0.9 * base  # even at epsilon 0.3


def test_smaller_epsilon_adds_more_noise(fits, data) -> None:
    _, val = data
    high = [fits["mf", HIGH, s] for s in SEEDS]
    low = [fits["mf", LOW, s] for s in SEEDS]
    assert min(m.privacy["noise_multiplier"] for m in low) > 3 * max(m.privacy["noise_multiplier"] for m in high)
    # measured: ~0.46 at epsilon 10 and ~0.70 at 0.3 (per seed 0.66-0.73): averaged over seeds, a wide gap
    assert np.mean([rmse(m, val) for m in low]) > np.mean([rmse(m, val) for m in high]) + 0.1
    assert rmse(fits["ncf", LOW, 0], val) > rmse(fits["ncf", HIGH, 0], val)


@pytest.mark.parametrize("name", ["mf", "ncf"])
def test_save_load_keeps_the_privacy_report(fits, data, name, tmp_path: Path) -> None:
    _, val = data
    model = fits[name, HIGH, 0]
    model.save(tmp_path)
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert meta["model_meta"]["privacy"] == model.privacy
    assert meta["training_log"] and not any("loss" in e for e in meta["training_log"])  # measured without noise
    loaded = load_model(tmp_path)
    assert loaded.privacy == model.privacy  # type: ignore[attr-defined]
    np.testing.assert_allclose(loaded.predict(val.users, val.items),  # type: ignore[attr-defined]
                               model.predict(val.users, val.items), rtol=1e-5, atol=1e-5)  # type: ignore[attr-defined]


def test_predictions_stay_in_the_public_range_and_without_it_are_unclipped(fits, data, tmp_path: Path) -> None:
    train, val = data
    pred = fits["mf", LOW, 0].predict(val.users, val.items)  # type: ignore[attr-defined]
    assert pred.min() >= 1 and pred.max() <= 5
    model = create_model("mf", {**MF_DP, "dp_rating_range": None, "dp_epsilon": HIGH, "epochs": 1}).fit(train)
    assert model.rating_range == (-np.inf, np.inf)  # type: ignore[attr-defined]  # the data's min/max would leak
    meta = json.loads((model.save(tmp_path) / "meta.json").read_text())
    assert meta["model_meta"]["rating_range"] == [None, None]
    assert load_model(tmp_path).rating_range == (-np.inf, np.inf)  # type: ignore[attr-defined]


def test_no_privacy_report_without_dp(data) -> None:
    train, val = data
    model = create_model("mf", {**MF_DP, "dp_rating_range": None, "epochs": 3}).fit(train)
    assert model.privacy is None  # type: ignore[attr-defined]
    assert rmse(model, val) < 0.6 * mean_rmse(train, val)  # the same learner without noise


@pytest.mark.parametrize(("model", "params", "name"), [
    ("mf", {**MF_DP, "dp_epsilon": 0.0}, "dp_epsilon"),
    ("mf", {**MF_DP, "dp_epsilon": -1.0}, "dp_epsilon"),
    ("mf", {**MF_DP, "dp_epsilon": float("inf")}, "dp_epsilon"),
    ("ncf", {**NCF_DP, "dp_epsilon": float("nan")}, "dp_epsilon"),
    ("mf", {**MF_DP, "dp_epsilon": 1.0, "dp_delta": 0.0}, "dp_delta"),
    ("mf", {**MF_DP, "dp_epsilon": 1.0, "dp_delta": 1.0}, "dp_delta"),
    ("ncf", {**NCF_DP, "dp_epsilon": 1.0, "dp_delta": 1.5}, "dp_delta"),
    ("ncf", {**NCF_DP, "dp_epsilon": 1.0, "dp_delta": -1e-5}, "dp_delta"),
    ("mf", {**MF_DP, "dp_epsilon": 1.0, "dp_max_grad_norm": 0.0}, "dp_max_grad_norm"),
    ("ncf", {**NCF_DP, "dp_epsilon": 1.0, "dp_rating_range": [5, 1]}, "dp_rating_range"),
    ("mf", {**MF_DP, "dp_epsilon": 1.0, "dp_rating_range": [1, 3, 5]}, "dp_rating_range"),
    ("mf", {"dp_epsilon": 1.0}, "dp_epsilon"),  # the ALS solver is not DP: names dp_epsilon and solver 'sgd'
    ("mf", {**MF_DP, "dp_epsilon": 1.0, "implicit": True}, "implicit"),
    ("ncf", {**NCF_DP, "dp_epsilon": 1.0, "implicit": True}, "implicit"),
    ("ncf", {**NCF_DP, "dp_epsilon": 1.0, "objective": "bce"}, "objective"),
])
def test_bad_values_raise_config_error_naming_the_parameter(model, params, name) -> None:
    with pytest.raises(ConfigError, match=f"'{name}'"):
        create_model(model, params)


def test_unreachable_epsilon_is_a_config_error(data) -> None:
    train, _ = data
    with pytest.raises(ConfigError, match=r"'dp_epsilon'.*cannot be reached"):
        create_model("mf", {**MF_DP, "dp_epsilon": 0.01}).fit(train)


@pytest.mark.parametrize("name", ["mf", "ncf"])
def test_dp_needs_ratings(name) -> None:
    users, items = IdMap(f"u{x}" for x in range(5)), IdMap(f"i{x}" for x in range(4))
    clicks = Interactions(user=np.repeat(np.arange(5), 2), item=np.tile([0, 1], 5) + np.repeat([0, 2], 5),
                          users=users, items=items, timestamp=np.arange(10))
    params: dict[str, Any] = {**(MF_DP if name == "mf" else NCF_DP), "dp_epsilon": 1.0}
    with pytest.raises(DataError, match="dp_epsilon needs ratings"):
        create_model(name, params).fit(clicks)


def test_dp_epsilon_option_adds_the_required_settings() -> None:
    assert cli_eval.with_dp_epsilon("mf", {"embedding_size": 4}, 3.0) == {
        "solver": "sgd", "implicit": False, "embedding_size": 4, "dp_epsilon": 3.0}
    assert cli_eval.with_dp_epsilon("ncf", {}, 1.0) == {"implicit": False, "dp_epsilon": 1.0}
    assert cli_eval.with_dp_epsilon("als", {"embedding_size": 4}, None) == {"embedding_size": 4}
    with pytest.raises(ConfigError, match="--dp-epsilon: model 'als'"):
        cli_eval.with_dp_epsilon("als", {}, 1.0)


def test_evaluate_cli_reports_privacy(data, monkeypatch) -> None:
    train, _ = data
    monkeypatch.setattr(cli_eval, "load_dataset", lambda fmt, path: SimpleNamespace(interactions=train, catalog=None))
    config = json.dumps({k: v for k, v in MF_DP.items() if k not in ("solver", "implicit")})
    res = CliRunner().invoke(cli_eval.evaluate, ["--data", "m:p", "--protocol", "kfold", "--folds", "2", "--model",
                                                 "mf", "--config", config, "--dp-epsilon", "2"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["config"]["dp_epsilon"] == 2.0 and doc["config"]["solver"] == "sgd"
    assert doc["privacy"]["mechanism"] == "DP-SGD (Opacus)"
    assert 1.9 < doc["privacy"]["epsilon"] <= 2.0 and doc["privacy"]["delta"] == 1e-5
    res = CliRunner().invoke(cli_eval.evaluate, ["--data", "m:p", "--protocol", "kfold", "--model", "mf",
                                                 "--dp-epsilon", "-1"])
    assert isinstance(res.exception, ConfigError) and "'dp_epsilon'" in str(res.exception)


@pytest.mark.filterwarnings("ignore:Full backward hook is firing")
def test_ghost_clipping_sees_each_ratings_own_gradient_norm() -> None:
    """The per-rating norms Opacus clips (ghost clipping, no per-sample tensors) equal brute-force ones."""
    import torch

    from shoprec.models.dp import PrivateTrainer
    from shoprec.models.mf_sgd import BiasedMF

    gen = torch.Generator().manual_seed(0)
    net = BiasedMF(20, 15, 3, 0.3, 3.0)
    u, i = torch.randint(0, 20, (200,), generator=gen), torch.randint(0, 15, (200,), generator=gen)
    r = torch.randint(1, 6, (200,), generator=gen).float()

    def loss(module: torch.nn.Module, bu: torch.Tensor, bi: torch.Tensor, br: torch.Tensor) -> torch.Tensor:
        pred, xu, xi = module(bu, bi)
        return (pred - br) ** 2 + 0.1 * ((xu**2).sum(-1) + (xi**2).sum(-1))

    trainer = PrivateTrainer(net, loss, (u, i, r), epsilon=5.0, delta=1e-5, max_grad_norm=1.0, epochs=1,
                             batch_size=50, learning_rate=0.01, seed=0)
    trainer.criterion(loss(trainer.module, u[:7], i[:7], r[:7])).backward()
    ghost = trainer.module.per_sample_gradient_norms
    brute = []
    for k in range(7):
        grads = torch.autograd.grad(loss(net, u[k:k + 1], i[k:k + 1], r[k:k + 1]).sum(), list(net.parameters()))
        brute.append(torch.sqrt(sum((g**2).sum() for g in grads)))
    torch.testing.assert_close(ghost, torch.stack(brute), rtol=1e-4, atol=1e-5)
    assert float(ghost.max()) > 1.0  # so clipping to max_grad_norm = 1 really bites


@pytest.mark.parametrize("name", ["mf", "ncf"])
def test_empty_poisson_batches_still_take_a_counted_noise_step(name) -> None:
    """batch_size 1 on 12 ratings: about a third of the Poisson batches are empty; every one is a DP step."""
    users, items = IdMap(f"u{x}" for x in range(6)), IdMap(f"i{x}" for x in range(4))
    ratings = np.random.default_rng(0).integers(1, 6, 12).astype(float)
    tiny = Interactions(user=np.repeat(np.arange(6), 2), item=np.tile([0, 1], 6) + np.repeat([0, 2], 6),
                        users=users, items=items, value=ratings, timestamp=np.arange(12))
    params = {**(MF_DP if name == "mf" else NCF_DP), "dp_epsilon": 5.0, "batch_size": 1, "epochs": 3}
    model = create_model(name, params).fit(tiny)
    assert model.privacy["steps"] == 3 * 12 and model.privacy["epsilon"] <= 5.0  # type: ignore[attr-defined]
    assert np.isfinite(model.predict(np.arange(6), np.zeros(6, dtype=np.int64))).all()  # type: ignore[attr-defined]


def test_store_train_reports_privacy_in_its_result_and_artifact(tmp_path: Path) -> None:
    """`shoprec train --dp-epsilon` path: the service's result and the stored meta.json carry the report."""
    from shoprec.service.testing import local_services, synthetic_platform

    services = local_services(tmp_path)
    try:
        synthetic_platform(services, "shop", model=None)
        params = cli_eval.with_dp_epsilon("mf", {"epochs": 2}, 2.0)
        result = services.store.train("shop", "mf", params, evaluate=False)
    finally:
        services.close()
    assert 1.9 < result.privacy["epsilon"] <= 2.0 and result.privacy["mechanism"] == MECHANISM
    meta = json.loads((Path(result.path) / "meta.json").read_text())
    assert meta["model_meta"]["privacy"] == result.privacy
