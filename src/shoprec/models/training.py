"""Shared training utilities: config checks, device and thread choice, seeding, the epoch loop with
early stopping on a validation object, and torch state <-> numpy arrays for artifacts.

The epoch loop (`train_epochs`) is framework-free: it calls `train_epoch(epoch) -> loss`, evaluates
`validation.evaluate(model)` at the epochs `evaluate_at` selects, keeps a snapshot of the best state, stops
after `patience` evaluations without improvement, restores the best snapshot and logs every epoch
to `model.training_log`. Progress goes to stderr (a rich bar on a terminal, log lines otherwise).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from shoprec.errors import ConfigError
from shoprec.models.base import RankingValidation, RatingValidation, Recommender

log = logging.getLogger(__name__)
S = TypeVar("S")

THREADS_ENV = "SHOPREC_TORCH_THREADS"  # default torch CPU threads when a config says num_threads = 0


# ----------------------------------------------------------------------------- config checks
def check_range(model: str, name: str, value: float, low: float | None = None, high: float | None = None,
                *, strict_low: bool = False) -> None:
    """Raise ConfigError naming the parameter unless low <= value <= high (low < value when strict_low)."""
    too_low = low is not None and (value <= low if strict_low else value < low)
    too_high = high is not None and value > high
    if too_low or too_high or (isinstance(value, float) and math.isnan(value)):
        op = ">" if strict_low else ">="
        bounds = [f"{op} {low}"] if low is not None else []
        bounds += [f"<= {high}"] if high is not None else []
        raise ConfigError(f"parameter {name!r} of model {model!r} must be {' and '.join(bounds)}, got {value!r}")


# ----------------------------------------------------------------------------- device, threads, seeds
def pick_device(model: str, name: str) -> torch.device:
    """'auto' -> the GPU when one is available, else the CPU; 'cpu', 'cuda', 'cuda:N' as given."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"parameter 'device' of model {model!r}: unknown device {name!r} "
                          "(use auto, cpu, cuda or cuda:N)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"parameter 'device' of model {model!r} is {name!r} but no GPU is available")
    return device


def thread_count(num_threads: int) -> int:
    """Torch CPU threads to use: the config value, else $SHOPREC_TORCH_THREADS, else 0 (leave as is)."""
    if num_threads > 0:
        return num_threads
    env = os.environ.get(THREADS_ENV, "").strip()
    return int(env) if env.isdigit() else 0


@contextlib.contextmanager
def torch_session(seed: int, device: torch.device, num_threads: int = 0) -> Iterator[torch.Generator]:
    """Seeded, thread-limited block: torch's global RNG is forked (callers' state is untouched) and seeded,
    CPU threads set for the block only; yields a torch.Generator (on `device`) for explicit sampling."""
    threads = torch.get_num_threads()
    wanted = thread_count(num_threads)
    if wanted:
        torch.set_num_threads(wanted)
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            gen = torch.Generator(device=device)
            gen.manual_seed(seed)
            yield gen
    finally:
        torch.set_num_threads(threads)


# ----------------------------------------------------------------------------- artifacts
def module_state(module: torch.nn.Module, prefix: str = "net.") -> dict[str, np.ndarray]:
    """A module's state_dict as float32/int numpy arrays (CPU), keys prefixed for the artifact."""
    return {prefix + k: v.detach().cpu().numpy().copy() for k, v in module.state_dict().items()}


def load_module_state(module: torch.nn.Module, arrays: dict[str, np.ndarray], prefix: str = "net.") -> None:
    """Inverse of `module_state`: load the prefixed arrays into `module` (strict: every key must match)."""
    state = {k[len(prefix):]: torch.from_numpy(np.array(v)) for k, v in arrays.items() if k.startswith(prefix)}
    module.load_state_dict(state, strict=True)


def copy_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of a module's state, for best-epoch snapshots."""
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


# ----------------------------------------------------------------------------- the epoch loop
Validation = RankingValidation | RatingValidation


def validation_metric(validation: Validation) -> tuple[str, bool]:
    """(metric name, higher is better) used for early stopping on this validation object."""
    if isinstance(validation, RatingValidation):
        return "RMSE", False
    return f"NDCG@{validation.k}", True


@dataclass(frozen=True)
class EpochOutcome:
    epochs_run: int
    best_epoch: int  # the epoch whose state the model keeps (the last one without validation)
    best_value: float | None  # the validation metric at best_epoch (None without validation)
    metric: str | None


def train_epochs(
    model: Recommender,
    *,
    epochs: int,
    train_epoch: Callable[[int], float],
    validation: Validation | None = None,
    patience: int = 0,
    evaluate_at: Callable[[int], bool] | None = None,
    snapshot: Callable[[], S] | None = None,
    restore: Callable[[S], None] | None = None,
) -> EpochOutcome:
    """Run up to `epochs` epochs (1-based) with early stopping; see the module docstring.

    `evaluate_at(epoch)` says when to validate (default: every epoch); the last epoch is always validated.
    patience = 0 never stops early (the best evaluated state is still restored at the end).
    """
    metric, higher = validation_metric(validation) if validation is not None else (None, True)
    best_value: float | None = None
    best_epoch, best_state, bad = 0, None, 0
    epoch = 0
    with _progress(model.name, epochs) as advance:
        for epoch in range(1, epochs + 1):
            t0 = time.perf_counter()
            loss = float(train_epoch(epoch))
            entry: dict[str, Any] = {"epoch": epoch, "loss": round(loss, 6),
                                     "seconds": round(time.perf_counter() - t0, 4)}
            due = evaluate_at is None or evaluate_at(epoch) or epoch == epochs
            if validation is not None and metric is not None and due:
                scores = validation.evaluate(model)
                entry.update({k: round(v, 6) for k, v in scores.items()})
                value = scores[metric]
                if best_value is None or (value > best_value if higher else value < best_value):
                    best_value, best_epoch, bad = value, epoch, 0
                    best_state = snapshot() if snapshot is not None else None
                else:
                    bad += 1
            model.training_log.append(entry)
            advance(entry)
            if patience and bad >= patience:
                break
    if validation is None:
        best_epoch = epoch
    elif best_state is not None and restore is not None and best_epoch != epoch:
        restore(best_state)
    return EpochOutcome(epochs_run=epoch, best_epoch=best_epoch, best_value=best_value, metric=metric)


@contextlib.contextmanager
def _progress(name: str, epochs: int) -> Iterator[Callable[[dict[str, Any]], None]]:
    """A rich progress bar on stderr when it is a terminal; INFO log lines per epoch otherwise."""
    if not sys.stderr.isatty():
        yield lambda entry: log.info("%s %s", name, entry)
        return
    progress = Progress(TextColumn(f"[bold]{name}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                        TextColumn("{task.fields[info]}"), TimeElapsedColumn(),
                        console=Console(stderr=True), transient=True)
    with progress:
        task = progress.add_task(name, total=epochs, info="")

        def advance(entry: dict[str, Any]) -> None:
            info = " ".join(f"{k}={v}" for k, v in entry.items() if k not in ("epoch", "seconds"))
            progress.update(task, advance=1, info=info)

        yield advance
