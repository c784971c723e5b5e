"""THE trainer: run-time options, device and thread choice, seeding, the epoch loop with its hooks
(early stopping, EMA, checkpoints, a time limit, DDP), one progress bar, and torch state <-> numpy arrays.

The epoch loop (`train`) is framework-free: each epoch it calls `train_epoch(epoch) -> entry fields`,
validates when `evaluate_at(epoch)` (and at the last epoch, or when out of time), keeps a snapshot of
the best state, stops after `stop_after` validations without improvement, restores the best snapshot and
logs every epoch to `state.log`. Hooks (`TrainHook`) add what a model needs around it: `EMA` (validate and
keep averaged weights), `Checkpoints` (resume after an interruption), `TimeLimit` (stop after max_seconds,
agreed by every DDP process). `train_epochs` is the same loop for models whose epoch returns a loss.
Every model uses `pick_device` and `progress_bar` from here.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from safetensors.torch import load_file as load_tensors
from safetensors.torch import save_file as save_tensors
from torch import Tensor, nn

from shoprec.errors import ConfigError
from shoprec.models.base import RankingValidation, RatingValidation, Recommender
from shoprec.settings import process_settings

log = logging.getLogger(__name__)

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


@dataclass(frozen=True)
class TrainOptions:
    """How and where a fit runs (never saved in the artifact; given in the same config dicts as the model's
    parameters, e.g. --config '{"device": "cuda"}')."""

    device: str = "auto"  # auto | cpu | cuda | cuda:N
    num_threads: int = 0  # torch CPU threads while fitting; 0 = the torch_threads setting or leave as is
    checkpoint_dir: str = ""  # resume from / save to this directory after every epoch
    max_seconds: float = 0.0  # > 0: stop after the first epoch that ends past this training time (best kept;
    # for an ensemble the time of all members together)
    progress: bool = True  # progress bar on stderr
    text_cache_dir: str = ""  # "" = <cache_dir setting>/text (~/.cache/shoprec/text)
    # caps on what a model's "auto" sizes resolve to (0 = none): a training job gets the deployment's [limits]
    # epochs / max_len here (worker.handlers.with_deployment_limits), as a number given is checked against them
    max_epochs: int = 0
    max_context: int = 0

    def check(self, model: str) -> None:
        check_range(model, "num_threads", self.num_threads, 0)
        check_range(model, "max_seconds", self.max_seconds, 0.0)
        check_range(model, "max_epochs", self.max_epochs, 0)
        check_range(model, "max_context", self.max_context, 0)


# ----------------------------------------------------------------------------- device, threads, seeds
def pick_device(model: str, name: str) -> torch.device:
    """'auto' -> the GPU when one is available (under torchrun the GPU of LOCAL_RANK), else the CPU;
    'cpu', 'cuda', 'cuda:N' as given."""
    if name == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        try:
            device = torch.device(name)
        except RuntimeError:
            raise ConfigError(f"parameter 'device' of model {model!r}: unknown device {name!r} "
                              "(use auto, cpu, cuda or cuda:N)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"parameter 'device' of model {model!r} is {name!r} but no GPU is available")
    if device.type == "cuda" and device.index is None and "LOCAL_RANK" in os.environ:
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    if device.type == "cuda" and device.index is not None:
        torch.cuda.set_device(device)
    return device


def thread_count(num_threads: int) -> int:
    """Torch CPU threads to use: the config value, else the torch_threads setting (SHOPREC_TORCH_THREADS),
    else 0 (leave as is)."""
    if num_threads > 0:
        return num_threads
    return process_settings().torch_threads


@contextlib.contextmanager
def torch_threads(num_threads: int) -> Iterator[None]:
    """Torch CPU threads set to `num_threads` for the block only (0: left as is)."""
    threads = torch.get_num_threads()
    if num_threads:
        torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@contextlib.contextmanager
def torch_session(seed: int, device: torch.device, num_threads: int = 0) -> Iterator[torch.Generator]:
    """Seeded, thread-limited block: torch's global RNG is forked (callers' state is untouched) and seeded,
    CPU threads set for the block only; yields a torch.Generator (on `device`) for explicit sampling."""
    with torch_threads(thread_count(num_threads)), forked_rng(seed, device):
        gen = torch.Generator(device=device)
        gen.manual_seed(seed)
        yield gen


@contextlib.contextmanager
def forked_rng(seed: int, device: torch.device) -> Iterator[None]:
    """torch's global RNG (and the GPU's) seeded with `seed` inside the block, restored after it."""
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        yield


# ----------------------------------------------------------------------------- distributed (DDP)
@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: torch.device) -> Dist:
    """Join the torchrun process group when WORLD_SIZE > 1 (gloo on CPU, nccl on GPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Dist(rank=dist.get_rank(), world=dist.get_world_size())


def all_sum(values: list[float], dist_: Dist, device: torch.device) -> list[float]:
    """Element-wise sum over the DDP processes (the values themselves with one process)."""
    if dist_.world == 1:
        return values
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


# ----------------------------------------------------------------------------- the epoch loop
Validation = RankingValidation | RatingValidation


def validation_metric(validation: Validation) -> tuple[str, bool]:
    """(metric name, higher is better) used for early stopping on this validation object."""
    if isinstance(validation, RatingValidation):
        return "RMSE", False
    return f"NDCG@{validation.k}", True


@dataclass
class TrainState:
    """Where a training run stands (checkpointed by `Checkpoints`)."""

    epoch: int = 0
    step: int = 0  # optimizer steps (the learning-rate schedule's clock)
    best_score: float | None = None
    best_epoch: int = 0
    bad_evals: int = 0  # validations since the last improvement
    stopped: bool = False
    best: Any = None  # snapshot of the best validated state
    log: list[dict[str, Any]] = field(default_factory=list)
    ema: list[Tensor] | None = None  # averaged parameters, in net.parameters() order


class TrainHook:
    """Extension points of `train`; every method does nothing here."""

    def before_epoch(self, state: TrainState, epoch: int) -> None: ...
    def out_of_time(self, state: TrainState) -> bool:
        return False
    def before_validate(self, state: TrainState) -> None: ...
    def after_validate(self, state: TrainState) -> None: ...
    def after_epoch(self, state: TrainState) -> None: ...
    def end(self, state: TrainState) -> None: ...


def train(name: str, state: TrainState, *, epochs: int, train_epoch: Callable[[int], dict[str, Any]],
          validate: Callable[[int], tuple[float, dict[str, Any]]] | None = None, higher: bool = True,
          evaluate_at: Callable[[int], bool] | None = None, stop_after: int = 0,
          snapshot: Callable[[], Any] | None = None, restore: Callable[[Any], None] | None = None,
          hooks: Sequence[TrainHook] = (), progress: bool = True) -> TrainState:
    """Epochs state.epoch + 1 .. `epochs` (1-based) with early stopping; see the module docstring.

    validate(epoch) -> (metric value, fields for the log entry); `evaluate_at(epoch)` says when (default:
    every epoch); stop_after = 0 never stops early (the best validated state is still restored).
    """
    with progress_bar(name, epochs, progress) as advance:
        advance(state.epoch, None)
        while state.epoch < epochs and not state.stopped:
            epoch = state.epoch + 1
            for hook in hooks:
                hook.before_epoch(state, epoch)
            entry: dict[str, Any] = {"epoch": epoch, **train_epoch(epoch)}
            out_of_time = any([hook.out_of_time(state) for hook in hooks])
            if validate is not None and (evaluate_at is None or evaluate_at(epoch) or epoch == epochs or out_of_time):
                for hook in hooks:
                    hook.before_validate(state)
                value, fields = validate(epoch)
                entry.update(fields)
                best = state.best_score
                if best is None or (value > best if higher else value < best):
                    state.best_score, state.best_epoch, state.bad_evals = value, epoch, 0
                    state.best = snapshot() if snapshot is not None else None
                else:
                    state.bad_evals += 1
                for hook in reversed(hooks):
                    hook.after_validate(state)
            state.stopped = state.stopped or out_of_time or bool(stop_after and state.bad_evals >= stop_after)
            state.epoch = epoch
            state.log.append(entry)
            for hook in hooks:
                hook.after_epoch(state)
            advance(1, entry)
    if state.best is not None and restore is not None:
        restore(state.best)
    for hook in hooks:
        hook.end(state)
    if validate is None or not state.best_epoch:
        state.best_epoch = state.epoch
    return state


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
    snapshot: Callable[[], Any] | None = None,
    restore: Callable[[Any], None] | None = None,
) -> EpochOutcome:
    """`train` for a model whose epoch returns its loss; entries go to model.training_log (rounded).
    patience = 0 never stops early."""
    metric, higher = validation_metric(validation) if validation is not None else (None, True)

    def epoch_fields(epoch: int) -> dict[str, Any]:
        t0 = time.perf_counter()
        loss = float(train_epoch(epoch))
        return {"loss": round(loss, 6), "seconds": round(time.perf_counter() - t0, 4)}

    def validate(_: int) -> tuple[float, dict[str, Any]]:
        assert validation is not None and metric is not None
        scores = validation.evaluate(model)
        return scores[metric], {k: round(v, 6) for k, v in scores.items()}

    state = train(model.name, TrainState(log=model.training_log), epochs=epochs, train_epoch=epoch_fields,
                  validate=validate if validation is not None else None, higher=higher, evaluate_at=evaluate_at,
                  stop_after=patience, snapshot=snapshot, restore=restore)
    return EpochOutcome(epochs_run=state.epoch, best_epoch=state.best_epoch, best_value=state.best_score,
                        metric=metric)


