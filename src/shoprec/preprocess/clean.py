"""Cleaning rules: one module for import (streaming records) and training data (Interactions).

Record-level rules decide, per event, the first rule that rejects it (in this order):

- missing_user: the user id is empty.
- missing_item: the item id is empty.
- bad_timestamp: the timestamp is not a finite number >= `min_timestamp` (readers use the same reason
  for text they cannot parse as a time).
- future_timestamp: the timestamp is later than `now + future_tolerance_seconds`.
- non_product_code: the item id is one of `non_product_codes` (exact) or fully matches the regex
  `non_product_pattern`: postage, fees, manual adjustments, vouchers. Set both to empty/None to disable.
- non_positive_quantity: an event of `quantity_event_types` has a value <= 0 (returns are exempt: their
  source quantity is negative).
- non_positive_price: the event's price (context "price") is <= 0 (returns are exempt).

Items: an empty id (missing_item) or a non-product code (non_product_item) rejects the item record;
titles and descriptions get whitespace collapsed; a price <= 0 is dropped (the item is kept without a price).
Users: an empty id rejects the user record (missing_user).

Same product, several descriptions: readers that build items from transaction rows (Online Retail) take the
most frequent description per item id (`choose_most_frequent`, used by both the streaming reader and the
in-memory loader). When a stream sends the same item id again with a title that differs after normalising
whitespace and case, `RecordCleaner` keeps the first non-empty title it saw (streaming cannot look ahead);
the count of such rewrites is stated in a closing Note.

The vectorised `event_reasons` is the single implementation of the event rules: `RecordCleaner` applies it
to batches of records, and the in-memory loaders apply it to whole columns.

Interactions-level rules (`clean_interactions`): exact duplicate events (duplicate), bot-like users
(bot_user: more than `bot_max_events` distinct timestamps within any window of `bot_window_seconds`; events
sharing a timestamp, such as the lines of one invoice, count once) and the optional iterative k-core (kcore).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from shoprec.config import config_from_dict
from shoprec.data.interactions import Interactions
from shoprec.data.records import EventRecord, ItemRecord, Note, Record, Rejected, Source, UserRecord
from shoprec.errors import ConfigError
from shoprec.preprocess.kcore import kcore_mask
from shoprec.preprocess.report import CleaningReport
from shoprec.types import EventType

DEFAULT_NON_PRODUCT_CODES: tuple[str, ...] = (
    "POST", "DOT", "M", "m", "C2", "D", "S", "B", "CRUK", "PADS", "BANK CHARGES", "AMAZONFEE",
    "ADJUST", "ADJUST2", "TEST001", "TEST002",
)
"""Postage, carriage, manual adjustments, discounts, samples, bank and marketplace fees, commissions, bad debt.
Matched exactly (case-sensitive, after stripping spaces), so an item "b" or "post-card" is not affected."""

DEFAULT_NON_PRODUCT_PATTERN = r"(?i)gift_\d+_\d+"
"""Gift vouchers (e.g. gift_0001_20); a full match, case-insensitive through the (?i) flag."""

EVENT_RULES: tuple[str, ...] = (
    "missing_user", "missing_item", "bad_timestamp", "future_timestamp", "non_product_code",
    "non_positive_quantity", "non_positive_price",
)
"""Record-level event rules in the order they are checked; `event_reasons` returns 1 + index (0 = kept)."""

RULE_FIELDS: dict[str, str] = {
    "missing_user": "user_id", "missing_item": "item_id", "bad_timestamp": "timestamp",
    "future_timestamp": "timestamp", "non_product_code": "item_id", "non_positive_quantity": "value",
    "non_positive_price": "price",
}


@dataclass(frozen=True)
class CleaningConfig:
    """Every cleaning rule's setting; the defaults suit the public datasets and ordinary shops."""

    non_product_codes: tuple[str, ...] = DEFAULT_NON_PRODUCT_CODES
    non_product_pattern: str | None = DEFAULT_NON_PRODUCT_PATTERN
    future_tolerance_seconds: float = 86400.0
    min_timestamp: float = 0.0
    quantity_event_types: tuple[str, ...] = ("purchase", "cart", "remove_from_cart")
    drop_duplicates: bool = True
    bot_window_seconds: int = 3600
    bot_max_events: int | None = 300
    kcore_users: int = 0
    kcore_items: int = 0

    def __post_init__(self) -> None:
        if self.non_product_pattern is not None:
            try:
                re.compile(self.non_product_pattern)
            except re.error as exc:
                raise ConfigError(f"cleaning parameter 'non_product_pattern' is not a valid regex: {exc}") from None
        for name in self.quantity_event_types:
            try:
                EventType.parse(name)
            except ValueError as exc:
                raise ConfigError(f"cleaning parameter 'quantity_event_types': {exc}") from None
        for name in ("future_tolerance_seconds", "bot_window_seconds", "kcore_users", "kcore_items"):
            if getattr(self, name) < 0:
                raise ConfigError(f"cleaning parameter {name!r} must be >= 0, got {getattr(self, name)}")
        if self.bot_max_events is not None and self.bot_max_events < 1:
            raise ConfigError(f"cleaning parameter 'bot_max_events' must be >= 1 or null, got {self.bot_max_events}")

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> CleaningConfig:
        """Build from JSON/TOML values, naming an unknown or mistyped parameter in a ConfigError."""
        config: CleaningConfig = config_from_dict(cls, data)
        return config


