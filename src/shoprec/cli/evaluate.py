"""`shoprec evaluate` (offline evaluation in memory, straight from an import format) and `shoprec compare`.

Thin over shoprec.evaluation.offline (load_dataset, run_evaluation), which the benchmarks use too.

stdout gets machine-readable output only (the result JSON, or the comparison table / JSON);
the human-readable summary and progress go to stderr.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import click

from shoprec.cli._common import emit_json, json_options, legacy_json_option, model_option, resolve_legacy_json
from shoprec.configfile import read_document
from shoprec.errors import ConfigError
from shoprec.evaluation.cdr import CDR_SPLITS, CDR_TRAINING
from shoprec.evaluation.offline import load_dataset, run_evaluation
from shoprec.evaluation.protocols import PROTOCOLS, RATING_PROTOCOLS, EvalConfig
from shoprec.models.base import get_model_class
from shoprec.models.factory import ModelFactory


def parse_data_arg(value: str) -> tuple[str, str]:
    """'FORMAT:PATH' -> (format, path)."""
    fmt, sep, path = value.partition(":")
    if not sep or not fmt or not path:
        raise click.BadParameter(f"expected FORMAT:PATH (e.g. movielens-100k:../shared/data/ml-100k), got {value!r}",
                                 param_hint="--data")
    return fmt.strip(), path.strip()


def parse_config(value: str | None) -> dict[str, Any]:
    """Model parameters from inline JSON or a .json / .toml file."""
    if not value:
        return {}
    data = read_document(value, "--config")
    if not isinstance(data, dict):
        raise ConfigError("--config must be a JSON object of model parameters")
    return data


def parse_ks(value: str) -> tuple[int, ...]:
    try:
        ks = tuple(sorted({int(v) for v in value.split(",") if v.strip()}))
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {value!r}", param_hint="--k") from None
    if not ks or min(ks) <= 0:
        raise click.BadParameter(f"expected positive integers, got {value!r}", param_hint="--k")
    return ks


def with_dp_epsilon(model_name: str, params: dict[str, Any], epsilon: float | None) -> dict[str, Any]:
    """`--dp-epsilon E`: the parameters plus dp_epsilon = E and the settings DP-SGD needs (the model config's
    DP_SETTINGS, e.g. mf's solver 'sgd' and implicit false) unless the parameters set them."""
    if epsilon is None:
        return params
    config_cls = get_model_class(model_name).Config
    if "dp_epsilon" not in {f.name for f in dataclasses.fields(config_cls)}:
        raise ConfigError(f"--dp-epsilon: model {model_name!r} has no differentially private training "
                          "(available for mf and ncf)")
    return {**getattr(config_cls, "DP_SETTINGS", {}), **params, "dp_epsilon": epsilon}


@click.command("evaluate")
@click.option("--data", "data_arg", required=True, help="FORMAT:PATH of an import format (e.g. s3rec:Beauty.txt).")
@click.option("--protocol", type=click.Choice(PROTOCOLS), required=True, help="Evaluation protocol.")
@model_option()
@click.option("--config", "config_arg", default=None, help="Model parameters: inline JSON or a .json/.toml file.")
@click.option("--k", "k_arg", default="10,20", show_default=True, help="Cut-offs, comma-separated.")
@click.option("--keep-seen", is_flag=True, help="Rank items the user has already seen (default: exclude them).")
@click.option("--seed", default=0, show_default=True, help="Seed of splits, validation sampling and the model.")
@click.option("--cutoff", default=None, help="temporal: ISO date or unix seconds (train before, test after).")
@click.option("--folds", default=5, show_default=True, help="kfold: number of folds.")
@click.option("--valid-fraction", default=0.0, show_default=True,
              help="Rating protocols: share of each training fold held out for validation.")
@click.option("--no-validation", is_flag=True, help="temporal: fit on all training events, no validation split.")
@click.option("--batch-size", default=1024, show_default=True, help="Queries scored per batch.")
@click.option("--target", default=None, help="cdr-cold: X_Y, recommend domain-X items from domain-Y histories.")
@click.option("--cdr-training", type=click.Choice(CDR_TRAINING), default="joint", show_default=True,
              help="cdr-cold: train on both domains (joint) or on the target domain alone (target-only).")
@click.option("--split", "eval_split", type=click.Choice(CDR_SPLITS), default="test", show_default=True,
              help="cdr-cold: evaluate the test users, or the validation users (for tuning).")
@legacy_json_option("the full result (with per-user values)")
@click.option("--plot", "plot_dir", default=None, type=click.Path(file_okay=False), help="Write PNG plots here.")
@click.option("--dp-epsilon", "dp_epsilon", type=float, default=None,
              help="Train with DP-SGD (Opacus) to this epsilon per rating (mf, ncf); the JSON reports what was spent.")
@click.option("--init-from", "init_from", default=None, metavar="DIR",
              help="transformer: start from this pre-trained model directory (shoprec pretrain) and fine-tune on "
                   "the data; its network parameters are the defaults.")
@click.option("--zero-shot", "zero_shot", is_flag=True,
              help="With --init-from: train nothing on the data; its items are scored through their text (and the "
                   "attributes the pre-trained model knows).")
def evaluate(data_arg: str, protocol: str, model_name: str, config_arg: str | None, k_arg: str, keep_seen: bool,
             seed: int, cutoff: str | None, folds: int, valid_fraction: float, no_validation: bool, batch_size: int,
             target: str | None, cdr_training: str, eval_split: str, json_arg: str | None, output: Path | None,
             plot_dir: str | None, dp_epsilon: float | None, init_from: str | None, zero_shot: bool) -> None:
    """Fit MODEL on a split of the data and report offline metrics: a JSON summary on stdout (the full result
    with --json; --output FILE writes the full result to FILE, for `shoprec compare`)."""
    from shoprec.evaluation.report import render_metrics, summary, write_json

    as_json, output = resolve_legacy_json(json_arg, output)
    fmt, path = parse_data_arg(data_arg)
    cfg = EvalConfig(protocol=protocol, ks=parse_ks(k_arg), exclude_seen=not keep_seen, seed=seed, cutoff=cutoff,
                     folds=folds, valid_fraction=valid_fraction, validation=not no_validation, batch_size=batch_size,
                     target=target, training=cdr_training, split=eval_split)
    params = with_dp_epsilon(model_name, parse_config(config_arg), dp_epsilon)
    start, source = None, None
    if zero_shot and not init_from:
        raise ConfigError("--zero-shot scores through a pre-trained model: it needs --init-from DIR")
    if init_from:
        from shoprec.service.transfer import check_inherited, pretrained_source

        if model_name != "transformer":
            raise ConfigError(f"--init-from starts model 'transformer' from a pre-trained one, not {model_name!r}")
        source = pretrained_source(init_from)
        params = check_inherited(source, params)
        start = source.start(zero_shot)
    ModelFactory(model_name, params, seed=seed)  # fail on a bad model or config before loading data
    if protocol in RATING_PROTOCOLS and not callable(getattr(get_model_class(model_name), "predict", None)):
        raise ConfigError(f"model {model_name!r} does not predict ratings; use protocol loo or temporal")
    dataset = load_dataset(fmt, path)
    doc, _ = run_evaluation(dataset, f"{fmt}:{path}", model_name, params, cfg, progress=True, start=start)
    if source is not None:
        doc["init_from"] = {**source.facts, "zero_shot": zero_shot}
    click.echo(render_metrics(doc), err=True)
    if plot_dir:
        from shoprec.evaluation.plots import write_plots

        for written in write_plots(doc, plot_dir):
            click.echo(f"wrote {written}", err=True)
    if output is not None:
        click.echo(f"wrote {write_json(doc, str(output))}", err=True)
    if as_json:
        click.echo(json.dumps(doc))
        return
    click.echo(json.dumps(summary(doc), indent=1))


@click.command("compare")
@click.argument("run_a", type=click.Path(dir_okay=False))
@click.argument("run_b", type=click.Path(dir_okay=False))
@click.option("--n-boot", default=1000, show_default=True, help="Bootstrap replicates.")
@click.option("--seed", default=0, show_default=True, help="Seed of the bootstrap.")
@json_options("the comparison (instead of a table)")
def compare(run_a: str, run_b: str, n_boot: int, seed: int, as_json: bool, output: Path | None) -> None:
    """Per-metric difference B - A of two `evaluate --output FILE` results, with paired bootstrap 95% CI and
    p-value (its resolution is 1/(N_BOOT+1): smaller values print as "< 0.001")."""
    from shoprec.evaluation.compare import compare as compare_runs
    from shoprec.evaluation.compare import render_comparison
    from shoprec.evaluation.report import read_json

    doc_a, doc_b = read_json(run_a), read_json(run_b)
    result = compare_runs(doc_a, doc_b, n_boot=n_boot, seed=seed)
    if not emit_json({"a": run_a, "b": run_b, **result.to_dict()}, as_json, output):
        click.echo(render_comparison(result, f"A:{doc_a['model']}", f"B:{doc_b['model']}"))


commands: list[click.Command] = [evaluate, compare]
