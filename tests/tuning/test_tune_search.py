"""The Optuna loop: a planted optimum is found by grid and tpe, pruning, resume, stored best params."""

from __future__ import annotations

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState
from tunehelpers import rating_data, recency_data

from shoprec.errors import ConfigError
from shoprec.evaluation.protocols import EvalConfig
from shoprec.models.base import RankingValidation
from shoprec.tuning import TuneConfig, best_params, load_space, open_storage, tuned_record
from shoprec.tuning.run import TuneData, tune
from shoprec.tuning.study import PruningValidation

optuna.logging.set_verbosity(optuna.logging.WARNING)
GRID = {"recent_days": [0.0, 10.0, 2000.0], "weighted": [False, True]}


@pytest.fixture(scope="module")
def data() -> TuneData:
    return TuneData(recency_data(), name="planted")


def test_grid_finds_the_planted_optimum_and_scores_every_point_once(data):
    doc, _study = tune(data, "popular", load_space("popular", GRID), TuneConfig(search="grid", folds=3))
    assert len(doc["trials"]) == 6 and all(t["state"] == "complete" for t in doc["trials"])
    assert sorted((t["params"]["recent_days"], t["params"]["weighted"]) for t in doc["trials"]) == sorted(
        (r, w) for r in GRID["recent_days"] for w in GRID["weighted"])
    assert doc["best"]["params"]["recent_days"] == 10.0
    others = [t["cv_mean"] for t in doc["trials"] if t["params"]["recent_days"] != 10.0]
    assert doc["best"]["cv_mean"] > max(others) + 0.05
    assert len(doc["best"]["cv_values"]) == 3 and doc["best"]["cv_std"] >= 0
    assert doc["test"]["protocol"] == "loo" and doc["test"]["metrics"]["NDCG@10"] > 0.05


def test_tpe_finds_the_planted_region_of_a_continuous_range(data):
    space = load_space("popular", {"recent_days": {"low": 1.0, "high": 3000.0, "log": True}, "weighted": [False, True]})
    doc, _study = tune(data, "popular", space, TuneConfig(search="tpe", folds=2, trials=14, seed=1, prune=False),
                      run_test=False)
    assert len(doc["trials"]) == 14 and doc["test"] is None
    assert 1.0 <= doc["best"]["params"]["recent_days"] < 900.0
    assert doc["best"]["cv_mean"] > 0.05
    # TPE exploits: after its random start-up, most proposals sit in the good region
    late = [t["params"]["recent_days"] for t in doc["trials"][5:]]
    assert np.mean([d < 900.0 for d in late]) >= 0.6


def test_pruning_stops_bad_trials_after_their_first_fold(data):
    space = load_space("popular", {"recent_days": [0.0, 10.0, 2000.0, 5000.0]})
    cfg = TuneConfig(search="tpe", folds=3, trials=12, seed=0, prune=True)
    doc, _study = tune(data, "popular", space, cfg, run_test=False)
    pruned = [t for t in doc["trials"] if t["state"] == "pruned"]
    assert pruned, "some bad trials should be pruned"
    assert all(len(t["cv_values"]) < 3 and t["params"]["recent_days"] != 10.0 for t in pruned)
    assert doc["best"]["params"]["recent_days"] == 10.0


def test_epoch_level_pruning_validation_reports_and_raises():
    class FakeTrial:
        def __init__(self):
            self.reports = []

        def report(self, value, step):
            self.reports.append((step, value))

        def should_prune(self):
            return len(self.reports) >= 2

    class Model:
        name = "m"

        def score(self, queries):
            return np.tile(np.arange(5, dtype=np.float32), (len(queries), 1))

    from shoprec.models.base import Query
    trial = FakeTrial()
    validation = PruningValidation(queries=[Query(user=0)], targets=np.array([4]), trial=trial)
    assert isinstance(validation, RankingValidation)
    assert validation.evaluate(Model())["NDCG@10"] == 1.0
    with pytest.raises(optuna.TrialPruned):
        validation.evaluate(Model())
    assert [s for s, _ in trial.reports] == [1, 2]


def test_rating_tuning_uses_kfold_on_the_training_part_and_tests_once():
    data = TuneData(rating_data(), name="ratings")
    space = load_space("mf", {"embedding_size": [1, 2]}, fixed={"epochs": 6, "burn_in": 2, "thin": 2})
    doc, _ = tune(data, "mf", space, TuneConfig(search="grid", folds=2, metric="RMSE"),
                  fixed={"epochs": 6, "burn_in": 2, "thin": 2})
    assert doc["direction"] == "minimize" and len(doc["trials"]) == 2
    assert doc["best"]["cv_mean"] == min(t["cv_mean"] for t in doc["trials"])
    assert doc["test"]["protocol"] == "kfold" and 0 < doc["test"]["metrics"]["RMSE"] < 3


def test_metric_and_protocol_must_agree(data):
    with pytest.raises(ConfigError, match="RMSE does not go with protocol 'loo'"):
        tune(data, "mf", load_space("mf", {"embedding_size": [1]}), TuneConfig(metric="RMSE"),
             eval_cfg=EvalConfig(protocol="loo"))
    with pytest.raises(ConfigError, match="does not predict ratings"):
        tune(data, "popular", load_space("popular", GRID), TuneConfig(metric="RMSE"))


