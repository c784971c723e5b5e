"""The transformer's size-adaptive schedule (epochs="auto"): the rule, an explicit `epochs` overriding it, and
the resolved epoch count recorded in the training log and the saved model."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_transformer import cyclic_data

from shoprec.data.splits import leave_one_out
from shoprec.errors import ConfigError
from shoprec.models import load_model
from shoprec.models.base import Query, RankingValidation
from shoprec.models.factory import ModelFactory
from shoprec.models.transformer import Transformer, TransformerConfig, build_sequences, training_windows
from shoprec.models.transformer.config import AUTO_EPOCHS_MAX, AUTO_EPOCHS_MIN, auto_epochs

FAST: dict[str, Any] = {"ensemble": 1, "embedding_size": 16, "n_blocks": 1, "n_heads": 2, "ffn_size": 32,
                        "max_len": 10, "dropout": 0.1, "attention_dropout": 0.0, "batch_size": 64,
                        "learning_rate": 5e-3, "use_text": False, "progress": False, "num_threads": 1}


# ------------------------------------------------------------------------ the rule
def test_the_default_schedule_is_auto_over_3500_steps() -> None:
    cfg = TransformerConfig()
    assert cfg.epochs == "auto" and cfg.schedule_steps == 3500
    assert (AUTO_EPOCHS_MIN, AUTO_EPOCHS_MAX) == (20, 100)


@pytest.mark.parametrize(("steps_per_epoch", "epochs"), [
    (176, 20),  # Beauty (strict leave-one-out training set: 22,512 windows / 128): its 20 epochs, as before
    (175, 20),  # 3500 / 175 = 20 exactly
    (174, 21),  # one step fewer an epoch: one epoch more
    (1000, 20),  # a larger shop never trains fewer than 20 epochs
    (66, 54),  # Online Retail, temporal (8,419 windows)
    (65, 54),  # Amazon Scientific, leave-one-out (8,320 windows)
    (35, 100),  # 3500 / 35 = 100: the most
    (1, 100),  # a tiny shop: capped
    (0, 100),  # no steps (cannot happen in a fit): capped, no division by zero
])
def test_auto_epochs_spans_about_schedule_steps_within_20_to_100(steps_per_epoch: int, epochs: int) -> None:
    assert auto_epochs(3500, steps_per_epoch) == epochs


def test_auto_epochs_covers_the_steps_it_is_asked_for() -> None:
    for steps in range(1, 400):
        epochs = auto_epochs(3500, steps)
        assert AUTO_EPOCHS_MIN <= epochs <= AUTO_EPOCHS_MAX
        if AUTO_EPOCHS_MIN < epochs < AUTO_EPOCHS_MAX:  # not clamped: the fewest epochs covering 3500 steps
            assert (epochs - 1) * steps < 3500 <= epochs * steps


def test_resolved_epochs_counts_one_process_steps_of_batch_size() -> None:
    cfg = TransformerConfig(batch_size=128)
    assert cfg.resolved_epochs(22_512) == 20  # ceil(22,512 / 128) = 176 steps
    assert cfg.resolved_epochs(8_419) == 54  # 66 steps
    assert TransformerConfig(batch_size=64).resolved_epochs(8_419) == 27  # 132 steps
    assert TransformerConfig(schedule_steps=7000).resolved_epochs(22_512) == 40


def test_explicit_epochs_override_the_rule() -> None:
    for n_windows in (10, 8_419, 22_512, 1_000_000):
        assert TransformerConfig(epochs=20).resolved_epochs(n_windows) == 20
        assert TransformerConfig(epochs=7, schedule_steps=10).resolved_epochs(n_windows) == 7


def test_patience_grows_with_the_auto_schedule_and_is_kept_with_explicit_epochs() -> None:
    cfg = TransformerConfig()
    assert cfg.resolved_patience(cfg.resolved_epochs(22_512)) == 2  # Beauty: 20 epochs, patience 2 as before
    assert cfg.resolved_patience(cfg.resolved_epochs(8_419)) == 6  # Online Retail: 54 epochs, ceil(2 * 54 / 20)
    assert cfg.resolved_patience(100) == 10
    assert TransformerConfig(patience=0).resolved_patience(54) == 0
    assert TransformerConfig(epochs=54).resolved_patience(54) == 2  # an explicit schedule keeps its patience
    assert TransformerConfig(epochs=60, patience=4).resolved_patience(60) == 4


# ------------------------------------------------------------------------ validation (config dicts, CLI --config)
def test_epochs_accepts_auto_or_a_positive_integer_by_name() -> None:
    assert ModelFactory("transformer", {"epochs": "auto"})().config.epochs == "auto"
    assert ModelFactory("transformer", {"epochs": 30})().config.epochs == 30
    assert ModelFactory("transformer", {"epochs": 30.0})().config.epochs == 30
    for bad in ("thirty", "", True, 2.5, [20]):
        with pytest.raises(ConfigError, match="epochs"):
            ModelFactory("transformer", {"epochs": bad})
    for bad_int in (0, -3):
        with pytest.raises(ConfigError, match=r"'epochs'.*positive"):
            ModelFactory("transformer", {"epochs": bad_int})
    with pytest.raises(ConfigError, match="'epochs'"):
        TransformerConfig(epochs="Auto")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"'schedule_steps'.*positive"):
        ModelFactory("transformer", {"schedule_steps": 0})


# ------------------------------------------------------------------------ fitting: the resolved value is used and saved
def test_auto_fit_trains_the_resolved_epochs_and_saves_them(tmp_path: Path) -> None:
    data = cyclic_data()  # 200 windows: ceil(200 / 64) = 4 steps an epoch
    model = Transformer.from_dict({**FAST, "schedule_steps": 100}).fit(data)  # ceil(100 / 4) = 25 epochs
    assert model.epochs == 25
    assert [e["epoch"] for e in model.training_log] == list(range(1, 26))
    assert {e["epochs"] for e in model.training_log} == {25}
    assert {e["patience"] for e in model.training_log} == {3}  # ceil(2 * 25 / 20)
    # the cosine schedule spans the resolved epochs: the last epoch ends near learning_rate * min_lr_ratio
    lr, floor = FAST["learning_rate"], FAST["learning_rate"] * TransformerConfig().min_lr_ratio
    assert floor <= model.training_log[-1]["learning_rate"] < floor + 0.02 * lr
    assert model.training_log[11]["learning_rate"] > 0.5 * lr  # half way: not decayed as a 20-epoch one would be
    model.save(tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert isinstance(loaded, Transformer)
    assert loaded.epochs == 25 and loaded.config.epochs == "auto"  # the config as given, the count resolved


def test_explicit_epochs_fit_ignores_the_data_size(tmp_path: Path) -> None:
    model = Transformer.from_dict({**FAST, "epochs": 3, "schedule_steps": 100}).fit(cyclic_data())
    assert model.epochs == 3 and len(model.training_log) == 3 and model.training_log[-1]["epochs"] == 3
    assert model.training_log[-1]["patience"] == 2
    model.save(tmp_path / "m")
    assert load_model(tmp_path / "m").epochs == 3  # type: ignore[attr-defined]


def test_the_deployment_caps_what_auto_resolves_to_not_a_number_given() -> None:
    cfg = TransformerConfig(schedule_steps=100)
    assert cfg.resolved_epochs(200 * 64, cap=0) == 20  # no cap: the rule's minimum
    assert cfg.resolved_epochs(200 * 64, cap=12) == 12
    assert TransformerConfig(epochs=40).resolved_epochs(200 * 64, cap=12) == 40  # a number: checked at submit
    model = Transformer.from_dict({**FAST, "schedule_steps": 100, "max_epochs": 6}).fit(cyclic_data())
    assert model.epochs == 6 and len(model.training_log) == 6  # the rule alone: 25 epochs
    assert model.training_log[-1]["patience"] == 1  # scaled with the capped schedule: ceil(2 * 6 / 20)
    with pytest.raises(ConfigError, match="max_epochs"):
        Transformer.from_dict({**FAST, "max_epochs": -1})


def test_a_tiny_shop_gets_the_most_epochs_and_early_stopping_still_ends_it() -> None:
    data = cyclic_data(n_users=40)  # 1 step an epoch: auto gives the cap, 100 epochs
    seqs = data.to_sequences()
    order, bounds = data.sequence_rows()
    keep = np.ones(len(data), dtype=bool)
    keep[order[bounds[1:] - 1]] = False  # each user's last event: a validation target
    validation = RankingValidation([Query(user=u, history=s[:-1]) for u, s in enumerate(seqs)],
                                   np.array([s[-1] for s in seqs]), exclude=[s[:-1] for s in seqs])
    model = Transformer.from_dict({**FAST, "eval_every": 1, "patience": 0}).fit(data.subset(keep),
                                                                                validation=validation)
    assert model.epochs == AUTO_EPOCHS_MAX
    assert len(model.training_log) < AUTO_EPOCHS_MAX  # stopped at the first validation without improvement


# ------------------------------------------------------------------------ Beauty keeps its 20 epochs (real data)
@pytest.mark.slow
def test_beauty_keeps_its_20_epochs(shared_data: Path) -> None:
    from shoprec import datasets

    path = shared_data / "amazon-beauty" / "Beauty.txt"
    if not path.exists():
        pytest.skip(f"{path} not found")
    train = leave_one_out(datasets.load("s3rec", str(path)).interactions).train  # what `evaluate --protocol loo` fits
    seqs = build_sequences(train)
    max_len = TransformerConfig().resolved_max_len(np.diff(seqs.offsets))
    assert max_len == 50  # max_len "auto": Beauty's short histories keep the context of 50
    windows = training_windows(seqs, max_len)
    assert math.ceil(len(windows) / 128) == 176
    assert TransformerConfig().resolved_epochs(len(windows)) == 20
