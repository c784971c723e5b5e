"""A/B experiments: variants of served models, deterministic assignment, attribution and results.

    exp = experiments.create("shop", "knn-vs-pop", [{"name": "control", "model_id": a, "share": 0.5},
                                                   {"name": "ease", "model_id": b, "share": 0.5}])
    experiments.results("shop", exp.experiment_id)   # per variant CTR / conversion, 95% CI, p-value

Assignment: sha256(experiment id + user id) -> a point in [0, 1) -> the variant whose cumulative share
covers it: the same on every worker and after restarts, and independent between experiments.
Only one experiment runs on a platform at a time (their [start, end) windows may not overlap).

Attribution: every list served to a user in a running experiment is an *exposure* (its shown items are
impressions). An event is credited to (list, position, variant) when it carries that list's
recommendation_id (feedback, or an event's context), or else when it follows a list shown to the same
user, containing the same item, within `window_s` seconds (the newest such list). Outcomes:
"click" (click, cart, like or purchase) and "purchase"; each (list, item, outcome) counts once.
CTR = clicked impressions / impressions, conversion = purchased impressions / impressions.
"""

from __future__ import annotations

import builtins
import hashlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from shoprec.data.records import EventRecord
from shoprec.errors import DataError
from shoprec.service.errors import NotFound, RecordError, RecordErrors
from shoprec.service.experiment_stats import Rate, rate, two_proportion_p
from shoprec.service.models import ModelStore
from shoprec.service.platform import PlatformService
from shoprec.storage import Engine, storage_errors
from shoprec.storage.experiments import ExperimentRepo

log = logging.getLogger(__name__)
ATTRIBUTION_WINDOW_S = 1800.0
CLICK_TYPES = frozenset({"click", "cart", "like", "purchase"})
SHARE_TOLERANCE = 1e-6
MAX_VARIANTS = 10


@dataclass(frozen=True)
class Assignment:
    """The variant a user sees in a running experiment."""

    experiment_id: str
    variant: str
    model_id: str


@dataclass(frozen=True)
class Outcome:
    """An event to credit: the user (None: anonymous), item, event type, unix time and, when known, the list."""

    user: str | None
    item: str
    event_type: str
    timestamp: float
    recommendation_id: str | None = None


@dataclass(frozen=True, slots=True)
class Variant:
    name: str
    model_id: str
    share: float


@dataclass(frozen=True, slots=True)
class Experiment:
    """An experiment (ExperimentOut); `status`: scheduled, running, ended or stopped."""

    experiment_id: str
    name: str
    variants: tuple[Variant, ...]
    start: float
    end: float | None
    stopped_at: float | None
    created_at: float
    status: str


@dataclass(frozen=True, slots=True)
class VsControl:
    """A variant against the control: two-sided p-values (None: not computable) and relative lifts."""

    ctr_p_value: float | None
    conversion_p_value: float | None
    ctr_lift: float | None
    conversion_lift: float | None


@dataclass(frozen=True, slots=True)
class VariantResult:
    name: str
    model_id: str
    share: float
    users: int
    lists: int
    impressions: int
    clicks: int
    purchases: int
    ctr: Rate
    conversion: Rate
    clicks_by_position: dict[str, int]  # list position (as a string) -> clicks
    vs_control: VsControl | None = None  # None for the control itself

    def to_json(self) -> dict[str, Any]:
        out = {"name": self.name, "model_id": self.model_id, "share": self.share, "users": self.users,
               "lists": self.lists, "impressions": self.impressions, "clicks": self.clicks,
               "purchases": self.purchases, "ctr": self.ctr.to_json(), "conversion": self.conversion.to_json(),
               "clicks_by_position": dict(self.clicks_by_position)}
        if self.vs_control is not None:
            out["vs_control"] = asdict(self.vs_control)
        return out


@dataclass(frozen=True, slots=True)
class ExperimentResults:
    """An experiment's results (ExperimentResultsOut): one VariantResult per variant, the control first."""

    experiment: Experiment
    control: str
    variants: tuple[VariantResult, ...]
    attribution_window_s: float

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self.experiment), "control": self.control, "variants": [v.to_json() for v in self.variants],
                "attribution_window_s": self.attribution_window_s}


