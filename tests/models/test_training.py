"""Shared training utilities (models/training.py) and losses (models/losses.py, models/softmax.py)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from shoprec.errors import ConfigError
from shoprec.models import losses, softmax
from shoprec.models.base import Query, RatingValidation, Recommender
from shoprec.models.training import (
    check_range,
    load_module_state,
    module_state,
    pick_device,
    thread_count,
    torch_session,
    train_epochs,
)
from shoprec.settings import load_settings, process_settings, use_settings


# ----------------------------------------------------------------------------- losses
def test_bce_matches_torch_binary_cross_entropy() -> None:
    g = torch.Generator().manual_seed(0)
    pos, neg = torch.randn(5, generator=g), torch.randn(5, 3, generator=g)
    logits = torch.cat([pos[:, None], neg], 1)
    labels = torch.cat([torch.ones(5, 1), torch.zeros(5, 3)], 1)
    expected = F.binary_cross_entropy_with_logits(logits, labels, reduction="sum") / 5
    assert float(losses.bce_loss(pos, neg)) == pytest.approx(float(expected), rel=1e-5)


def test_bpr_prefers_positive_above_negatives() -> None:
    pos, neg = torch.tensor([3.0, 3.0]), torch.tensor([[0.0, 1.0], [0.0, 1.0]])
    good, bad = losses.bpr_loss(pos, neg), losses.bpr_loss(-pos, neg)
    assert float(good) < float(bad)
    assert float(good) == pytest.approx(float(-F.logsigmoid(torch.tensor([3.0, 2.0])).mean()), rel=1e-6)


def test_the_softmax_losses_agree_when_all_items_are_sampled() -> None:
    g = torch.Generator().manual_seed(1)
    h, table = torch.randn(4, 3, generator=g), torch.randn(7, 3, generator=g)  # table row 0 = padding
    targets = torch.tensor([1, 4, 6, 3])
    fused = softmax.full_softmax_loss(h, table, targets, None)
    plain = softmax.full_softmax_ce(h @ table[1:].T, targets - 1)
    every_item = torch.arange(1, 7)
    sampled = softmax.sampled_softmax_loss(h, table, targets, every_item, torch.zeros(7), None)
    assert float(fused) == pytest.approx(float(plain), rel=1e-5)
    assert float(sampled) == pytest.approx(float(plain), rel=1e-5)
    # a uniform sampler's logQ correction shifts every logit equally: no change
    corrected = softmax.sampled_softmax_loss(h, table, targets, every_item, torch.full((7,), -2.0), None)
    assert float(corrected) == pytest.approx(float(sampled), rel=1e-6)


def test_full_softmax_ignores_padding_targets() -> None:
    logits = torch.randn(3, 4, generator=torch.Generator().manual_seed(2))
    targets = torch.tensor([1, softmax.IGNORE_INDEX, 2])
    expected = F.cross_entropy(logits[[0, 2]], torch.tensor([1, 2]))
    assert float(softmax.full_softmax_ce(logits, targets)) == pytest.approx(float(expected), rel=1e-6)
    assert float(softmax.full_softmax_ce(logits, torch.full((3,), softmax.IGNORE_INDEX))) == 0.0


def test_bpr_max_focuses_on_the_hardest_negative() -> None:
    pos = torch.tensor([1.0])
    easy, hard = torch.tensor([[-5.0, -5.0, 0.0]]), torch.tensor([[-5.0, -5.0, 3.0]])
    assert float(losses.bpr_max_loss(pos, hard, reg=0.0)) > float(losses.bpr_max_loss(pos, easy, reg=0.0))
    assert float(losses.bpr_max_loss(pos, easy, reg=1.0)) > float(losses.bpr_max_loss(pos, easy, reg=0.0))


def test_weighted_losses_weight_rows() -> None:
    pred, target = torch.tensor([1.0, 3.0]), torch.tensor([0.0, 0.0])
    assert float(losses.mse_loss(pred, target, weight=torch.tensor([1.0, 0.0]))) == pytest.approx(1.0)
    assert float(losses.mse_loss(pred, target)) == pytest.approx(5.0)


# ----------------------------------------------------------------------------- config, device, seeds
def test_check_range_names_parameter_and_model() -> None:
    check_range("m", "x", 1, 1)
    with pytest.raises(ConfigError, match="'x' of model 'm' must be > 0"):
        check_range("m", "x", 0, 0, strict_low=True)
    with pytest.raises(ConfigError, match="<= 1"):
        check_range("m", "y", 2.0, 0.0, 1.0)
    with pytest.raises(ConfigError, match="'z'"):
        check_range("m", "z", float("nan"), 0.0)


def test_device_choice() -> None:
    assert pick_device("m", "cpu").type == "cpu"
    assert pick_device("m", "auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ConfigError, match="device"):
        pick_device("m", "not-a-device")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no GPU"):
            pick_device("m", "cuda")


def test_thread_count_from_config_or_the_process_settings() -> None:
    before = process_settings()
    try:
        use_settings(load_settings(env={"SHOPREC_TORCH_THREADS": "3"}))
        assert thread_count(2) == 2
        assert thread_count(0) == 3
        use_settings(load_settings(env={}))
        assert thread_count(0) == 0
    finally:
        use_settings(before)


def test_torch_session_is_seeded_and_leaves_global_state_alone() -> None:
    before = torch.get_rng_state()
    threads = torch.get_num_threads()
    with torch_session(4, torch.device("cpu"), num_threads=1) as gen:
        a = torch.rand(3), torch.rand(3, generator=gen)
        assert torch.get_num_threads() == 1
    with torch_session(4, torch.device("cpu")) as gen:
        b = torch.rand(3), torch.rand(3, generator=gen)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert torch.equal(torch.get_rng_state(), before)
    assert torch.get_num_threads() == threads


def test_module_state_round_trip() -> None:
    src, dst = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    arrays = module_state(src)
    assert all(isinstance(v, np.ndarray) for v in arrays.values())
    load_module_state(dst, arrays)
    assert torch.equal(src.weight, dst.weight) and torch.equal(src.bias, dst.bias)


# ----------------------------------------------------------------------------- the epoch loop
class Scripted(Recommender):
    """A fake model whose predictions follow a script of per-epoch errors."""

    name = "scripted"
    Config = dict

    def __init__(self, errors: Sequence[float]) -> None:
        super().__init__({})
        self.errors, self.error = list(errors), 0.0

    def _fit(self, train, catalog, validation) -> None:  # pragma: no cover - not used
        raise NotImplementedError

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        return np.full(len(users), self.error)

    def _score(self, queries: Sequence[Query]) -> np.ndarray:  # pragma: no cover - not used
        raise NotImplementedError

    def _state(self) -> dict[str, np.ndarray]:  # pragma: no cover - not used
        return {}

    def _set_state(self, arrays, meta) -> None:  # pragma: no cover - not used
        pass


def run_script(errors: Sequence[float], patience: int, **kw):
    model = Scripted(errors)
    val = RatingValidation(np.zeros(1, dtype=np.int64), np.zeros(1, dtype=np.int64), np.zeros(1))

    def epoch(e: int) -> float:
        model.error = model.errors[e - 1]
        return 1.0 / e

    outcome = train_epochs(model, epochs=len(errors), train_epoch=epoch, validation=val, patience=patience,
                           snapshot=lambda: model.error, restore=lambda s: setattr(model, "error", s), **kw)
    return model, outcome


def test_early_stopping_stops_and_restores_best() -> None:
    model, outcome = run_script([0.9, 0.5, 0.7, 0.6, 0.8, 0.1], patience=3)
    assert (outcome.best_epoch, outcome.epochs_run, outcome.metric) == (2, 5, "RMSE")
    assert model.error == 0.5 and outcome.best_value == pytest.approx(0.5)
    assert [e["epoch"] for e in model.training_log] == [1, 2, 3, 4, 5]
    assert model.training_log[0]["loss"] == 1.0 and "RMSE" in model.training_log[0]


def test_patience_zero_runs_every_epoch_and_evaluate_at_selects_epochs() -> None:
    model, outcome = run_script([0.9, 0.5, 0.7, 0.6, 0.8, 0.1], patience=0, evaluate_at=lambda e: e % 2 == 0)
    assert outcome.epochs_run == 6 and outcome.best_epoch == 6
    assert [e["epoch"] for e in model.training_log if "RMSE" in e] == [2, 4, 6]


def test_without_validation_the_last_epoch_counts() -> None:
    model = Scripted([0.0])
    outcome = train_epochs(model, epochs=3, train_epoch=lambda e: 0.0)
    assert (outcome.best_epoch, outcome.epochs_run, outcome.best_value) == (3, 3, None)
    assert len(model.training_log) == 3
