"""Reports and paired bootstrap comparison."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from shoprec.errors import DataError
from shoprec.evaluation.compare import compare, render_comparison
from shoprec.evaluation.report import clean_json, read_json, write_json


def run(hr: np.ndarray, keys: list[str] | None = None, protocol: str = "loo", dataset: str = "d") -> dict:
    keys = keys if keys is not None else [f"u{i}" for i in range(len(hr))]
    return {"model": "m", "protocol": protocol, "dataset": dataset,
            "metrics": {"HR@10": float(np.mean(hr)), "Coverage@10": 0.5},
            "per_user": {"keys": keys, "values": {"HR@10": hr.tolist()}}}


def test_identical_runs_differ_by_zero_with_p_one():
    hr = (np.random.default_rng(0).random(300) < 0.3).astype(float)
    cmp = compare(run(hr), run(hr), n_boot=200, seed=1)
    row = next(r for r in cmp.rows if r.metric == "HR@10")
    assert row.diff == 0.0 and row.ci_low == 0.0 and row.ci_high == 0.0 and row.p_value == 1.0
    assert cmp.n_paired == 300


def test_clear_improvement_is_significant_and_the_interval_contains_the_difference():
    rng = np.random.default_rng(2)
    a = (rng.random(500) < 0.2).astype(float)
    b = np.maximum(a, (rng.random(500) < 0.3).astype(float))  # b hits wherever a does, and more
    cmp = compare(run(a), run(b), n_boot=500, seed=0)
    row = next(r for r in cmp.rows if r.metric == "HR@10")
    assert row.diff == pytest.approx(b.mean() - a.mean())
    assert 0 < row.ci_low <= row.diff <= row.ci_high
    assert row.p_value < 0.01
    cov = next(r for r in cmp.rows if r.metric == "Coverage@10")
    assert cov.diff == 0.0 and cov.ci_low is None  # no per-user values: no interval


def test_small_noisy_difference_is_not_significant_and_seed_reproduces():
    rng = np.random.default_rng(3)
    a = (rng.random(200) < 0.3).astype(float)
    b = a.copy()
    b[0] = 1.0 - b[0]
    first = compare(run(a), run(b), n_boot=300, seed=5)
    again = compare(run(a), run(b), n_boot=300, seed=5)
    assert first.rows == again.rows
    row = next(r for r in first.rows if r.metric == "HR@10")
    assert row.p_value > 0.05 and row.ci_low <= 0 <= row.ci_high


def test_pairing_uses_unit_keys_not_positions():
    hr = np.array([1.0, 0.0, 0.0, 1.0, 0.0])
    keys = [f"u{i}" for i in range(5)]
    perm = [3, 1, 4, 0, 2]
    shuffled = run(hr[perm], [keys[i] for i in perm])
    extra = run(np.append(hr, 1.0), [*keys, "only_b"])
    cmp = compare(run(hr), shuffled, n_boot=100)
    assert next(r for r in cmp.rows if r.metric == "HR@10").ci_high == 0.0
    cmp = compare(run(hr), extra, n_boot=100)
    assert cmp.n_paired == 5 and cmp.only_b == 1
    assert next(r for r in cmp.rows if r.metric == "HR@10").diff == 0.0


def test_rating_runs_compare_pooled_rmse():
    keys = ["1:a", "1:b", "2:a"]
    a = {"model": "x", "protocol": "kfold", "metrics": {"RMSE": 1.0, "MAE": 1.0},
         "per_user": {"keys": keys, "values": {"SE": [4.0, 1.0, 4.0], "AE": [2.0, 1.0, 2.0], "n": [1, 1, 1]}}}
    b = {"model": "y", "protocol": "kfold", "metrics": {"RMSE": 1.0, "MAE": 1.0},
         "per_user": {"keys": keys, "values": {"SE": [1.0, 1.0, 1.0], "AE": [1.0, 1.0, 1.0], "n": [1, 1, 1]}}}
    cmp = compare(a, b, n_boot=200)
    rmse = next(r for r in cmp.rows if r.metric == "RMSE")
    assert rmse.a == pytest.approx(math.sqrt(3.0)) and rmse.b == pytest.approx(1.0)
    assert rmse.diff == pytest.approx(1.0 - math.sqrt(3.0))
    assert "pooled" in render_comparison(cmp)


def test_compare_refuses_different_protocols_and_disjoint_users():
    hr = np.ones(4)
    with pytest.raises(DataError, match="protocol"):
        compare(run(hr), run(hr, protocol="temporal"))
    with pytest.raises(DataError, match="in common"):
        compare(run(hr), run(hr, keys=["x", "y", "z", "w"]))


def test_json_round_trip_and_validation(tmp_path):
    doc = clean_json({"model": "m", "protocol": "loo", "metrics": {"HR@10": np.float32(0.5), "x": float("nan")},
                      "per_user": {"keys": ["a"], "values": {"HR@10": np.array([1.0])}}})
    path = write_json(doc, tmp_path / "out" / "r.json")
    back = read_json(path)
    assert back["metrics"] == {"HR@10": 0.5, "x": None}
    (tmp_path / "bad.json").write_text(json.dumps({"model": "m"}))
    with pytest.raises(DataError, match="missing key"):
        read_json(tmp_path / "bad.json")
    (tmp_path / "ragged.json").write_text(json.dumps(
        {"model": "m", "protocol": "loo", "metrics": {}, "per_user": {"keys": ["a"], "values": {"HR@10": [1, 0]}}}))
    with pytest.raises(DataError, match="2 entries for 1 keys"):
        read_json(tmp_path / "ragged.json")
    with pytest.raises(DataError, match="no such file"):
        read_json(tmp_path / "missing.json")