def bucket(experiment_id: str, user: str) -> float:
    """A stable point in [0, 1) for (experiment, user)."""
    digest = hashlib.sha256(f"{experiment_id}\x00{user}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def status(row: dict[str, Any], now: float) -> str:
    """scheduled | running | ended | stopped."""
    if row["stopped_at"] is not None:
        return "stopped"
    if now < row["start_at"]:
        return "scheduled"
    if row["end_at"] is not None and now >= row["end_at"]:
        return "ended"
    return "running"


class ExperimentService:
    def __init__(self, engine: Engine, platforms: PlatformService, store: ModelStore, *,
                 window_s: float = ATTRIBUTION_WINDOW_S, cache_s: float = 1.0,
                 stored_user_id: Callable[[str, str], str] | None = None) -> None:
        """`stored_user_id(platform, user)`: the user id as stored (a pseudonym when the deployment
        pseudonymises), so that events match the lists served to the same user."""
        self.engine, self.platforms, self.store = engine, platforms, store
        self.stored_user_id = stored_user_id or (lambda platform, user: user)
        self.window_s, self.cache_s = window_s, cache_s
        self._cache: dict[str, tuple[float, list[dict[str, Any]]]] = {}  # platform -> (read at, rows)
        self._lock = threading.Lock()

    # ---------------------------------------------------------------- CRUD
    def create(self, platform: str, name: str, variants: Sequence[dict[str, Any]], start: float | None = None,
               end: float | None = None) -> Experiment:
        """Create an experiment; variants [{"name", "model_id", "share"}], shares summing to 1, models of this
        platform; start (unix seconds, default now) before end (optional: until stopped). 422 naming the field."""
        now = time.time()
        name = check_name(name)
        start = now if start is None else float(start)
        clean = self._check_variants(platform, variants)
        if end is not None and end <= start:
            raise RecordErrors([RecordError(None, "end", "invalid", f"end ({end}) must be after start ({start})")])
        if end is not None and end <= now:
            raise RecordErrors([RecordError(None, "end", "invalid", f"end ({end}) is in the past")])
        experiment_id = uuid.uuid4().hex
        with storage_errors(self.engine, "create an experiment"), self.engine.begin() as conn:
            repo = self._repo(conn, platform)
            for other in repo.list_all():
                if status(other, now) in ("scheduled", "running") and _overlaps(other, start, end):
                    raise RecordErrors([RecordError(None, "start", "overlap",
                                                    f"overlaps experiment {other['experiment_id']!r} "
                                                    f"({other['name']!r}); one experiment runs at a time")])
            repo.add(experiment_id, name, clean, start, end, now)
        self._forget(platform)
        return self.get(platform, experiment_id)

    def list(self, platform: str) -> builtins.list[Experiment]:
        """Every experiment of the platform, oldest first, with its status."""
        now = time.time()
        with storage_errors(self.engine, "list experiments"), self.engine.connect() as conn:
            return [_public(r, now) for r in self._repo(conn, platform).list_all()]

    def get(self, platform: str, experiment_id: str) -> Experiment:
        return _public(self._row(platform, experiment_id), time.time())

    def stop(self, platform: str, experiment_id: str) -> Experiment:
        """Stop an experiment now (stopping a stopped one changes nothing); users get the active model again."""
        self._row(platform, experiment_id)
        with storage_errors(self.engine, "stop an experiment"), self.engine.begin() as conn:
            self._repo(conn, platform).stop(experiment_id, time.time())
        self._forget(platform)
        return self.get(platform, experiment_id)

    # ---------------------------------------------------------------- serving
    def assign(self, platform: str, user: str) -> Assignment | None:
        """The variant of `user` in the platform's running experiment, or None when none runs."""
        now = time.time()
        running = [r for r in self._experiments(platform) if status(r, now) == "running"]
        if not running:
            return None
        exp = running[0]
        point, edge = bucket(exp["experiment_id"], user), 0.0
        for v in exp["variants"]:
            edge += float(v["share"])
            if point < edge:
                return Assignment(exp["experiment_id"], v["name"], v["model_id"])
        last = exp["variants"][-1]  # rounding: the top of [0, 1)
        return Assignment(exp["experiment_id"], last["name"], last["model_id"])

    def record_exposure(self, platform: str, assignment: Assignment, recommendation_id: str, user: str,
                        items: Sequence[str]) -> None:
        """A list shown to `user` under `assignment`: its items are the variant's impressions."""
        with storage_errors(self.engine, "record an exposure"), self.engine.begin() as conn:
            self._repo(conn, platform).add_exposure(assignment.experiment_id, assignment.variant,
                                                    recommendation_id, user, list(items), time.time())

    def credit(self, platform: str, outcomes: Sequence[Outcome]) -> int:
        """Credit outcomes to the lists that produced them (see the module doc); returns rows written."""
        relevant = [o for o in outcomes if o.event_type in CLICK_TYPES]
        if not relevant or not self._experiments(platform):
            return 0
        with storage_errors(self.engine, "credit experiment outcomes"), self.engine.begin() as conn:
            repo = self._repo(conn, platform)
            rows = [row for o in relevant for row in self._credit_rows(repo, o)]
            repo.add_credits(rows)
        return len(rows)

    def credit_events(self, platform: str, events: Sequence[EventRecord], stored_ids: bool = False) -> int:
        """Credit stored events (DataService's hook): their context's recommendation_id, else the window."""
        outcomes = []
        for e in events:
            rec_id = (e.context or {}).get("recommendation_id")
            user = e.user_id if stored_ids else self.stored_user_id(platform, e.user_id)
            outcomes.append(Outcome(user, e.item_id, str(e.event_type), float(e.timestamp or time.time()),
                                    rec_id if isinstance(rec_id, str) else None))
        return self.credit(platform, outcomes)

    def _credit_rows(self, repo: ExperimentRepo, o: Outcome) -> builtins.list[dict[str, Any]]:
        if o.recommendation_id:
            found = repo.exposure(o.recommendation_id)
            candidates = [found] if found is not None else []
        elif o.user is not None:
            candidates = repo.user_exposures(o.user, o.timestamp - self.window_s, o.timestamp)
        else:
            candidates = []
        for exp in candidates:
            items = list(exp["items"])
            if o.item in items:
                outcomes = ["click"] + (["purchase"] if o.event_type == "purchase" else [])
                return [{"experiment_id": exp["experiment_id"], "variant": exp["variant"],
                         "recommendation_id": exp["recommendation_id"], "item_external_id": o.item,
                         "position": items.index(o.item), "outcome": kind, "event_type": o.event_type,
                         "timestamp": o.timestamp} for kind in outcomes]
        return []

    # ---------------------------------------------------------------- results
    def results(self, platform: str, experiment_id: str) -> ExperimentResults:
        """Per variant: lists, users, impressions, clicks, purchases, CTR and conversion with 95% Wilson
        intervals, and two-sided p-values of the two-proportion z-test against the first variant (control)."""
        row = self._row(platform, experiment_id)
        with storage_errors(self.engine, "read experiment results"), self.engine.connect() as conn:
            repo = self._repo(conn, platform)
            shown, credited = repo.exposure_counts(experiment_id), repo.credit_counts(experiment_id)
            positions = repo.position_counts(experiment_id, "click")
        variants = [_variant_result(v, shown.get(v["name"], {}), credited.get(v["name"], {}),
                                    positions.get(v["name"], {})) for v in row["variants"]]
        control = variants[0]
        variants[1:] = [replace(v, vs_control=VsControl(
            ctr_p_value=two_proportion_p(v.clicks, v.impressions, control.clicks, control.impressions),
            conversion_p_value=two_proportion_p(v.purchases, v.impressions, control.purchases, control.impressions),
            ctr_lift=_lift(v.ctr.value, control.ctr.value),
            conversion_lift=_lift(v.conversion.value, control.conversion.value))) for v in variants[1:]]
        return ExperimentResults(_public(row, time.time()), control.name, tuple(variants), self.window_s)

    # ---------------------------------------------------------------- pieces
    def _repo(self, conn: Any, platform: str) -> ExperimentRepo:
        return ExperimentRepo(conn, self.platforms.platform_id(platform))

    def _row(self, platform: str, experiment_id: str) -> dict[str, Any]:
        with storage_errors(self.engine, "read an experiment"), self.engine.connect() as conn:
            row = self._repo(conn, platform).get(experiment_id)
        if row is None:
            raise NotFound(f"no experiment {experiment_id!r} on platform {platform!r}")
        return row

    def _experiments(self, platform: str) -> builtins.list[dict[str, Any]]:
        """The platform's experiments, re-read at most every `cache_s` seconds (other workers' changes)."""
        hit = self._cache.get(platform)
        if hit is not None and time.monotonic() - hit[0] < self.cache_s:
            return hit[1]
        with storage_errors(self.engine, "read experiments"), self.engine.connect() as conn:
            rows = self._repo(conn, platform).list_all()
        with self._lock:
            self._cache[platform] = (time.monotonic(), rows)
        return rows

    def _forget(self, platform: str) -> None:
        with self._lock:
            self._cache.pop(platform, None)

    def _check_variants(self, platform: str, variants: Sequence[dict[str, Any]]) -> builtins.list[dict[str, Any]]:
        errors: builtins.list[RecordError] = []
        if not 2 <= len(variants) <= MAX_VARIANTS:
            raise RecordErrors([RecordError(None, "variants", "invalid",
                                            f"an experiment needs 2 to {MAX_VARIANTS} variants, got {len(variants)}")])
        names = [str(v["name"]) for v in variants]
        for i, n in enumerate(names):
            if names.index(n) != i:
                errors.append(RecordError(i, f"variants.{i}.name", "duplicate", f"variant name {n!r} repeated"))
        for i, v in enumerate(variants):
            if not 0 < float(v["share"]) <= 1:
                errors.append(RecordError(i, f"variants.{i}.share", "invalid", "share must be in (0, 1]"))
            if self.store.get_model(platform, str(v["model_id"])) is None:
                errors.append(RecordError(i, f"variants.{i}.model_id", "unknown_model",
                                          f"no model {v['model_id']!r} on platform {platform!r}"))
        total = sum(float(v["share"]) for v in variants)
        if abs(total - 1.0) > SHARE_TOLERANCE:
            errors.append(RecordError(None, "variants.share", "invalid", f"shares must sum to 1, got {total:g}"))
        if errors:
            raise RecordErrors(errors)
        return [{"name": str(v["name"]), "model_id": str(v["model_id"]), "share": float(v["share"])}
                for v in variants]


def _overlaps(row: dict[str, Any], start: float, end: float | None) -> bool:
    other_end = row["end_at"] if row["end_at"] is not None else float("inf")
    return start < other_end and row["start_at"] < (end if end is not None else float("inf"))


def _public(row: dict[str, Any], now: float) -> Experiment:
    variants = tuple(Variant(v["name"], v["model_id"], v["share"]) for v in row["variants"])
    return Experiment(row["experiment_id"], row["name"], variants, row["start_at"], row["end_at"], row["stopped_at"],
                      row["created_at"], status(row, now))


def _variant_result(variant: dict[str, Any], shown: dict[str, int], credited: dict[str, int],
                    positions: dict[int, int]) -> VariantResult:
    impressions = shown.get("impressions", 0)
    clicks, purchases = credited.get("click", 0), credited.get("purchase", 0)
    return VariantResult(variant["name"], variant["model_id"], variant["share"], shown.get("users", 0),
                         shown.get("lists", 0), impressions, clicks, purchases, rate(clicks, impressions),
                         rate(purchases, impressions), {str(p): n for p, n in sorted(positions.items())})


def _lift(value: float, control: float) -> float | None:
    return None if control == 0 else round(value / control - 1.0, 6)


def check_name(name: str) -> str:
    """An experiment name: 1 to 128 characters after trimming."""
    name = name.strip()
    if not 1 <= len(name) <= 128:
        raise DataError("field name: an experiment name needs 1 to 128 characters")
    return name