# ------------------------------------------------------------------------------ text
_SPACES = re.compile(r"\s+")


def normalise_text(text: str) -> str:
    """Whitespace collapsed to single spaces, stripped."""
    return _SPACES.sub(" ", text).strip()


def text_key(text: str) -> str:
    """What two descriptions must share to count as the same: normalised whitespace, case-folded."""
    return normalise_text(text).casefold()


def choose_most_frequent(votes: pd.DataFrame) -> dict[str, str]:
    """Per item, the most frequent description; ties go to the one seen first.

    `votes` has one row per (item, text_key) with columns item, key, text (the first text seen with
    that key), count, first (position of the first occurrence). Empty keys never win.
    """
    votes = votes[votes["key"] != ""]
    if votes.empty:
        return {}
    ordered = votes.sort_values(["item", "count", "first"], ascending=[True, False, True], kind="stable")
    best = ordered.drop_duplicates("item", keep="first")
    return dict(zip(best["item"].tolist(), best["text"].tolist(), strict=True))


# ---------------------------------------------------------------------------- events
class NonProductMatcher:
    """Whether item ids are non-product codes (one of the exact codes, or a full match of the pattern)."""

    def __init__(self, config: CleaningConfig) -> None:
        self.codes = {c.strip() for c in config.non_product_codes}
        pattern = config.non_product_pattern
        self.pattern = re.compile(pattern) if pattern else None

    def __call__(self, item_id: str) -> bool:
        if item_id.strip() in self.codes:
            return True
        return bool(self.pattern is not None and self.pattern.fullmatch(item_id.strip()))

    def many(self, item_ids: np.ndarray) -> np.ndarray:
        """Boolean mask over an object array of ids (evaluated once per distinct id)."""
        if len(item_ids) == 0:
            return np.zeros(0, dtype=bool)
        codes, uniques = pd.factorize(item_ids)
        hit = np.fromiter((self(str(u)) for u in uniques), dtype=bool, count=len(uniques))
        return hit[codes]


@dataclass
class EventColumns:
    """Event rows as columns, for the vectorised rules: ids as object arrays of str, times in unix seconds."""

    user_id: np.ndarray
    item_id: np.ndarray
    event_type: np.ndarray  # int8 EventType codes
    timestamp: np.ndarray  # float64, NaN when unknown
    value: np.ndarray  # float64, NaN when absent
    price: np.ndarray  # float64, NaN when absent

    @classmethod
    def from_records(cls, events: Sequence[EventRecord]) -> EventColumns:
        n = len(events)
        return cls(
            user_id=np.array([e.user_id for e in events], dtype=object),
            item_id=np.array([e.item_id for e in events], dtype=object),
            event_type=np.fromiter((e.event_type.code for e in events), dtype=np.int8, count=n),
            timestamp=np.fromiter((_float(e.timestamp) for e in events), dtype=np.float64, count=n),
            value=np.fromiter((_float(e.value) for e in events), dtype=np.float64, count=n),
            price=np.fromiter((_float((e.context or {}).get("price")) for e in events), dtype=np.float64, count=n),
        )


