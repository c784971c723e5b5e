"""`tune --trials 2` on a 9-point grid: counts, plots and the study's name (issue 21)."""

from __future__ import annotations

import json
import re

import optuna
import pytest
from click.testing import CliRunner
from tunehelpers import recency_data, write_events_csv

from shoprec.cli.main import _register, cli
from shoprec.tuning.plots import MIN_IMPORTANCE_TRIALS, history_points, write_plots
from shoprec.tuning.tuned import readable_study_name

GRID9 = '{"recent_days": [0.0, 1.0, 10.0, 100.0, 300.0, 1000.0, 2000.0, 3000.0, 5000.0]}'


@pytest.fixture(scope="module")
def events(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "events.csv"
    write_events_csv(recency_data(n_users=40), path)
    return f"events-csv:{path}"


def run(args, db):
    _register()
    return CliRunner().invoke(cli, ["--db", db, *args], catch_exceptions=True)


def test_grid_capped_by_trials_counts_plots_and_names_only_what_ran(events, tmp_path):
    res = run(["tune", "--data", events, "-m", "POPULAR", "--space", GRID9, "--search", "grid", "--trials", "2",
               "--folds", "2",
               "--no-test", "--plot", str(tmp_path / "plots")], f"sqlite:///{tmp_path / 'a.db'}")
    assert res.exit_code == 0, res.output
    assert "trial 1/2" in res.stderr and "trial 2/2" in res.stderr and "/9" not in res.stderr
    assert "2 of 9 grid points" in res.stderr
    doc = json.loads(res.stdout)
    assert len(doc["trials"]) == 2
    assert re.fullmatch(r"popular-events-csv-events-\d{8}-\d{6}", doc["study"]), doc["study"]
    assert (tmp_path / "plots" / "history.png").stat().st_size > 1000
    assert not (tmp_path / "plots" / "importance.png").exists()
    assert f"at least {MIN_IMPORTANCE_TRIALS}" in res.stderr and "2 complete trial(s)" in res.stderr


def test_tune_output_file_and_the_old_json_file_spelling(events, tmp_path):
    db = f"sqlite:///{tmp_path / 'o.db'}"
    args = ["tune", "--data", events, "-m", "popular", "--space", '{"recent_days": [0.0, 10.0]}', "--search", "grid",
            "--folds", "2", "--no-test"]
    new = run([*args, "-o", str(tmp_path / "new.json")], db)
    assert new.exit_code == 0, new.output
    assert len(json.loads((tmp_path / "new.json").read_text())["trials"]) == 2
    assert set(json.loads(new.stdout)) == {"model", "best", "test"} and "deprecated" not in new.stderr
    old = run([*args, "--json", str(tmp_path / "old.json")], db)
    assert old.exit_code == 0, old.output
    assert "deprecated" in old.stderr and (tmp_path / "old.json").is_file()
    flag = run([*args, "--json"], db)
    assert flag.exit_code == 0 and len(json.loads(flag.stdout)["trials"]) == 2


def test_history_stops_at_the_last_trial_that_ran():
    study = optuna.create_study(direction="maximize")
    for x in (0.0, 1.0, 2.0, 3.0):
        study.enqueue_trial({"x": x})
    study.optimize(lambda t: t.suggest_float("x", 0, 3) * (1 if t.number != 1 else -1), n_trials=2)
    # two enqueued points never ran (as after `--search grid --trials 2`)
    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    numbers, values, best = history_points(complete, maximize=True)
    assert numbers == [1, 2] and values == [0.0, -1.0] and best == [0.0, 0.0]


def test_importance_needs_enough_trials(tmp_path):
    study = optuna.create_study()
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    written, notes = write_plots(study, tmp_path)
    assert [p.name for p in written] == ["history.png"]
    assert any("3 complete trial(s)" in n for n in notes)


def test_readable_study_names():
    name = readable_study_name("ease", "movielens-100k:../data/ml-100k", 0)
    assert name == "ease-movielens-100k-ml-100k-19700101-000000"
    assert readable_study_name("als", "s3rec:/x/Beauty.txt", 0).startswith("als-s3rec-Beauty-")
