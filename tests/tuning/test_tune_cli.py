"""`shoprec tune` end to end on a small events-csv file with a planted optimum."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from tunehelpers import recency_data, write_events_csv

from shoprec.cli.main import cli
from shoprec.cli.main import main as shoprec_main
from shoprec.settings import Settings


@pytest.fixture(scope="module")
def events(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "events.csv"
    write_events_csv(recency_data(n_users=50), path)
    return f"events-csv:{path}"


def run(args, db):
    from shoprec.cli import main as main_mod

    main_mod._register()
    return CliRunner().invoke(cli, ["--db", db, *args], obj=Settings.from_env(database_url=db), catch_exceptions=True)


SPACE = '{"recent_days": [0.0, 10.0, 2000.0]}'


def test_tune_grid_prints_the_result_json(events, tmp_path):
    db = f"sqlite:///{tmp_path / 'a.db'}"
    res = run(["tune", "--data", events, "--model", "popular", "--space", SPACE, "--search", "grid",
               "--folds", "2"], db)
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["model"] == "popular" and doc["search"] == "grid" and doc["folds"] == 2
    assert len(doc["trials"]) == 3 and {"params", "cv_mean", "cv_std"} <= set(doc["trials"][0])
    assert doc["best"]["params"] == {"recent_days": 10.0}
    assert "NDCG@10" in doc["test"]["metrics"]
    assert "trial 3/3" in res.stderr


@pytest.mark.slow  # optuna's importance module imports scikit-learn (about 10 s on a loaded machine)
def test_tune_plot_writes_history_and_importance_pngs(events, tmp_path):
    res = run(["tune", "--data", events, "--model", "popular", "--space", SPACE, "--search", "grid",
               "--folds", "2", "--no-test", "--plot", str(tmp_path / "plots")], f"sqlite:///{tmp_path / 'p.db'}")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "plots" / "history.png").stat().st_size > 1000
    # 3 grid points: too few trials for a parameter importance that means anything, so none is drawn
    assert not (tmp_path / "plots" / "importance.png").exists()
    many = '{"recent_days": [0.0, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 2000.0]}'  # 8 trials: importance drawn
    res = run(["tune", "--data", events, "--model", "popular", "--space", many, "--search", "grid",
               "--folds", "2", "--no-test", "--plot", str(tmp_path / "plots8")], f"sqlite:///{tmp_path / 'q.db'}")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "plots8" / "importance.png").stat().st_size > 1000


def test_tune_study_is_stored_resumed_and_summarised_with_json_file(events, tmp_path):
    db = f"sqlite:///{tmp_path / 'b.db'}"
    args = ["tune", "--data", events, "--model", "popular", "--space", SPACE, "--search", "tpe", "--folds", "2",
            "--study", "mine", "--no-test"]
    first = run([*args, "--trials", "2"], db)
    assert first.exit_code == 0, first.output
    out = tmp_path / "r.json"
    second = run([*args, "--trials", "4", "--json", str(out)], db)
    assert second.exit_code == 0, second.output
    assert len(json.loads(out.read_text())["trials"]) == 4
    assert set(json.loads(second.stdout)) == {"model", "best", "test"}


def test_bad_space_fails_before_loading_data_naming_the_parameter(tmp_path, capsys):
    db = f"sqlite:///{tmp_path / 'c.db'}"
    with pytest.raises(SystemExit) as exit_:
        shoprec_main(["--db", db, "tune", "--data", "events-csv:/does/not/exist.csv", "--model", "als",
                      "--space", '{"embedding_size": {"low": 64, "high": 8}}'])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "'embedding_size'" in err and "empty range" in err


def test_data_or_platform_is_required(tmp_path):
    res = run(["tune", "--model", "popular"], f"sqlite:///{tmp_path / 'd.db'}")
    assert res.exit_code != 0 and "exactly one of --data" in res.output


def test_plots_of_a_study_without_complete_trials_are_skipped_with_a_note(tmp_path):
    import optuna

    from shoprec.tuning.plots import write_plots

    written, notes = write_plots(optuna.create_study(), tmp_path / "none")
    assert written == [] and "no complete trial" in notes[0]


def test_tune_on_a_platform_stores_best_params_that_train_tuned_can_find(events, tmp_path, monkeypatch):
    from shoprec.datasets import read_records
    from shoprec.ingest.pipeline import ingest
    from shoprec.storage.engine import create_db
    from shoprec.tuning import best_params, platform_study_name, tuned_record

    db = f"sqlite:///{tmp_path / 'platform.db'}"
    engine = create_db(db)
    ingest(engine, "shop", read_records("events-csv", events.split(":", 1)[1]))
    engine.dispose()
    res = run(["tune", "--platform", "shop", "--model", "popular", "--space", SPACE, "--search", "grid",
               "--folds", "2", "--no-test"], db)
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["study"] == platform_study_name("shop", "popular")
    assert best_params(db, platform="shop", model="popular")["recent_days"] == 10.0
    assert tuned_record(db, platform="shop", model="popular")["platform"] == "shop"
    monkeypatch.setenv("SHOPREC_MODEL_DIR", str(tmp_path / "models"))
    trained = run(["train", "--platform", "shop", "--model", "popular", "--tuned", "--no-evaluate"], db)
    assert trained.exit_code == 0, trained.output
    assert json.loads(trained.stdout)["model"] == "popular"
    configs = list((tmp_path / "models").rglob("config.json"))  # the stored artifact of that model
    assert len(configs) == 1
    assert json.loads(configs[0].read_text())["config"]["recent_days"] == 10.0


def test_train_tuned_applies_the_tuned_feature_hooks(events, tmp_path, monkeypatch):
    """A feature hook the study tuned (here: views weigh nothing) reaches `train --tuned`'s fit."""
    from shoprec.datasets import read_records
    from shoprec.ingest.pipeline import ingest
    from shoprec.storage.engine import create_db
    from shoprec.tuning import tuned_record

    db = f"sqlite:///{tmp_path / 'features.db'}"
    engine = create_db(db)
    ingest(engine, "shop", read_records("events-csv", events.split(":", 1)[1]))
    engine.dispose()
    space = '{"recent_days": [10.0], "features.weight.view": [0.0]}'
    res = run(["tune", "--platform", "shop", "--model", "popular", "--space", space, "--search", "grid",
               "--folds", "2", "--no-test"], db)
    assert res.exit_code == 0, res.output
    assert tuned_record(db, platform="shop", model="popular")["best_features"] == {"weight.view": 0.0}
    monkeypatch.setenv("SHOPREC_MODEL_DIR", str(tmp_path / "models"))
    trained = run(["train", "--platform", "shop", "--model", "popular", "--tuned", "--no-evaluate"], db)
    assert trained.exit_code == 0, trained.output
    assert json.loads(trained.stdout)["features"] == {"weight.view": 0.0}


def test_train_rejects_a_bad_feature_value_before_any_work(tmp_path):
    from shoprec.errors import ConfigError
    from shoprec.service.cache import LocalCache
    from shoprec.service.models import ModelStore
    from shoprec.service.platform import PlatformService
    from shoprec.storage.engine import create_db

    engine = create_db(f"sqlite:///{tmp_path / 'bad.db'}")
    try:
        store = ModelStore(engine, PlatformService(engine, LocalCache()), tmp_path / "models")
        with pytest.raises(ConfigError, match=r"features\.weight\.view"):
            store.train("shop", "popular", {}, features={"weight.view": -1.0})
    finally:
        engine.dispose()