# ----------------------------------------------------------------------------- hooks
def swap(net: nn.Module, other: list[Tensor]) -> None:
    """Exchange the values of net's parameters with `other` (same order and shapes), in place."""
    with torch.no_grad():
        for p, o in zip(net.parameters(), other, strict=True):
            tmp = p.detach().clone()
            p.copy_(o)
            o.copy_(tmp)


class EMA(TrainHook):
    """An exponential moving average of the weights (state.ema), validated and kept instead of them."""

    def __init__(self, net: nn.Module, decay: float) -> None:
        self.net, self.decay = net, decay

    def begin(self, state: TrainState) -> None:
        if state.ema is None:
            state.ema = [p.detach().clone() for p in self.net.parameters()]

    def update(self, state: TrainState, model: nn.Module) -> None:
        """After an optimizer step (before state.step counts it)."""
        assert state.ema is not None
        decay = min(self.decay, (1 + state.step) / (10 + state.step))
        torch._foreach_lerp_(state.ema, [p.detach() for p in model.parameters()], 1.0 - decay)

    def before_validate(self, state: TrainState) -> None:
        assert state.ema is not None
        swap(self.net, state.ema)  # validate (and keep) the averaged weights

    def after_validate(self, state: TrainState) -> None:
        assert state.ema is not None
        swap(self.net, state.ema)  # back to the trained weights

    def end(self, state: TrainState) -> None:
        if state.best is None and state.ema is not None:
            swap(self.net, state.ema)


