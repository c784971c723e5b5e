"""The transformer's data-adaptive context (max_len="auto"): the rule, the resolved length used for training,
scoring and the saved model, what a carried or fine-tuned model inherits, older artifacts, and the serving
history that feeds it."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_transformer import cluster_data, cyclic_data

from shoprec.data import Interactions
from shoprec.data.splits import leave_one_out, temporal
from shoprec.errors import ConfigError
from shoprec.models import load_model
from shoprec.models.base import Query
from shoprec.models.factory import ModelFactory
from shoprec.models.transformer import Transformer, TransformerConfig, build_sequences
from shoprec.models.transformer.config import AUTO_MAX_LEN_MAX, AUTO_MAX_LEN_MIN, auto_max_len
from shoprec.models.transformer.optim import checkpoint_fingerprint
from shoprec.models.transformer.pretrain import network_params
from shoprec.settings import ServingConfig

FAST: dict[str, Any] = {"ensemble": 1, "embedding_size": 16, "n_blocks": 1, "n_heads": 2, "ffn_size": 32,
                        "dropout": 0.1, "attention_dropout": 0.0, "batch_size": 64, "learning_rate": 5e-3,
                        "use_text": False, "progress": False, "num_threads": 1, "epochs": 2}


def long_data(n_users: int = 60, length: int = 90) -> Interactions:
    """Cyclic walks of `length` events per user: auto_max_len gives 100."""
    return cyclic_data(n_users=n_users, length=length)


# ------------------------------------------------------------------------ the rule
def test_the_default_context_is_auto_within_50_to_200() -> None:
    assert TransformerConfig().max_len == "auto"
    assert (AUTO_MAX_LEN_MIN, AUTO_MAX_LEN_MAX) == (50, 200)


@pytest.mark.parametrize(("lengths", "expected"), [
    ([5] * 95 + [400] * 5, 50),  # short histories (Beauty, Scientific): a few long ones do not count
    ([30] * 80 + [120] * 20, 150),  # 20% of the users above 100 events: the 90% quantile is 120 -> 150
    ([100] * 100, 100),  # exactly a multiple of 50
    ([101] * 100, 150),  # one above: the next multiple
    ([60] * 50 + [300] * 50, 200),  # long histories (Online Retail): the cap
    ([5000] * 10, 200),
    ([], 50),  # no user
    ([0, 0, 0, 70], 100),  # users without an event are not counted
])
def test_auto_max_len_holds_90_percent_of_the_histories_in_steps_of_50(lengths: list[int], expected: int) -> None:
    assert auto_max_len(np.array(lengths, dtype=np.int64)) == expected


def test_auto_max_len_holds_the_whole_history_of_nine_users_in_ten() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        lengths = rng.geometric(1 / rng.uniform(2, 150), size=int(rng.integers(10, 500)))
        got = auto_max_len(lengths)
        assert AUTO_MAX_LEN_MIN <= got <= AUTO_MAX_LEN_MAX and got % 50 == 0
        if AUTO_MAX_LEN_MIN < got < AUTO_MAX_LEN_MAX:  # not clamped: the shortest multiple of 50 that holds 90%
            assert (lengths <= got).mean() >= 0.9 and (lengths <= got - 50).mean() < 0.9


def test_max_len_accepts_auto_or_a_positive_integer_by_name() -> None:
    assert ModelFactory("transformer", {"max_len": "auto"})().config.max_len == "auto"
    assert ModelFactory("transformer", {"max_len": 30})().config.max_len == 30
    for bad in ("long", True, 2.5, [50]):
        with pytest.raises(ConfigError, match="max_len"):
            ModelFactory("transformer", {"max_len": bad})
    for bad_int in (0, -3):
        with pytest.raises(ConfigError, match=r"'max_len'.*positive"):
            ModelFactory("transformer", {"max_len": bad_int})
    assert TransformerConfig(max_len=30).resolved_max_len(np.array([500] * 10)) == 30  # a number is kept


# ------------------------------------------------------------------------ fitting, scoring, saving
def test_auto_fit_reads_the_resolved_context_and_saves_it(tmp_path: Path) -> None:
    data = long_data()
    model = Transformer.from_dict({**FAST, "max_len": "auto"}).fit(data)
    assert model.max_len == 100 and model.config.max_len == "auto"
    assert {e["max_len"] for e in model.training_log} == {100}  # in every epoch of the log, as the epochs are
    assert model.net is not None and model.net.position is not None
    assert model.net.position.weight.shape[0] == 100
    history = data.to_sequences()[0]  # 90 events
    changed = history.copy()
    changed[0] = (changed[0] + 7) % data.n_items  # the oldest event: 90 positions back, inside a context of 100
    scores = model.score([Query(history=history), Query(history=changed)])
    assert not np.allclose(scores[0], scores[1]), "an event 90 positions back must count with a context of 100"
    fixed = Transformer.from_dict({**FAST, "max_len": 50}).fit(data)
    assert fixed.max_len == 50
    scores = fixed.score([Query(history=history), Query(history=changed)])
    np.testing.assert_allclose(scores[0], scores[1], rtol=1e-6, atol=1e-6)  # beyond a context of 50: not read
    model.save(tmp_path / "m")
    assert json.loads((tmp_path / "m" / "meta.json").read_text())["model_meta"]["max_len"] == 100
    loaded = load_model(tmp_path / "m")
    assert isinstance(loaded, Transformer)
    assert loaded.max_len == 100 and loaded.config.max_len == "auto"  # the config as given, the length resolved
    q = [Query(history=history), Query(history=changed)]
    np.testing.assert_allclose(loaded.score(q), model.score(q), rtol=1e-5, atol=1e-5)


def test_the_deployment_caps_the_auto_context() -> None:
    lengths = np.array([150] * 10)
    assert TransformerConfig().resolved_max_len(lengths) == 150
    assert TransformerConfig().resolved_max_len(lengths, cap=64) == 64
    assert TransformerConfig(max_len=100).resolved_max_len(lengths, cap=64) == 100  # a number: checked at submit
    model = Transformer.from_dict({**FAST, "max_len": "auto", "max_context": 30}).fit(long_data())
    assert model.max_len == 30 and model.net is not None and model.net.position is not None
    assert model.net.position.weight.shape[0] == 30
    # a start model reading more than the cap is refused, not cut (its position table is copied)
    source = Transformer.from_dict({**FAST, "max_len": "auto"}).fit(long_data())
    tuned = Transformer.from_dict({**FAST, "max_len": "auto", "max_context": 64}).start_from(source, "long")
    with pytest.raises(ConfigError, match=r"reads 100 events.*limit of 64 \(setting limits.max_len\)"):
        tuned.fit(long_data())


def test_a_model_saved_before_auto_loads_with_the_length_of_its_config(tmp_path: Path) -> None:
    data = cyclic_data()
    model = Transformer.from_dict({**FAST, "max_len": 10}).fit(data)
    model.save(tmp_path / "old")
    meta_file = tmp_path / "old" / "meta.json"
    meta = json.loads(meta_file.read_text())
    del meta["model_meta"]["max_len"]  # as written before max_len "auto"
    meta_file.write_text(json.dumps(meta))
    loaded = load_model(tmp_path / "old")
    assert isinstance(loaded, Transformer) and loaded.max_len == 10
    q = [Query(history=s) for s in data.to_sequences()[:5]]
    np.testing.assert_allclose(loaded.score(q), model.score(q), rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------------ carried over and fine-tuned
def test_a_model_started_from_another_takes_its_context() -> None:
    data, catalog, _ = cluster_data(n_users=60, length=90)
    source = Transformer.from_dict({**FAST, "max_len": "auto"}).fit(data, catalog)
    assert source.max_len == 100
    assert network_params(source)["max_len"] == 100  # what a pre-trained directory and a fine-tune inherit
    short, short_catalog, _ = cluster_data(n_users=60, length=8)  # alone it would resolve to 50
    tuned = Transformer.from_dict({**FAST, "max_len": "auto"}).start_from(source, "long").fit(short, short_catalog)
    assert tuned.max_len == 100
    assert "position.weight" in tuned.initialised_from["copied"]
    carried = Transformer.from_dict({**FAST, "max_len": "auto"}).start_from(source, "long", zero_shot=True)
    carried.fit(short, short_catalog)
    assert carried.max_len == 100 and carried.initialised_from["zero_shot"]
    other = Transformer.from_dict({**FAST, "max_len": 50}).start_from(source, "long", zero_shot=True)
    with pytest.raises(ConfigError, match=r"max_len = 50 \(the start model's: 100\)"):
        other.fit(short, short_catalog)
    # fine-tuning with another fixed length is refused too (its position table would start fresh)
    fixed = Transformer.from_dict({**FAST, "max_len": 50}).start_from(source, "long")
    with pytest.raises(ConfigError, match=r"'max_len'.*start model long \(100\).*got 50"):
        fixed.fit(short, short_catalog)
    assert fixed.fitted is None


# ------------------------------------------------------------------------ checkpoints of ensemble members
def test_a_one_member_run_resumes_into_the_same_member_of_an_ensemble(tmp_path: Path,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    data = cyclic_data()
    params = {**FAST, "max_len": 10, "epochs": 3}
    alone = Transformer.from_dict({**params, "seed": 1, "checkpoint_dir": str(tmp_path / "member-1")}).fit(data)
    with caplog.at_level(logging.INFO, logger="shoprec"):
        both = Transformer.from_dict({**params, "ensemble": 2, "checkpoint_dir": str(tmp_path)}).fit(data)
    assert any("resumed from" in r.getMessage() and "member-1" in r.getMessage() for r in caplog.records)
    assert not any("resumed from" in r.getMessage() and "member-0" in r.getMessage() for r in caplog.records)
    assert both.fitted is not None and alone.net is not None
    member = both.fitted.members[1].net
    for (name, mine), theirs in zip(member.state_dict().items(), alone.net.state_dict().values(), strict=True):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy(), err_msg=name)


def test_the_checkpoint_fingerprint_counts_the_torchrun_processes() -> None:
    data = cyclic_data()
    model = Transformer.from_dict({**FAST, "max_len": 10})
    cfg, opts = model.config, model.options
    one = checkpoint_fingerprint(cfg, opts, data)
    # computed by the code of e1b6d35, before text_affinity, copied_lr_ratio and the process count: a checkpoint
    # written then still resumes; those parameters count only away from their defaults
    assert one == "4467fd1a591fb06deb33b4c5b5870e02bc9724b76651ec02f4989aa6397e7c2b"
    assert checkpoint_fingerprint(dataclasses.replace(cfg, text_affinity=None), opts, data) == one
    assert checkpoint_fingerprint(dataclasses.replace(cfg, text_affinity=4.0), opts, data) != one
    assert checkpoint_fingerprint(dataclasses.replace(cfg, copied_lr_ratio=0.5), opts, data) != one
    assert checkpoint_fingerprint(cfg, opts, data, world=1) == one  # single-process checkpoints still resume
    assert checkpoint_fingerprint(cfg, opts, data, world=2) != one  # another epoch length, other batches
    assert checkpoint_fingerprint(cfg, opts, data, world=2) != checkpoint_fingerprint(cfg, opts, data, world=4)


# ------------------------------------------------------------------------ serving feeds the whole context
def test_serving_passes_at_least_the_longest_auto_context() -> None:
    assert ServingConfig().history_length >= AUTO_MAX_LEN_MAX


def test_serving_warns_when_it_passes_less_history_than_the_model_reads(caplog: pytest.LogCaptureFixture) -> None:
    from shoprec.service.served import ServedModels

    model = Transformer.from_dict({**FAST, "max_len": 10}).fit(cyclic_data())
    with caplog.at_level(logging.WARNING, logger="shoprec"):
        ServedModels(store=None, poll_s=1.0, history_length=10)._serve("m1", "transformer", model, "")  # type: ignore[arg-type]
    assert not [r for r in caplog.records if "history_length" in r.getMessage()]
    with caplog.at_level(logging.WARNING, logger="shoprec"):
        ServedModels(store=None, poll_s=1.0, history_length=5)._serve("m1", "transformer", model, "")  # type: ignore[arg-type]
    warned = [r.getMessage() for r in caplog.records if "history_length" in r.getMessage()]
    assert warned and "m1" in warned[0] and "up to 10 events" in warned[0] and "passes 5" in warned[0]


# ------------------------------------------------------------------------ the real shops
@pytest.mark.realdata
@pytest.mark.parametrize(("dataset", "expected"), [("beauty", 50), ("scientific", 50), ("online-retail", 200)])
def test_the_real_shops_resolve_to_the_measured_contexts(shared_data: Path, dataset: str, expected: int) -> None:
    from shoprec import datasets

    fmt, path, split = {
        "beauty": ("s3rec", shared_data / "amazon-beauty" / "Beauty.txt", "loo"),
        "scientific": ("amazon-json", shared_data / "amazon-scientific", "loo"),
        "online-retail": ("online-retail", shared_data / "online-retail" / "online_retail.csv.gz", "temporal"),
    }[dataset]
    if not path.exists():
        pytest.skip(f"{path} not found")
    data = datasets.load(fmt, str(path)).interactions
    train = leave_one_out(data).train if split == "loo" else temporal(data, "2011-11-01").train
    lengths = np.diff(build_sequences(train).offsets)
    assert TransformerConfig().resolved_max_len(lengths) == expected

