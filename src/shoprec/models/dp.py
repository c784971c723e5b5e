"""Differentially private training (DP-SGD through Opacus), shared by the rating models `mf` and `ncf`.

A model whose config sets `dp_epsilon` trains on (user, item, rating) triples with DP-SGD:

    each step:  Poisson-sample a batch (every triple independently, rate q = batch_size / n)
                clip each triple's gradient to L2 norm <= dp_max_grad_norm      (ghost clipping: no
                add N(0, (noise_multiplier * dp_max_grad_norm)^2) to the sum     per-sample gradient
                Adam step on the noisy mean                                      tensors are built)
    noise_multiplier: the smallest that keeps the RDP accountant's epsilon <= dp_epsilon after `epochs`
    passes at (dp_delta, q); the accountant then reports the epsilon actually spent.

Privacy unit: ONE RATING (record-level DP): the output hardly changes when one (user, item) rating is added
or removed. A user with many ratings is protected much less as a whole (user-level DP would clip per user).
What must stay public for the guarantee to hold, and is therefore never computed from the ratings:
- the global mean and the biases: learned parameters of the DP-SGD model (no mean taken beforehand);
- the per-row regularisation weights: constants n_rows / n_ratings instead of each row's rating count;
- the rating range used to clip predictions: the config's public `dp_rating_range`, else no clipping;
- no implicit who-rated-what links (`implicit` must be false) and no early stopping on validation data;
- the per-epoch training loss is dropped from the training log (it is measured on the ratings without noise).
The dataset size n, the user and item id lists (the platform's accounts and catalog) are treated as public,
as Opacus does (q = batch_size / n). Ratings are the latest per (user, item), so replacing a rating costs
at most twice the budget (remove + add).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from shoprec.errors import ConfigError
from shoprec.models.training import check_range

MECHANISM = "DP-SGD (Opacus)"
UNIT = "one rating (record-level)"
DEFAULT_DELTA = 1e-5  # dp_delta default: min(DEFAULT_DELTA, 1 / n_ratings)

# A per-sample loss: (module, users (B,), items (B,), ratings (B,)) -> loss of each triple (B,)
PerSampleLoss = Callable[[nn.Module, Tensor, Tensor, Tensor], Tensor]


# ------------------------------------------------------------------------------ config checks
def check_dp_config(model: str, cfg: Any) -> None:
    """ConfigError naming the parameter for bad dp_epsilon / dp_delta / dp_max_grad_norm / dp_rating_range,
    or for settings that would leak the training data around the DP mechanism."""
    check_range(model, "dp_max_grad_norm", cfg.dp_max_grad_norm, 0.0, strict_low=True)
    if cfg.dp_delta is not None and not 0.0 < cfg.dp_delta < 1.0:
        raise ConfigError(f"parameter 'dp_delta' of model {model!r} must be > 0 and < 1, got {cfg.dp_delta!r}")
    if cfg.dp_rating_range is not None:
        bounds = list(cfg.dp_rating_range)
        if len(bounds) != 2 or not bounds[0] < bounds[1]:
            raise ConfigError(f"parameter 'dp_rating_range' of model {model!r} must be [low, high] with low < high, "
                              f"got {list(cfg.dp_rating_range)}")
    if cfg.dp_epsilon is None:
        return
    if not math.isfinite(cfg.dp_epsilon) or cfg.dp_epsilon <= 0:
        raise ConfigError(f"parameter 'dp_epsilon' of model {model!r} must be a finite number > 0, "
                          f"got {cfg.dp_epsilon!r}")
    if cfg.implicit:
        raise ConfigError(f"parameter 'implicit' of model {model!r} must be false when dp_epsilon is set: "
                          "the who-rated-what links would be computed from the ratings without noise")


def drop_training_loss(log: list[dict[str, Any]]) -> None:
    """Remove the per-epoch training loss from a DP model's log: it is a statistic of the ratings measured
    without noise, so it must not travel in the artifact (it is shown while training only)."""
    for entry in log:
        entry.pop("loss", None)


def resolve_delta(delta: float | None, n_ratings: int) -> float:
    """The configured delta, or min(1e-5, 1 / n_ratings)."""
    return delta if delta is not None else min(DEFAULT_DELTA, 1.0 / max(n_ratings, 1))


# ------------------------------------------------------------------------------ the report
@dataclass(frozen=True)
class PrivacyReport:
    """What a DP-trained model spent: reported in meta.json and in evaluate / train JSON as "privacy"."""

    epsilon: float  # spent, from the RDP accountant (<= target_epsilon)
    delta: float
    target_epsilon: float
    noise_multiplier: float
    max_grad_norm: float
    sample_rate: float
    steps: int
    mechanism: str = MECHANISM
    unit: str = UNIT

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ------------------------------------------------------------------------------ training
class PrivateTrainer:
    """DP-SGD over aligned (users, items, ratings) tensors; `epoch()` runs one pass (len(loader) Poisson
    batches) and returns the mean per-triple loss; `report()` is the privacy spent so far."""

    def __init__(self, module: nn.Module, loss: PerSampleLoss, data: tuple[Tensor, Tensor, Tensor], *,
                 epsilon: float, delta: float, max_grad_norm: float, epochs: int, batch_size: int,
                 learning_rate: float, seed: int) -> None:
        from opacus import PrivacyEngine
        from torch.utils.data import DataLoader

        self.target_epsilon, self.delta, self.max_grad_norm = epsilon, delta, max_grad_norm
        device = next(module.parameters()).device
        sampling, noise = torch.Generator(), torch.Generator(device=device)  # batches on the CPU, noise on device
        sampling.manual_seed(seed)
        noise.manual_seed(seed + 1)
        loader: DataLoader[tuple[Tensor, ...]] = DataLoader(
            _Triples(*data), batch_size=batch_size, collate_fn=_as_is, generator=sampling)
        optimizer = torch.optim.Adam(module.parameters(), lr=learning_rate)
        with warnings.catch_warnings():  # Opacus warns about the non-secure RNG: seeded runs are the point here
            warnings.simplefilter("ignore")
            self.engine = PrivacyEngine(accountant="rdp")
            try:
                self.module, self.optimizer, self.criterion, self.loader = self.engine.make_private_with_epsilon(
                    module=module, optimizer=optimizer, criterion=_Criterion(), data_loader=loader,
                    target_epsilon=epsilon, target_delta=delta, epochs=epochs, max_grad_norm=max_grad_norm,
                    poisson_sampling=True, grad_sample_mode="ghost", noise_generator=noise)
            except ValueError as exc:  # "The privacy budget is too low": no noise level reaches it
                raise ConfigError(f"parameter 'dp_epsilon' = {epsilon} cannot be reached with dp_delta = {delta:g} "
                                  f"over {epochs} epochs at any noise level ({exc}); raise it, or dp_delta") from None
        self.loss = loss

    def epoch(self, after_step: Callable[[], None] | None = None) -> float:
        """One pass of Poisson batches; the mean loss of the sampled triples (before noise).
        `after_step` runs after every optimizer step (e.g. a moving average of the weights)."""
        self.module.train()
        total, count = 0.0, 0
        for users, items, ratings in self.loader:
            self.optimizer.zero_grad(set_to_none=True)
            if len(users):
                total += self._backward(users, items, ratings)
                count += len(users)
            else:  # an empty Poisson batch still takes its noise-only step (the accountant counts it)
                for p in self.module.parameters():
                    p.grad = torch.zeros_like(p)
            self.optimizer.step()
            if after_step is not None:
                after_step()
        return total / max(count, 1)

    def _backward(self, users: Tensor, items: Tensor, ratings: Tensor) -> float:
        """Per-rating losses, then Opacus' two backward passes (norms, then clipped sum); returns the loss sum."""
        per_sample = self.loss(self.module, users, items, ratings)
        with warnings.catch_warnings():  # the embedding inputs are indices: Opacus' hooks fire on outputs
            warnings.filterwarnings("ignore", message="Full backward hook is firing")
            self.criterion(per_sample).backward()
        return float(per_sample.detach().sum())

    def report(self) -> PrivacyReport:
        accountant = self.engine.accountant
        steps = sum(n for _, _, n in accountant.history)
        sample_rate = accountant.history[0][1] if accountant.history else 0.0
        with warnings.catch_warnings():  # "optimal order is the largest alpha": the bound holds, a bit loose
            warnings.simplefilter("ignore")
            epsilon = float(accountant.get_epsilon(self.delta))
        return PrivacyReport(
            epsilon=epsilon, delta=self.delta, target_epsilon=self.target_epsilon,
            noise_multiplier=float(self.optimizer.noise_multiplier), max_grad_norm=self.max_grad_norm,
            sample_rate=float(sample_rate), steps=int(steps))


class _Triples(Dataset[tuple[Tensor, ...]]):
    """A map-style dataset of aligned tensors that fetches a whole batch at once (`__getitems__`)."""

    def __init__(self, *tensors: Tensor) -> None:
        self.tensors = tensors

    def __len__(self) -> int:
        return len(self.tensors[0])

    def __getitem__(self, index: int) -> tuple[Tensor, ...]:
        return tuple(t[index] for t in self.tensors)

    def __getitems__(self, indices: list[int]) -> tuple[Tensor, ...]:
        idx = torch.as_tensor(indices, dtype=torch.int64)
        return tuple(t[idx] for t in self.tensors)


def _as_is(batch: Any) -> Any:
    return batch


class _Criterion(nn.Module):
    """Opacus' ghost clipping needs a criterion with `reduction`; ours receives the per-triple losses."""

    reduction = "mean"

    def forward(self, per_sample: Tensor) -> Tensor:
        return per_sample if self.reduction == "none" else per_sample.mean()