def _float(x: Any) -> float:
    if x is None:
        return math.nan
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def _empty(ids: np.ndarray) -> np.ndarray:
    """True where an id is missing or blank (evaluated once per distinct value)."""
    if len(ids) == 0:
        return np.zeros(0, dtype=bool)
    codes, uniques = pd.factorize(ids)
    blank = np.fromiter((not str(u).strip() for u in uniques), dtype=bool, count=len(uniques))
    return np.where(codes < 0, True, blank[codes])


def event_reasons(cols: EventColumns, config: CleaningConfig, now: float,
                  matcher: NonProductMatcher | None = None) -> np.ndarray:
    """Per event, 0 when kept, else 1 + the index in EVENT_RULES of the first rule that rejects it."""
    n = len(cols.user_id)
    reasons = np.zeros(n, dtype=np.int8)
    matcher = matcher or NonProductMatcher(config)
    ts = cols.timestamp
    with np.errstate(invalid="ignore"):
        quantity_codes = [EventType.parse(t).code for t in config.quantity_event_types]
        is_return = cols.event_type == EventType.RETURN.code
        checks = (
            lambda: _empty(cols.user_id),
            lambda: _empty(cols.item_id),
            lambda: ~np.isfinite(ts) | (ts < config.min_timestamp),
            lambda: ts > now + config.future_tolerance_seconds,
            lambda: matcher.many(cols.item_id),
            lambda: np.isin(cols.event_type, quantity_codes) & (cols.value <= 0),
            lambda: ~is_return & (cols.price <= 0),
        )
        for k, check in enumerate(checks, start=1):
            open_ = reasons == 0
            if not open_.any():
                break
            reasons[open_ & check()] = k
    return reasons


def _iso(ts: float) -> str:
    try:
        return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return f"{ts:g} s"


def rule_detail(rule: str, *, user_id: str = "", item_id: str = "", timestamp: float = math.nan,
                value: float = math.nan, price: float = math.nan, now: float = math.nan) -> str:
    """A person-readable explanation of why one event broke `rule`."""
    if rule == "missing_user":
        return "the event has no user id"
    if rule == "missing_item":
        return "the event has no item id"
    if rule == "bad_timestamp":
        return f"timestamp {timestamp!r} is not a valid time"
    if rule == "future_timestamp":
        hint = " (milliseconds instead of seconds?)" if timestamp > 1e11 else ""
        return f"timestamp {_iso(timestamp)} is in the future (now {_iso(now)}){hint}"
    if rule == "non_product_code":
        return f"item {item_id!r} is a non-product code (postage, fee, adjustment, voucher...)"
    if rule == "non_positive_quantity":
        return f"quantity must be > 0, got {value:g}"
    if rule == "non_positive_price":
        return f"price must be > 0, got {price:g}"
    return rule


def report_rejections(report: CleaningReport, reasons: np.ndarray, cols: EventColumns, file: str,
                      lines: np.ndarray, now: float) -> None:
    """Count vectorised rejections into `report` with the first examples (file:line field=...: reason: detail)."""
    for k, rule in enumerate(EVENT_RULES, start=1):
        rows = np.flatnonzero(reasons == k)
        if not len(rows):
            continue
        for r in rows[:report.max_examples]:
            report.add(rule, _rejected(rule, cols, int(r), Source(file, int(lines[r])), now))
        report.add(rule, count=len(rows) - min(len(rows), report.max_examples))


def _rejected(rule: str, cols: EventColumns, r: int, source: Source, now: float) -> Rejected:
    detail = rule_detail(rule, user_id=str(cols.user_id[r]), item_id=str(cols.item_id[r]),
                         timestamp=float(cols.timestamp[r]), value=float(cols.value[r]),
                         price=float(cols.price[r]), now=now)
    return Rejected(source, rule, RULE_FIELDS[rule], detail)


# --------------------------------------------------------------------------- records
@dataclass
class _ItemState:
    titles: dict[str, tuple[str, str]] = field(default_factory=dict)  # item -> (key, title)
    title_rewrites: int = 0
    prices_dropped: int = 0