class TimeLimit(TrainHook):
    """Out of time once `max_seconds` have passed since the start, on any DDP process."""

    def __init__(self, max_seconds: float, dist_: Dist, device: torch.device) -> None:
        self.max_seconds, self.dist, self.device = max_seconds, dist_, device
        self.started = time.perf_counter()

    def out_of_time(self, state: TrainState) -> bool:
        late = float(time.perf_counter() - self.started > self.max_seconds)
        return all_sum([late], self.dist, self.device)[0] > 0


class Checkpoints(TrainHook):
    """checkpoint.safetensors (weights, best weights, EMA, optimizer state) + checkpoint.json, replaced
    atomically after every epoch (by the main process); `resume` reads them back when the fingerprint
    (config and data) is the same."""

    def __init__(self, directory: str, fingerprint: str, net: nn.Module, optimizer: torch.optim.Optimizer,
                 main: bool = True) -> None:
        self.dir, self.fingerprint = Path(directory), fingerprint
        self.net, self.optimizer, self.main = net, optimizer, main

    def exists(self) -> bool:
        meta = self.dir / "checkpoint.json"
        if not meta.exists() or not (self.dir / "checkpoint.safetensors").exists():
            return False
        found = json.loads(meta.read_text(encoding="utf-8")).get("fingerprint")
        if found != self.fingerprint:
            log.warning("checkpoint in %s is for another config or data; starting afresh", self.dir)
            return False
        return True

    def after_epoch(self, state: TrainState) -> None:
        if self.main:
            self.save(state)

    def save(self, state: TrainState) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in self.net.state_dict().items()}
        if state.best is not None:
            tensors.update({f"best.{k}": v.detach().cpu().contiguous() for k, v in state.best.items()})
        for i, t in enumerate(state.ema or []):
            tensors[f"ema.{i}"] = t.detach().cpu().contiguous()
        for i, s in self.optimizer.state_dict()["state"].items():
            tensors.update({f"opt.{i}.{k}": torch.as_tensor(v).detach().cpu().contiguous() for k, v in s.items()})
        best_score = -1.0 if state.best_score is None else state.best_score
        meta = {"fingerprint": self.fingerprint, "epoch": state.epoch, "step": state.step,
                "best_score": best_score, "best_epoch": state.best_epoch, "bad_evals": state.bad_evals,
                "stopped": state.stopped, "log": state.log}
        tmp = self.dir / "checkpoint.tmp.safetensors"
        save_tensors(tensors, str(tmp))
        os.replace(tmp, self.dir / "checkpoint.safetensors")
        tmp_json = self.dir / "checkpoint.tmp.json"
        tmp_json.write_text(json.dumps(meta), encoding="utf-8")
        os.replace(tmp_json, self.dir / "checkpoint.json")

    def resume(self) -> TrainState:
        meta = json.loads((self.dir / "checkpoint.json").read_text(encoding="utf-8"))
        tensors = load_tensors(str(self.dir / "checkpoint.safetensors"))
        device = next(self.net.parameters()).device
        self.net.load_state_dict({k[6:]: v.to(device) for k, v in tensors.items() if k.startswith("model.")})
        best = {k[5:]: v.to(device) for k, v in tensors.items() if k.startswith("best.")} or None
        n_ema = sum(k.startswith("ema.") for k in tensors)
        ema = [tensors[f"ema.{i}"].to(device) for i in range(n_ema)] or None
        opt_state: dict[int, dict[str, Tensor]] = {}
        for key, v in tensors.items():
            if key.startswith("opt."):
                _, i, name = key.split(".", 2)
                opt_state.setdefault(int(i), {})[name] = v if name == "step" else v.to(device)
        sd = self.optimizer.state_dict()
        self.optimizer.load_state_dict({"state": opt_state, "param_groups": sd["param_groups"]})
        best_score = meta["best_score"] if best is not None else None
        log.info("resumed from %s after epoch %d", self.dir, meta["epoch"])
        return TrainState(epoch=meta["epoch"], step=meta["step"], best_score=best_score,
                          best_epoch=meta["best_epoch"], bad_evals=meta["bad_evals"], stopped=meta["stopped"],
                          best=best, log=meta["log"], ema=ema)


