"""`shoprec tune`: cross-validated grid / random / TPE search (Optuna) on the training part, one test at the end.

stdout gets the result JSON only (or, with --output FILE, a short summary); progress goes to stderr.
Studies named with --study (and every --platform study) live in the shoprec database (--db), so a
killed run resumes with the same command; `best_params` / `train --tuned` read them back.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
import optuna
from optuna.trial import FrozenTrial

from shoprec.cli._common import legacy_json_option, model_option, resolve_legacy_json, write_json_file
from shoprec.cli.evaluate import parse_config, parse_data_arg, parse_ks
from shoprec.errors import ConfigError
from shoprec.evaluation.offline import dataset_folds, load_dataset
from shoprec.evaluation.protocols import PROTOCOLS, EvalConfig
from shoprec.models.factory import ModelFactory
from shoprec.settings import Settings


class TrialProgress:
    """One stderr line per trial of this run: "trial i/n" counts the trials this run starts (`plan`, told by
    the study loop: a grid capped by --trials, or what a resumed study still lacks), not the grid's size."""

    def __init__(self) -> None:
        self.planned: int | None = None
        self.done = 0

    def plan(self, n: int) -> None:
        self.planned = n
        if n == 0:
            click.echo("nothing to run: the study already has its trials", err=True)

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.done += 1
        value = "pruned" if trial.value is None else f"{trial.value:.5f}"
        params = ", ".join(f"{k}={v}" for k, v in trial.params.items())
        of = f"/{self.planned}" if self.planned and self.planned < 10**8 else ""
        number = f" (study trial {trial.number + 1})" if trial.number + 1 != self.done else ""
        click.echo(f"trial {self.done}{of}{number} [{trial.state.name.lower()}] cv={value}  {params}", err=True)


def _load_platform(settings: Settings, platform: str) -> Any:
    from shoprec.preprocess.weights import apply_event_weights
    from shoprec.storage.engine import make_engine
    from shoprec.storage.snapshot import load_interactions
    from shoprec.tuning.run import TuneData

    engine = make_engine(settings.database_url)
    try:
        interactions, catalog = load_interactions(engine, platform)
    finally:
        engine.dispose()
    return TuneData(apply_event_weights(interactions), catalog, None, f"platform:{platform}")


def _load_data(data_arg: str) -> Any:
    from shoprec.tuning.run import TuneData

    fmt, path = parse_data_arg(data_arg)
    dataset = load_dataset(fmt, path)
    return TuneData(dataset.interactions, getattr(dataset, "catalog", None), dataset_folds(dataset), f"{fmt}:{path}")


@click.command("tune")
@click.option("--data", "data_arg", default=None, help="FORMAT:PATH of an import format (e.g. s3rec:Beauty.txt).")
@click.option("--platform", "-p", default=None, help="Tune on this platform's data in the database instead.")
@model_option()
@click.option("--space", "space_arg", default=None,
              help="Search space: inline JSON or a .json/.toml file (default: the model's default space).")
@click.option("--search", type=click.Choice(["grid", "random", "tpe"]), default="tpe", show_default=True)
@click.option("--folds", default=3, show_default=True, help="Cross-validation folds of the training part.")
@click.option("--trials", default=None, type=int, help="tpe/random: trials in the study (default 20); grid: cap.")
@click.option("--timeout", default=None, type=float, help="Stop starting new trials after this many seconds.")
@click.option("--metric", default="NDCG@10", show_default=True, help="NDCG@K, HR@K, Recall@K, MAP@K, MRR, RMSE, MAE.")
@click.option("--study", "study_name", default=None,
              help="Study name in the database (resumes it when it exists). Default with --platform: "
                   "platform:P:MODEL; with --data: an in-memory study named MODEL-FORMAT-FILE-DATE.")
@click.option("--config", "config_arg", default=None, help="Fixed model parameters: inline JSON or .json/.toml file.")
@click.option("--protocol", type=click.Choice(PROTOCOLS), default=None,
              help="How the test part is split off (default: loo, or official-folds/kfold for RMSE/MAE).")
@click.option("--cutoff", default=None, help="temporal: ISO date or unix seconds.")
@click.option("--test-fold", default=None,
              help="official-folds/kfold: the fold held out for the test (default: the first).")