# ------------------------------------------------------------------------------ persistence
def _db(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'shoprec.db'}"


def test_studies_live_in_the_shoprec_database_without_touching_its_schema_version(data, tmp_path):
    from shoprec.storage.engine import create_db, current_revision, make_engine

    url = _db(tmp_path)
    create_db(url).dispose()
    engine = make_engine(url)
    before = current_revision(engine)
    storage = open_storage(url)
    tune(data, "popular", load_space("popular", {"recent_days": [0.0, 10.0]}), TuneConfig(search="grid", folds=2),
         storage=storage, study_name="s1", extra={"platform": "shop", "dataset": "planted"}, run_test=False)
    assert current_revision(engine) == before is not None
    create_db(url).dispose()  # shoprec's migrations still run on the shared database
    assert optuna.load_study(study_name="s1", storage=open_storage(url)).best_params == {"recent_days": 10.0}
    engine.dispose()


def test_a_killed_grid_study_resumes_and_finishes_each_point_once(data, tmp_path):
    url = _db(tmp_path)
    space = load_space("popular", GRID)
    cfg = TuneConfig(search="grid", folds=2)
    calls = []

    def kill_after_two(study, trial):
        calls.append(trial.number)
        if len(calls) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        tune(data, "popular", space, cfg, storage=open_storage(url), study_name="grid", callback=kill_after_two)
    # a hard kill leaves a trial RUNNING: simulate one more
    optuna.load_study(study_name="grid", storage=open_storage(url)).ask()
    doc, study = tune(data, "popular", space, cfg, storage=open_storage(url), study_name="grid", run_test=False)
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    keys = sorted((t.params["recent_days"], t.params["weighted"]) for t in complete)
    assert len(keys) == 6 and len(set(keys)) == 6
    assert not study.get_trials(states=(TrialState.RUNNING, TrialState.WAITING))
    assert doc["best"]["params"]["recent_days"] == 10.0
    # running it again has nothing left to do
    _doc2, study2 = tune(data, "popular", space, cfg, storage=open_storage(url), study_name="grid", run_test=False)
    assert len(study2.trials) == len(study.trials)


def test_a_tpe_study_resumes_up_to_its_total_trials(data, tmp_path):
    url = _db(tmp_path)
    space = load_space("popular", {"recent_days": {"low": 1.0, "high": 3000.0, "log": True}})
    tune(data, "popular", space, TuneConfig(search="tpe", folds=2, trials=4), storage=open_storage(url),
         study_name="t", run_test=False)
    doc, _study = tune(data, "popular", space, TuneConfig(search="tpe", folds=2, trials=7),
                      storage=open_storage(url), study_name="t", run_test=False)
    assert len(doc["trials"]) == 7
    assert len({t["params"]["recent_days"] for t in doc["trials"]}) == 7  # no repeated proposals


def test_resuming_with_a_different_question_is_refused(data, tmp_path):
    url = _db(tmp_path)
    tune(data, "popular", load_space("popular", {"recent_days": [0.0, 10.0]}), TuneConfig(search="grid", folds=2),
         storage=open_storage(url), study_name="q", run_test=False)
    with pytest.raises(ConfigError, match="study 'q' exists with space"):
        tune(data, "popular", load_space("popular", {"recent_days": [0.0, 5.0]}), TuneConfig(search="grid", folds=2),
             storage=open_storage(url), study_name="q", run_test=False)


def test_best_params_are_found_by_study_name_or_platform_and_model(data, tmp_path):
    url = _db(tmp_path)
    space = load_space("popular", {"recent_days": [0.0, 10.0], "features.weight.purchase": [1.0, 2.0]})
    tune(data, "popular", space, TuneConfig(search="grid", folds=2), storage=open_storage(url),
         study_name="custom-name", extra={"platform": "shop-a", "dataset": "planted"}, run_test=False)
    by_platform = best_params(url, platform="shop-a", model="popular")
    assert by_platform["recent_days"] == 10.0 and "features.weight.purchase" not in by_platform
    assert best_params(url, "custom-name") == by_platform
    record = tuned_record(url, platform="shop-a", model="popular")
    assert record["best_features"]["weight.purchase"] in (1.0, 2.0) and record["metric"] == "NDCG@10"
    with pytest.raises(ConfigError, match="no tuned parameters found for platform 'shop-b'"):
        best_params(url, platform="shop-b", model="popular")
    with pytest.raises(ConfigError, match="no tuned parameters found for study 'nope'"):
        best_params(url, "nope")


def test_temporal_protocol_tunes_on_events_before_the_cutoff_only(data):
    from tunehelpers import BASE, DAY, RECENT_START

    cutoff = BASE + (RECENT_START + 4) * DAY
    doc, _ = tune(data, "popular", load_space("popular", {"recent_days": [0.0, 10.0]}),
                  TuneConfig(search="grid", folds=2), eval_cfg=EvalConfig(protocol="temporal", cutoff=str(cutoff)))
    assert doc["best"]["params"]["recent_days"] == 10.0
    assert doc["test"]["protocol"] == "temporal" and doc["test"]["n_users"] > 0
    assert any("events from" in n for n in doc["notes"])