# ----------------------------------------------------------------------------- progress
@contextlib.contextmanager
def progress_bar(name: str, total: int, enabled: bool = True) -> Iterator[Callable[[int, dict[str, Any] | None],
                                                                                  None]]:
    """Yields advance(n, entry): a rich bar on stderr (when enabled and stderr is a terminal) showing the
    loss and validation metrics; an INFO log line per epoch entry in any case."""
    def log_line(entry: dict[str, Any] | None) -> None:
        if entry:
            log.info("%s epoch %s: %s", name, entry.get("epoch"), " ".join(
                f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in entry.items() if k != "epoch"))

    if not (enabled and sys.stderr.isatty()):
        yield lambda n, entry: log_line(entry)
        return
    bar = Progress(TextColumn(f"[bold]{name}"), BarColumn(), TextColumn("epoch {task.completed}/{task.total}"),
                   TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=Console(stderr=True),
                   transient=True)
    with bar:
        task = bar.add_task(name, total=total, info="")

        def advance(n: int, entry: dict[str, Any] | None) -> None:
            log_line(entry)
            info = " ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in (entry or {}).items()
                            if k == "loss" or "@" in k or k in ("RMSE", "MAE"))
            bar.update(task, advance=n, info=info or bar.tasks[0].fields["info"])

        yield advance


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