@click.option("--k", "k_arg", default="10,20", show_default=True, help="Cut-offs of the test metrics.")
@click.option("--keep-seen", is_flag=True, help="Rank items the user has already seen (default: exclude them).")
@click.option("--seed", default=0, show_default=True, help="Seed of folds, samplers and models.")
@click.option("--prune/--no-prune", default=None, help="Median pruning of bad trials (default: on for tpe/random).")
@click.option("--no-test", is_flag=True, help="Skip the final test of the best configuration.")
@legacy_json_option("the result (the default output)")
@click.option("--plot", "plot_dir", default=None, type=click.Path(file_okay=False),
              help="Write history.png and importance.png here.")
@click.pass_obj
def tune(settings: Settings | None, data_arg: str | None, platform: str | None, model_name: str,
         space_arg: str | None, search: str, folds: int, trials: int | None, timeout: float | None, metric: str,
         study_name: str | None, config_arg: str | None, protocol: str | None, cutoff: str | None,
         test_fold: str | None, k_arg: str, keep_seen: bool, seed: int, prune: bool | None, no_test: bool,
         json_arg: str | None, output: Path | None, plot_dir: str | None) -> None:
    """Tune MODEL's parameters by cross-validation on the training part; test the best configuration once."""
    from shoprec.tuning import TuneConfig, load_space, open_storage, platform_study_name
    from shoprec.tuning.cv import parse_metric
    from shoprec.tuning.run import default_protocol
    from shoprec.tuning.run import tune as run_tune
    from shoprec.tuning.study import DEFAULT_TRIALS

    settings = settings or Settings.from_env()
    _, output = resolve_legacy_json(json_arg, output)  # --json or not: the result goes to stdout
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # one line per trial comes from TrialProgress
    if (data_arg is None) == (platform is None):
        raise click.UsageError("give exactly one of --data FORMAT:PATH and --platform P")
    fixed = parse_config(config_arg)
    ModelFactory(model_name, fixed, seed=seed)  # fail on a bad model or config before loading data
    space = load_space(model_name, space_arg, fixed)
    cfg = TuneConfig(search=search, folds=folds, trials=trials, timeout=timeout,  # type: ignore[arg-type]
                     metric=metric, seed=seed, prune=prune)
    parsed_metric = parse_metric(metric)
    data = _load_platform(settings, platform) if platform else _load_data(str(data_arg))
    eval_cfg = EvalConfig(protocol=protocol or default_protocol(parsed_metric, data), ks=parse_ks(k_arg),
                          exclude_seen=not keep_seen, seed=seed, cutoff=cutoff)
    if platform and study_name is None:
        study_name = platform_study_name(platform, model_name)
    storage = open_storage(settings.database_url) if study_name else None
    planned = (f"{min(trials, space.grid_size()) if trials else space.grid_size()} of {space.grid_size()} grid "
               "points" if search == "grid" else f"{trials} trials" if trials
               else "trials until the timeout" if timeout else f"{DEFAULT_TRIALS} trials")
    click.echo(f"tuning {model_name} on {data.name}: {search} search ({planned}), {folds} folds, "
               f"metric {parsed_metric.name}" + (f", study {study_name!r}" if study_name else ""), err=True)
    progress = TrialProgress()
    extra = {"platform": platform, "dataset": data.name}
    doc, study = run_tune(data, model_name, space, cfg, eval_cfg=eval_cfg, fixed=fixed, storage=storage,
                          study_name=study_name, extra=extra, test_fold=test_fold, run_test=not no_test,
                          callback=progress, on_plan=progress.plan)
    if doc["best"] is None:
        raise ConfigError("no trial completed (all failed or were pruned); nothing to report")
    _echo_summary(doc)
    if plot_dir:
        from shoprec.tuning.plots import write_plots

        written, notes = write_plots(study, plot_dir)
        for line in [*(f"wrote {p}" for p in written), *notes]:
            click.echo(line, err=True)
    if output is not None:
        write_json_file(doc, output)
        click.echo(json.dumps({"model": doc["model"], "best": doc["best"], "test": doc["test"]}, indent=1))
        return
    click.echo(json.dumps(doc, indent=1))


def _echo_summary(doc: dict[str, Any]) -> None:
    best = doc["best"]
    click.echo(f"best (trial {best['number'] + 1}): cv {doc['metric']} = {best['cv_mean']:.5f} "
               f"± {best['cv_std'] or 0.0:.5f}  {best['params']}", err=True)
    if doc["test"]:
        shown = {k: round(v, 5) for k, v in doc["test"]["metrics"].items()
                 if k.split("@")[0] in ("NDCG", "HR", "RMSE", "MAE", "Recall")}
        click.echo(f"test ({doc['test']['protocol']}): {shown}", err=True)
    sys.stderr.flush()


commands: list[click.Command] = [tune]
