"""`shoprec evaluate` and `shoprec compare` on in-memory datasets (the loader is replaced in the tests)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
from click.testing import CliRunner
from evalhelpers import random_data

from shoprec.cli import evaluate as cli_mod
from shoprec.data import IdMap, Interactions
from shoprec.errors import ConfigError
from shoprec.evaluation.offline import dataset_folds


@pytest.fixture
def dataset(monkeypatch):
    ns = SimpleNamespace(interactions=random_data(n_users=80, n_items=40, n_events=1200, seed=11), catalog=None)
    calls = []

    def fake_load(fmt, path):
        calls.append((fmt, path))
        return ns

    monkeypatch.setattr(cli_mod, "load_dataset", fake_load)
    ns.calls = calls
    return ns


def invoke(args):
    return CliRunner().invoke(cli_mod.evaluate, args, catch_exceptions=True)


def test_evaluate_prints_json_summary_on_stdout_and_writes_full_json(dataset, tmp_path):
    out = tmp_path / "a.json"
    res = invoke(["--data", "mem:somewhere", "--protocol", "loo", "--model", "popular", "--k", "5,10",
                  "--json", str(out), "--plot", str(tmp_path / "plots")])
    assert res.exit_code == 0, res.output
    assert dataset.calls == [("mem", "somewhere")]
    summary = json.loads(res.stdout)
    for key in ("model", "config", "dataset", "protocol", "n_users_evaluated", "metrics", "fit_seconds",
                "eval_seconds"):
        assert key in summary
    assert "per_user" not in summary
    assert set(summary["metrics"]) >= {"HR@5", "NDCG@5", "HR@10", "NDCG@10", "MRR"}
    assert summary["config"] == {"weighted": False, "per_category": False, "recent_days": 0.0}
    full = json.loads(out.read_text())
    assert len(full["per_user"]["keys"]) == full["n_users_evaluated"] == len(full["per_user"]["values"]["HR@10"])
    assert (tmp_path / "plots" / "metrics.png").stat().st_size > 0
    assert "popular on mem:somewhere" in res.stderr


def test_keep_seen_and_config_change_the_result(dataset, tmp_path):
    strict = json.loads(invoke(["--data", "m:p", "--protocol", "loo", "--model", "popular"]).stdout)
    keep = json.loads(invoke(["--data", "m:p", "--protocol", "loo", "--model", "popular", "--keep-seen"]).stdout)
    assert strict["settings"]["exclude_seen"] is True and keep["settings"]["exclude_seen"] is False
    assert strict["metrics"]["HR@10"] != keep["metrics"]["HR@10"]
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"recent_days": 0.01}))
    args = ["--data", "m:p", "--protocol", "loo", "--model", "popular", "--config", str(cfg)]
    recent = json.loads(invoke(args).stdout)
    assert recent["config"]["recent_days"] == 0.01


def test_bad_inputs_fail_with_clear_errors(dataset):
    res = invoke(["--data", "nocolon", "--protocol", "loo", "--model", "popular"])
    assert res.exit_code != 0 and "FORMAT:PATH" in res.output
    res = invoke(["--data", "m:p", "--protocol", "loo", "--model", "popular", "--config", '{"bogus": 1}'])
    assert isinstance(res.exception, ConfigError) and "bogus" in str(res.exception)
    res = invoke(["--data", "m:p", "--protocol", "loo", "--model", "nosuchmodel"])
    assert res.exit_code == 2 and "nosuchmodel" in res.output and "itemknn" in res.output  # the valid names
    res = invoke(["--data", "m:p", "--protocol", "kfold", "--model", "popular"])
    assert isinstance(res.exception, ConfigError) and "does not predict" in str(res.exception)
    res = invoke(["--data", "m:p", "--protocol", "temporal", "--model", "popular"])
    assert isinstance(res.exception, ConfigError) and "cut-off" in str(res.exception)
    res = invoke(["--data", "m:p", "--protocol", "loo", "--model", "popular", "--k", "0"])
    assert res.exit_code != 0 and "positive" in res.output
    assert dataset.calls == []  # nothing was loaded for a bad command line


def test_compare_two_runs(dataset, tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    assert invoke(["--data", "m:p", "--protocol", "loo", "--model", "popular", "--json", str(a)]).exit_code == 0
    assert invoke(["--data", "m:p", "--protocol", "loo", "--model", "popular", "--keep-seen",
                   "--json", str(b)]).exit_code == 0
    res = CliRunner().invoke(cli_mod.compare, [str(a), str(b), "--n-boot", "200"])
    assert res.exit_code == 0, res.output
    assert "HR@10" in res.stdout and "95% CI" in res.stdout
    res = CliRunner().invoke(cli_mod.compare, [str(a), str(b), "--n-boot", "200", "--json"])
    doc = json.loads(res.stdout)
    ha, hb = json.loads(a.read_text())["metrics"]["HR@10"], json.loads(b.read_text())["metrics"]["HR@10"]
    assert doc["metrics"]["HR@10"]["diff"] == pytest.approx(hb - ha)
    assert doc["n_paired"] == json.loads(a.read_text())["n_users_evaluated"]


def test_official_folds_from_dataset_folds(monkeypatch):
    rng = np.random.default_rng(0)
    users, items = IdMap(f"u{i}" for i in range(20)), IdMap(f"i{i}" for i in range(15))

    def part(n):
        return Interactions(user=rng.integers(0, 20, n), item=rng.integers(0, 15, n), users=users, items=items,
                            value=rng.integers(1, 6, n).astype(np.float32))

    folds = [(part(200), part(50)), (part(200), part(50))]
    ns = SimpleNamespace(interactions=part(250), catalog=None, folds=folds)
    assert [f.name for f in dataset_folds(ns)] == ["u1", "u2"]
    ns_named = SimpleNamespace(folds={"u3": folds[0]})
    assert [f.name for f in dataset_folds(ns_named)] == ["u3"]
    with pytest.raises(Exception, match="pair of Interactions"):
        dataset_folds(SimpleNamespace(folds=[("x", "y")]))
