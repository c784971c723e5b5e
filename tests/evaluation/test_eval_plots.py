"""PNG plots of evaluation documents."""

from __future__ import annotations

from shoprec.evaluation.plots import plot_training_log, write_plots


def test_write_plots_for_a_ranking_and_a_rating_run(tmp_path):
    ranking = {"model": "m", "protocol": "loo", "metrics": {"HR@10": 0.1, "Novelty@10": 7.0, "Diversity@10": None},
               "training_log": [{"epoch": 1, "loss": 2.0, "note": "warm-up"}, {"epoch": 2, "loss": 1.0}]}
    written = write_plots(ranking, tmp_path / "r")
    assert sorted(p.name for p in written) == ["metrics.png", "training.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in written)
    rating = {"model": "m", "protocol": "kfold", "metrics": {"RMSE": 0.9, "MAE": 0.7}, "training_log": [],
              "per_fold": [{"fold": "1", "RMSE": 0.9, "MAE": 0.7}, {"fold": "2", "RMSE": 0.91, "MAE": 0.71}]}
    assert sorted(p.name for p in write_plots(rating, tmp_path / "k")) == ["folds.png", "metrics.png"]


def test_training_plot_needs_numeric_series(tmp_path):
    assert plot_training_log([{"epoch": 1, "phase": "fit"}], tmp_path / "t.png") is None
    assert not (tmp_path / "t.png").exists()
    assert plot_training_log([{"step": 10, "loss": 1.0}, {"step": 20, "loss": 0.5}], tmp_path / "t.png") is not None
