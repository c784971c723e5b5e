"""`shoprec train`: train a model on a platform's database data, evaluate it, store it (and activate it).

Thin over shoprec.service.models.ModelStore; heavy imports are inside the command so that `shoprec --help`
stays fast. JSON goes to stdout, progress to stderr.
"""

from __future__ import annotations

import json

import click

from shoprec.cli._common import model_option, platform_option
from shoprec.settings import Settings


def _stderr(message: str) -> None:
    click.echo(message, err=True)


@click.command("train")
@platform_option(help="Platform whose database data to train on.")
@model_option()
@click.option("--config", "config", default=None, help="Model parameters: inline JSON or a .json / .toml file.")
@click.option("--activate", is_flag=True, help="Serve the new model (every worker switches within a second).")
@click.option("--no-evaluate", is_flag=True, help="Skip the held-out evaluation.")
@click.option("--tuned", is_flag=True,
              help="Start from the best parameters and feature-hook values of `shoprec tune --platform P --model NAME` "
                   "(--config overrides parameters).")
@click.option("--dp-epsilon", "dp_epsilon", type=float, default=None,
              help="Train with DP-SGD (Opacus) to this epsilon per rating (mf, ncf on rated events).")
@click.option("--from-platform", "from_platform", default=None,
              help="Transfer: also learn from the linked users' events on this platform (a consented link).")
@click.option("--init-from", "init_from", default=None, metavar="MODEL_ID|DIR",
              help="Fine-tune (transformer): start from the weights of this stored transformer of a platform "
                   "linked with PLATFORM by both sides' consent, or of a `shoprec pretrain` directory; its "
                   "network parameters are the defaults.")
@click.option("--zero-shot", "zero_shot", is_flag=True,
              help="With --init-from: no training; the start model carried over to PLATFORM's catalog scores its "
                   "items through their text (a platform with items and no events yet).")
@click.pass_obj
def train_command(settings: Settings, platform: str, model_name: str, config: str | None, activate: bool,
                  no_evaluate: bool, tuned: bool, dp_epsilon: float | None, from_platform: str | None,
                  init_from: str | None, zero_shot: bool) -> None:
    """Train MODEL on PLATFORM's data, evaluate it on a leave-one-out split, store it (and activate it).

    Prints {"model_id": ..., "model": NAME, "metrics": {...}} on stdout.
    """
    from shoprec.cli.evaluate import parse_config, with_dp_epsilon
    from shoprec.service.artifacts import open_artifact_store
    from shoprec.service.cache import LocalCache
    from shoprec.service.models import ModelStore
    from shoprec.service.platform import PlatformService
    from shoprec.storage import create_db

    if zero_shot and not init_from:
        from shoprec.errors import ConfigError

        raise ConfigError("--zero-shot carries a pre-trained model over: it needs --init-from MODEL_ID|DIR")
    params, features = parse_config(config), {}
    if tuned:
        from shoprec.tuning import tuned_record

        record = tuned_record(settings.database_url, platform=platform, model=model_name)
        params = {**record["best_params"], **params}
        features = dict(record.get("best_features") or {})
    params = with_dp_epsilon(model_name, params, dp_epsilon)
    engine = create_db(settings.database_url)
    try:
        store = ModelStore(engine, PlatformService(engine, LocalCache()), open_artifact_store(settings, engine))
        result = store.train(platform, model_name, params, activate=activate, evaluate=not no_evaluate,
                             progress=_stderr, features=features, from_platform=from_platform,
                             init_from=init_from, zero_shot=zero_shot)
    finally:
        engine.dispose()
    click.echo(json.dumps(result.to_json(), indent=2))


commands: list[click.Command] = [train_command]
