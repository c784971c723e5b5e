"""`shoprec retrain policy|history|run`: a platform's continuous-retraining policy, its promotion-gate decisions,
and a retrain run in this process (no worker needed). Thin over shoprec.service.retraining; JSON goes to
stdout (history: a table unless --json), progress to stderr.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

from shoprec.cli._common import model_option
from shoprec.settings import Settings

if TYPE_CHECKING:
    from shoprec.service.retraining import Decision, RetrainService


@contextmanager
def _retraining(settings: Settings) -> Iterator[RetrainService]:
    """A RetrainService over the settings' database (no server, no cache beyond this process)."""
    from shoprec.service.cache import LocalCache
    from shoprec.service.experiments import ExperimentService
    from shoprec.service.models import ModelStore
    from shoprec.service.platform import PlatformService
    from shoprec.service.retraining import RetrainService
    from shoprec.storage import create_db

    engine = create_db(settings.database_url)
    try:
        platforms = PlatformService(engine, LocalCache())
        store = ModelStore(engine, platforms, settings.model_dir)
        experiments = ExperimentService(engine, platforms, store)
        yield RetrainService(engine, platforms, store, experiments, settings.retraining)
    finally:
        engine.dispose()


def _emit(result: Any) -> None:
    click.echo(json.dumps(result, indent=2, default=str))


@click.group("retrain")
def retrain_group() -> None:
    """Continuous retraining: policy, decision history, a retrain now."""


@retrain_group.command("policy")
@click.option("--platform", "-p", required=True, help="The platform.")
@click.option("--every-hours", type=float, default=None, help="Retrain when the newest model is this old.")
@click.option("--after-events", type=int, default=None, help="Retrain after this many new events.")
@click.option("--margin", type=float, default=None,
              help="Promote unless the new model's holdout metric is more than this (relative) below the active one.")
@click.option("--metric", default=None, help="The compared holdout metric (ndcg@10, hr@10, recall@20, mrr, ...).")
@click.option("--holdout-fraction", type=float, default=None, help="The newest share of events held out.")
@click.option("--action", type=click.Choice(["promote", "experiment"]), default=None,
              help="Promote a passing model, or start an A/B experiment against the active one.")
@model_option(required=False, help="Model to train (default: the active model's)")
@click.option("--config", "config", default=None, help="Its parameters: inline JSON or a .json / .toml file.")
@click.option("--off", is_flag=True, help="Turn retraining off for the platform.")
@click.option("--default", "use_default", is_flag=True, help="Forget the platform's policy: the deployment default.")
@click.pass_obj
def policy_command(settings: Settings, platform: str, every_hours: float | None, after_events: int | None,
                   margin: float | None, metric: str | None, holdout_fraction: float | None, action: str | None,
                   model_name: str | None, config: str | None, off: bool, use_default: bool) -> None:
    """Show the platform's retraining policy, or change it (options not given keep their current value).

    Prints the effective policy as JSON; "source" says whether it is the platform's own or the default."""
    given = {"every_hours": every_hours, "after_events": after_events, "margin": margin, "metric": metric,
             "holdout_fraction": holdout_fraction, "action": action, "model": model_name}
    changes: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
    if config is not None:
        from shoprec.cli.evaluate import parse_config

        changes["params"] = parse_config(config)
    if use_default and (off or changes):
        raise click.UsageError("--default cannot be combined with other policy options")
    if off and ("every_hours" in changes or "after_events" in changes):
        raise click.UsageError("--off cannot be combined with --every-hours or --after-events")
    with _retraining(settings) as service:
        if use_default:
            policy = service.reset_policy(platform)
        elif off or changes:
            current = service.policy(platform)
            values: dict[str, Any] = {
                "every_hours": current.every_hours, "after_events": current.after_events, "model": current.model,
                "params": current.params}
            if current.source == "platform":  # the platform's own choices stay; default ones stay default
                values.update(margin=current.margin, metric=current.metric,
                              holdout_fraction=current.holdout_fraction, action=current.action)
            if "model" in changes and "params" not in changes:
                values["params"] = None  # another model: its own defaults
            values.update(changes)
            if off:
                values.update(every_hours=None, after_events=None)
            policy = service.set_policy(platform, **values)
        else:
            policy = service.policy(platform)
    _emit(policy.to_json())


@retrain_group.command("history")
@click.option("--platform", "-p", required=True, help="The platform.")
@click.option("--limit", "-n", type=click.IntRange(1, 1000), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the decisions as JSON.")
@click.pass_obj
def history_command(settings: Settings, platform: str, limit: int, as_json: bool) -> None:
    """The platform's newest promotion-gate decisions: model, time, metrics of both, decision, why."""
    with _retraining(settings) as service:
        decisions = service.history(platform, limit)
    if as_json:
        _emit([d.to_json() for d in decisions])
        return
    if not decisions:
        click.echo(f"no retraining decisions on platform {platform!r} yet")
        return
    click.echo(_table(decisions))


def _table(decisions: list[Decision]) -> str:
    def value(v: float | None) -> str:
        return "-" if v is None else f"{v:.4f}"

    header = ("time (UTC)", "candidate", "active", "metric", "candidate", "active", "decision", "why")
    rows = [(dt.datetime.fromtimestamp(d.created_at, dt.UTC).strftime("%Y-%m-%d %H:%M"),
             (d.candidate_model_id or "-")[:8], (d.active_model_id or "-")[:8], d.metric, value(d.value("candidate")),
             value(d.value("active")), d.decision, d.reason) for d in decisions]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1]
             for r in [header, *rows]]
    return "\n".join(lines)


@retrain_group.command("run")
@click.option("--platform", "-p", required=True, help="The platform.")
@click.pass_obj
def run_command(settings: Settings, platform: str) -> None:
    """Retrain now in this process: train the model anew, compare it with the active one on the time-based
    holdout and promote it, keep it, or start an experiment (the policy's action). Prints the decision."""
    with _retraining(settings) as service:
        decision = service.retrain(platform, progress=lambda msg: click.echo(msg, err=True), cause="manual")
    _emit(decision.to_json())


commands: list[click.Command] = [retrain_group]
