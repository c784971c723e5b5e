"""Train / validation / test splits: pure functions on Interactions returning a `Split`.

Every split keeps the id maps of its input (the parts share them, so indices stay valid) and puts
each event in exactly one part. Time order is the order of `Interactions.time_order`: by timestamp,
and for equal timestamps by position in the input (so synthetic or tied times keep file order).

- `leave_one_out`: per user, the last event is the test event and the second-to-last the validation
  event; the rest is training. Users with fewer than 3 events: 2 events -> train + test (no
  validation event), 1 event -> train only (the user is not evaluated). With `validation=False`
  every user with at least 2 events gives its last event to test and the rest to train.
- `temporal`: a global cut-off: train strictly before it, test at or after it (optionally a
  validation window `[valid_from, cutoff)` carved from the end of the training period).
- `kfold`: seeded random partition of the events into k folds; fold i is the test part of split i.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

import numpy as np

from shoprec.data.interactions import Interactions
from shoprec.errors import ConfigError, DataError


@dataclass(frozen=True)
class Split:
    """Disjoint parts of one Interactions, sharing its id maps. `valid` is None when there is none."""

    train: Interactions
    valid: Interactions | None
    test: Interactions

    def parts(self) -> dict[str, Interactions]:
        out = {"train": self.train, "test": self.test}
        if self.valid is not None:
            out["valid"] = self.valid
        return out


def positions_from_end(data: Interactions) -> tuple[np.ndarray, np.ndarray]:
    """Per row: (how many of its user's events come after it in time order, its user's event count)."""
    order, bounds = data.sequence_rows()
    counts = np.diff(bounds)
    rank_in_user = np.arange(len(order)) - np.repeat(bounds[:-1], counts)
    from_end = np.empty(len(data), dtype=np.int64)
    from_end[order] = np.repeat(counts, counts) - 1 - rank_in_user
    n_events = counts[data.user].astype(np.int64)
    return from_end, n_events


def leave_one_out(data: Interactions, *, validation: bool = True) -> Split:
    """Per user by time order: last event -> test, second-to-last -> valid, the rest -> train.

    Users with 2 events give their last one to test and have no validation event; users with a single
    event stay in train only. With `validation=False` there is no valid part (`Split.valid` is None).
    """
    from_end, n_events = positions_from_end(data)
    is_test = (from_end == 0) & (n_events >= 2)
    is_valid = (from_end == 1) & (n_events >= 3) if validation else np.zeros(len(data), dtype=bool)
    train = data.subset(~(is_test | is_valid))
    return Split(train=train, valid=data.subset(is_valid) if validation else None, test=data.subset(is_test))


def to_timestamp(value: int | float | str | date | datetime) -> int:
    """Unix seconds from a number, a date/datetime, or an ISO date string ('2011-11-01', UTC when naive)."""
    if isinstance(value, bool):
        raise ConfigError(f"cut-off must be a date or unix seconds, got {value!r}")
    if isinstance(value, int | float | np.integer | np.floating):
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(float(text))
        except ValueError:
            pass
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            raise ConfigError(f"cut-off {text!r} is neither an ISO date (e.g. 2011-11-01) nor unix seconds") from None
    if isinstance(value, datetime):
        dt = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return int(dt.timestamp())
    if isinstance(value, date):
        return int(datetime(value.year, value.month, value.day, tzinfo=UTC).timestamp())
    raise ConfigError(f"cut-off must be a date or unix seconds, got {value!r}")


def temporal(
    data: Interactions,
    cutoff: int | float | str | date | datetime,
    *,
    valid_from: int | float | str | date | datetime | None = None,
) -> Split:
    """Train: events before `cutoff`; test: events at or after it. Optional valid: `[valid_from, cutoff)`.

    Raises DataError when the training or the test part would be empty (the message names the range).
    """
    cut = to_timestamp(cutoff)
    ts = data.timestamp
    if len(data) == 0:
        raise DataError("temporal split: the interactions are empty")
    start = cut if valid_from is None else to_timestamp(valid_from)
    if start > cut:
        raise ConfigError(f"temporal split: valid_from {valid_from!r} is after the cut-off {cutoff!r}")
    is_test = ts >= cut
    is_valid = (ts >= start) & ~is_test
    is_train = ts < start
    if not is_train.any() or not is_test.any():
        part = "training" if not is_train.any() else "test"
        raise DataError(f"temporal split at {cutoff!r}: the {part} part is empty "
                        f"(timestamps range {_iso(int(ts.min()))} .. {_iso(int(ts.max()))})")
    valid = data.subset(is_valid) if valid_from is not None else None
    return Split(train=data.subset(is_train), valid=valid, test=data.subset(is_test))


def kfold(data: Interactions, k: int, rng: np.random.Generator) -> list[Split]:
    """k splits from a seeded random partition of the events: each event is in exactly one test fold."""
    if k < 2:
        raise ConfigError(f"kfold: k must be at least 2, got {k}")
    if k > len(data):
        raise ConfigError(f"kfold: k={k} folds need at least {k} events, got {len(data)}")
    fold_of = np.empty(len(data), dtype=np.int64)
    fold_of[rng.permutation(len(data))] = np.arange(len(data)) % k
    return [Split(train=data.subset(fold_of != f), valid=None, test=data.subset(fold_of == f)) for f in range(k)]


def _iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat()