class RecordCleaner:
    """Streaming record-level cleaning: `cleaner(records)` yields the records that pass, and a `Rejected`
    (source file and line, reason, field, detail) in place of each one that does not.

    Records are processed in batches of `batch_size` with the vectorised rules; order is kept. Notes,
    Domain markers and readers' own Rejected records pass through. A closing Note states normalisations.
    """

    def __init__(self, config: CleaningConfig | None = None, *, now: float | None = None,
                 batch_size: int = 2048) -> None:
        self.config = config if config is not None else CleaningConfig()
        self.now = time.time() if now is None else float(now)
        self.batch_size = batch_size
        self._matcher = NonProductMatcher(self.config)
        self._items = _ItemState()

    def __call__(self, records: Iterable[Record]) -> Iterator[Record]:
        batch: list[Record] = []
        for rec in records:
            batch.append(rec)
            if len(batch) >= self.batch_size:
                yield from self._clean_batch(batch)
                batch = []
        yield from self._clean_batch(batch)
        note = self._closing_note()
        if note is not None:
            yield note

    def _clean_batch(self, batch: list[Record]) -> Iterator[Record]:
        events = [r for r in batch if isinstance(r, EventRecord)]
        reasons = event_reasons(EventColumns.from_records(events), self.config, self.now, self._matcher)
        verdicts = iter(reasons.tolist())
        for rec in batch:
            if isinstance(rec, EventRecord):
                k = next(verdicts)
                yield rec if k == 0 else self._reject_event(rec, EVENT_RULES[k - 1])
            elif isinstance(rec, ItemRecord):
                yield self._clean_item(rec)
            elif isinstance(rec, UserRecord):
                yield rec if rec.user_id.strip() else _reject(rec.source, "missing_user", "user_id",
                                                              "the user record has no user id")
            else:
                yield rec

    def _reject_event(self, rec: EventRecord, rule: str) -> Rejected:
        detail = rule_detail(rule, user_id=rec.user_id, item_id=rec.item_id, timestamp=_float(rec.timestamp),
                             value=_float(rec.value), price=_float((rec.context or {}).get("price")), now=self.now)
        return _reject(rec.source, rule, RULE_FIELDS[rule], detail)

    def _clean_item(self, rec: ItemRecord) -> Record:
        if not rec.item_id.strip():
            return _reject(rec.source, "missing_item", "item_id", "the item record has no item id")
        if self._matcher(rec.item_id):
            return _reject(rec.source, "non_product_item", "item_id", rule_detail("non_product_code",
                                                                                   item_id=rec.item_id))
        rec.title = normalise_text(rec.title)
        rec.description = normalise_text(rec.description)
        if rec.price is not None and not rec.price > 0:
            rec.price = None
            self._items.prices_dropped += 1
        self._keep_first_title(rec)
        return rec

    def _keep_first_title(self, rec: ItemRecord) -> None:
        if not rec.title:
            return
        key = text_key(rec.title)
        seen = self._items.titles.get(rec.item_id)
        if seen is None:
            self._items.titles[rec.item_id] = (key, rec.title)
            return
        if seen[0] != key:
            self._items.title_rewrites += 1
        rec.title = seen[1]

    def _closing_note(self) -> Note | None:
        parts = []
        if self._items.title_rewrites:
            parts.append(f"{self._items.title_rewrites} item record(s) repeated an item id with a different title; "
                         "the first title seen was kept")
        if self._items.prices_dropped:
            parts.append(f"{self._items.prices_dropped} item price(s) <= 0 were dropped (items kept without price)")
        return Note("cleaning: " + "; ".join(parts)) if parts else None


def _reject(source: Source | None, reason: str, field_: str, detail: str) -> Rejected:
    return Rejected(source if source is not None else Source("?", 0), reason, field_, detail)


# ---------------------------------------------------------------------- interactions
def clean_interactions(interactions: Interactions, config: CleaningConfig | None = None,
                       report: CleaningReport | None = None) -> Interactions:
    """Apply the Interactions-level rules (duplicate, bot_user, kcore); id maps are kept."""
    keep = clean_interactions_index(interactions, config, report)
    return interactions if len(keep) == len(interactions) else interactions.subset(keep)


