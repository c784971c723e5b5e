"""`evaluate --json` / `--output` and the old `--json FILE`; `compare` at its p-value floor (issue 21)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
from click.testing import CliRunner
from evalhelpers import random_data

from shoprec.cli import evaluate as cli_mod
from shoprec.evaluation.compare import compare, render_comparison


@pytest.fixture
def dataset(monkeypatch):
    ns = SimpleNamespace(interactions=random_data(n_users=60, n_items=30, n_events=800, seed=3), catalog=None)
    monkeypatch.setattr(cli_mod, "load_dataset", lambda fmt, path: ns)
    return ns


def invoke(args):
    return CliRunner().invoke(cli_mod.evaluate, ["--data", "m:p", "--protocol", "loo", "-m", "Popular", *args],
                              catch_exceptions=True)


def test_json_is_stdout_output_is_a_file_and_the_old_spelling_still_works(dataset, tmp_path):
    printed = invoke(["--json"])
    assert printed.exit_code == 0, printed.output
    full = json.loads(printed.stdout)
    assert "per_user" in full and full["model"] == "popular"  # --json: the full result on stdout
    out = tmp_path / "run.json"
    written = invoke(["--output", str(out)])
    assert written.exit_code == 0, written.output
    assert "per_user" in json.loads(out.read_text()) and "per_user" not in json.loads(written.stdout)
    assert "deprecated" not in written.stderr
    old = tmp_path / "old.json"
    legacy = invoke(["--json", str(old)])
    assert legacy.exit_code == 0, legacy.output
    assert "`--json " in legacy.stderr and "deprecated" in legacy.stderr and "--output" in legacy.stderr
    assert json.loads(old.read_text())["metrics"] == json.loads(out.read_text())["metrics"]


def _run(hr: np.ndarray) -> dict:
    keys = [f"u{i}" for i in range(len(hr))]
    return {"model": "m", "protocol": "loo", "dataset": "d", "metrics": {"HR@10": float(np.mean(hr))},
            "per_user": {"keys": keys, "values": {"HR@10": hr.tolist()}}}


def test_compare_prints_the_floor_of_its_p_value_and_the_resamples(tmp_path):
    rng = np.random.default_rng(0)
    a = (rng.random(400) < 0.2).astype(float)
    b = np.maximum(a, (rng.random(400) < 0.5).astype(float))  # B is clearly better: every resample agrees
    result = compare(_run(a), _run(b), n_boot=1000, seed=0)
    row = result.rows[0]
    assert row.p_value == pytest.approx(2 / 1001) and row.p_at_floor
    text = render_comparison(result)
    assert "< 0.002" in text and "0.0020" not in text and "1,000 bootstrap resamples" in text
    assert result.to_dict()["metrics"]["HR@10"]["p_at_floor"] is True
    fine = render_comparison(compare(_run(a), _run(a), n_boot=200))
    assert "1.0000" in fine and "< " not in fine.splitlines()[1]
    pa, pb = tmp_path / "a.json", tmp_path / "b.json"
    pa.write_text(json.dumps(_run(a)))
    pb.write_text(json.dumps(_run(b)))
    res = CliRunner().invoke(cli_mod.compare, [str(pa), str(pb), "--n-boot", "100"])
    assert res.exit_code == 0, res.output
    assert "< 0.02" in res.stdout and "100 bootstrap resamples" in res.stdout