def clean_interactions_index(interactions: Interactions, config: CleaningConfig | None = None,
                             report: CleaningReport | None = None) -> np.ndarray:
    """Row indices (ascending) that survive the Interactions-level rules; removals go to `report`."""
    config = config if config is not None else CleaningConfig()
    report = report if report is not None else CleaningReport()
    rows = np.arange(len(interactions))
    if config.drop_duplicates:
        rows = _drop(rows, duplicate_mask(interactions.subset(rows)), "duplicate", interactions, report)
    if config.bot_max_events is not None:
        bots = bot_users(interactions.subset(rows), config.bot_window_seconds, config.bot_max_events)
        _report_bots(bots, interactions, config, report)
        rows = rows[~np.isin(interactions.user[rows], list(bots))]
    if config.kcore_users or config.kcore_items:
        sub = interactions.subset(rows)
        mask = kcore_mask(sub.user, sub.item, config.kcore_users, config.kcore_items)
        if (~mask).any():
            report.add("kcore", f"{int((~mask).sum())} events of users with < {config.kcore_users} or items with "
                                f"< {config.kcore_items} events (iterated to a fixed point)", count=int((~mask).sum()))
        rows = rows[mask]
    return rows


def _drop(rows: np.ndarray, mask: np.ndarray, rule: str, inter: Interactions, report: CleaningReport) -> np.ndarray:
    dropped = rows[mask]
    for r in dropped[:report.max_examples]:
        report.add(rule, _describe_row(inter, int(r)))
    if len(dropped) > report.max_examples:
        report.add(rule, count=len(dropped) - report.max_examples)
    return rows[~mask]


def _describe_row(inter: Interactions, r: int) -> str:
    etype = EventType.from_code(int(inter.event_type[r])).value
    value = "" if np.isnan(inter.value[r]) else f" value={float(inter.value[r]):g}"
    return (f"user {inter.users.external(int(inter.user[r]))!r} item {inter.items.external(int(inter.item[r]))!r} "
            f"{etype} at {_iso(float(inter.timestamp[r]))}{value}")


def duplicate_mask(inter: Interactions) -> np.ndarray:
    """True for every event equal in (user, item, event type, timestamp, value) to an earlier row."""
    if len(inter) == 0:
        return np.zeros(0, dtype=bool)
    value = inter.value.copy()
    value[np.isnan(value)] = np.float32(np.nan)  # one NaN bit pattern
    frame = pd.DataFrame({"u": inter.user, "i": inter.item, "e": inter.event_type, "t": inter.timestamp,
                          "v": value.view(np.int32)})
    return np.asarray(frame.duplicated(keep="first"), dtype=bool)


def bot_users(inter: Interactions, window_seconds: int, max_events: int) -> dict[int, int]:
    """Users with more than `max_events` distinct timestamps inside some window of `window_seconds`.

    Returns {user index: the largest count in one window}.
    """
    if len(inter) == 0:
        return {}
    order = np.lexsort((inter.timestamp, inter.user))
    users, times = inter.user[order].astype(np.int64), inter.timestamp[order]
    distinct = np.r_[True, (np.diff(users) != 0) | (np.diff(times) != 0)]
    users, times = users[distinct], times[distinct]  # distinct (user, time) pairs, sorted
    counts = _window_counts(users, times, int(window_seconds))
    over = counts > max_events
    if not over.any():
        return {}
    frame = pd.DataFrame({"u": users[over], "c": counts[over]}).groupby("u")["c"].max()
    return {int(u): int(c) for u, c in frame.items()}


def _window_counts(users: np.ndarray, times: np.ndarray, window: int) -> np.ndarray:
    """For (user, time) pairs sorted and distinct: pairs of the same user in [time, time + window)."""
    span = int(times.max() - times.min()) + window + 1
    if int(users.max()) < (1 << 62) // span:  # one sorted int64 key: user * span + time offset
        key = users * span + (times - times.min())
        end = np.searchsorted(key, key + window, side="left")
    else:  # huge time spans: per user
        end = np.empty(len(times), dtype=np.int64)
        bounds = np.flatnonzero(np.diff(users)) + 1
        for lo, hi in zip(np.r_[0, bounds], np.r_[bounds, len(users)], strict=True):
            end[lo:hi] = lo + np.searchsorted(times[lo:hi], times[lo:hi] + window, side="left")
    return end - np.arange(len(times))


def _report_bots(bots: dict[int, int], inter: Interactions, config: CleaningConfig, report: CleaningReport) -> None:
    if not bots:
        return
    n_events = np.bincount(inter.user, minlength=inter.n_users)
    for u, c in list(bots.items())[:report.max_examples]:
        report.add("bot_user", f"user {inter.users.external(u)!r}: {c} distinct event times within "
                               f"{config.bot_window_seconds} s (limit {config.bot_max_events})", count=0)
    report.add("bot_user", count=int(sum(n_events[u] for u in bots)))
