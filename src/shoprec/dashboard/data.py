"""What each dashboard page shows, gathered from the services (no HTTP here, no SQL strings).

Reads go through the storage repositories and the services the API uses: a user's recommendations
come from RecommendService.recommend (the same ranking path and reasons the API serves), an item's
similar items from RecommendService.similar, models from the ModelStore.
"""

from __future__ import annotations

import copy
import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, cast

from prometheus_client import Histogram

from shoprec.errors import DataError
from shoprec.service import Services
from shoprec.service.answers import Recommendation
from shoprec.service.artifacts import ArtifactRef
from shoprec.service.errors import NotFound
from shoprec.service.experiments import ExperimentService
from shoprec.service.recommend import RecommendService
from shoprec.storage import PlatformRepo, list_platforms, storage_errors
from shoprec.storage.dashboard import EventHistogram, event_histogram, recent_users
from shoprec.storage.serving import ServingRepo
from shoprec.storage.tables import MAX_ID_LENGTH

HISTORY_SHOWN = 50
PRIMARY_METRICS = ("NDCG@10", "HR@10", "MRR", "NDCG@20", "Recall@20", "Coverage@10", "n_users_evaluated")
LIST_K = 10


def platforms(services: Services) -> list[str]:
    with storage_errors(services.engine, "list platforms"), services.engine.connect() as conn:
        return list(list_platforms(conn))


def check_id(value: str, what: str) -> str:
    """A looked-up id as typed (surrounding spaces dropped); DataError naming the field when unusable."""
    value = value.strip()
    if not value:
        raise DataError(f"enter a {what} (field {what})")
    if len(value) > MAX_ID_LENGTH:
        raise DataError(f"{what} is longer than {MAX_ID_LENGTH} characters (field {what})")
    return value


# ---------------------------------------------------------------- overview
@dataclass(frozen=True)
class RouteStats:
    route: str
    requests: int
    errors: int
    mean_ms: float
    p95_ms: float  # upper edge of the histogram bucket holding the 95th percentile (inf: above the last)

    @property
    def p95_label(self) -> str:
        return f"{self.p95_ms:.1f}" if math.isfinite(self.p95_ms) else "over 5000"


class RequestMetrics(Protocol):
    """What the overview reads of the app's request metrics (shoprec.api.metrics.Metrics has it): the
    latency histogram by method, route template and status. A protocol, so the dashboard needs no api import."""

    latency: Histogram


@dataclass
class Overview:
    stats: dict[str, Any]
    histogram: EventHistogram
    routes: list[RouteStats] = field(default_factory=list)
    served_model: str | None = None


def overview(services: Services, platform: str, metrics: RequestMetrics) -> Overview:
    key = services.platforms.platform_id(platform)
    with storage_errors(services.engine, "read platform statistics"), services.engine.connect() as conn:
        stats = PlatformRepo(conn, key).stats()
        histogram = event_histogram(conn, key, buckets=30)
    served = services.models.get(platform)
    label = f"{served.name} ({served.model_id[:8]})" if served is not None else None
    return Overview(stats, histogram, request_stats(metrics), label)


def request_stats(metrics: RequestMetrics) -> list[RouteStats]:
    """Per route (method + path template) of this process: requests, 4xx/5xx answers, mean and p95 latency."""
    count: dict[str, float] = defaultdict(float)
    total: dict[str, float] = defaultdict(float)
    errors: dict[str, float] = defaultdict(float)
    buckets: dict[str, dict[float, float]] = defaultdict(lambda: defaultdict(float))
    for family in metrics.latency.collect():
        for s in family.samples:
            route = f"{s.labels['method']} {s.labels['route']}"
            if s.name.endswith("_count"):
                count[route] += s.value
                if s.labels["status"][:1] in ("4", "5"):
                    errors[route] += s.value
            elif s.name.endswith("_sum"):
                total[route] += s.value
            elif s.name.endswith("_bucket"):
                buckets[route][float(s.labels["le"])] += s.value
    rows = [RouteStats(r, int(n), int(errors[r]), 1000 * total[r] / n, 1000 * _quantile(buckets[r], n, 0.95))
            for r, n in count.items() if n > 0]
    return sorted(rows, key=lambda r: -r.requests)


def _quantile(cumulative: dict[float, float], n: float, q: float) -> float:
    for edge in sorted(cumulative):
        if cumulative[edge] >= q * n:
            return edge
    return math.inf


# ---------------------------------------------------------------- models
def models(services: Services, platform: str) -> list[dict[str, Any]]:
    """Every model of the platform (newest first) with metrics, active flag and its training log."""
    key = services.platforms.platform_id(platform)
    with storage_errors(services.engine, "list models"), services.engine.connect() as conn:
        rows = ServingRepo(conn, key).list_models()
    for row in rows:
        local = services.store.artifacts.peek(ArtifactRef(str(row.pop("path")), row.pop("sha256", None)))
        row["training_log"] = training_log(local) if local is not None else []
    return rows[::-1]


def metric_columns(rows: list[dict[str, Any]]) -> list[str]:
    """The metrics table's columns: the headline metrics that any model has, in PRIMARY_METRICS order, or
    (for models evaluated otherwise) their first few numeric metrics; every metric is in a model's details."""
    present = {k for r in rows for k, v in (r.get("metrics") or {}).items() if _number(v)}
    primary = [m for m in PRIMARY_METRICS if m in present]
    return primary or sorted(present)[:8]


def training_log(path: Path) -> list[dict[str, Any]]:
    """The `training_log` saved in a model artifact's meta.json (empty when it is missing or unreadable)."""
    try:
        meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    log = meta.get("training_log") if isinstance(meta, dict) else None
    return [e for e in log if isinstance(e, dict)] if isinstance(log, list) else []


def curves(log: list[dict[str, Any]]) -> tuple[str, list[float], dict[str, list[float]]]:
    """(x name, x values, numeric series by key) of a training log; x is epoch/iteration/step or the row number."""
    x_name = next((k for k in ("epoch", "iteration", "step") if log and all(k in e for e in log)), "row")
    xs = [float(e[x_name]) if x_name != "row" else float(i + 1) for i, e in enumerate(log)]
    keys = [k for k in dict.fromkeys(k for e in log for k in e)
            if k not in (x_name, "seconds", "member") and any(_number(e.get(k)) for e in log)]
    series = {k: [float(e[k]) if _number(e.get(k)) else math.nan for e in log] for k in keys}
    return x_name, xs, series


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def activate(services: Services, platform: str, model_id: str) -> None:
    services.models.activate(platform, check_id(model_id, "model_id"))


# ---------------------------------------------------------------- users and items
def user_view(services: Services, platform: str, user_id: str) -> dict[str, Any]:
    """A known user's recent events (newest first, with item titles) and current recommendations.
    `user_id` is the shop's own id (mapped to the stored pseudonym when pseudonymising, as the API does)."""
    user_id = check_id(user_id, "user_id")
    key = services.platforms.platform_id(platform)
    stored = services.recommend.privacy.user_id(platform, user_id)
    with storage_errors(services.engine, f"read user {user_id!r}"), services.engine.connect() as conn:
        repo = PlatformRepo(conn, key)
        user = repo.get_user(stored)
        history = repo.user_history(stored, HISTORY_SHOWN) if user is not None else []
    if user is None:
        raise NotFound(f"no user {user_id!r} on platform {platform!r}")
    titles = _titles(services, platform)
    events = [{"item_id": i, "title": titles.get(i, ""), "type": t, "timestamp": ts} for i, t, ts in history[::-1]]
    answer = preview(services).recommend(platform, user_id, LIST_K)
    return {"user_id": user_id, "history": events, "recommendation": _with_titles(answer, titles)}


class _NoExposure:
    """A running experiment seen by the dashboard: users get their variant (assign), but a list an operator
    looks at is not an exposure, so it adds no impressions to the experiment's results."""

    def __init__(self, experiments: ExperimentService) -> None:
        self.experiments = experiments

    def assign(self, platform: str, user: str) -> Any:
        return self.experiments.assign(platform, user)

    def record_exposure(self, *args: Any, **kwargs: Any) -> None:
        return None


def preview(services: Services) -> RecommendService:
    """The recommend service as the API runs it (same models, filters, reasons, experiment variants) whose
    lists are not counted as experiment impressions."""
    viewer = copy.copy(services.recommend)
    if services.recommend.experiments is not None:
        viewer.experiments = cast(ExperimentService, _NoExposure(services.recommend.experiments))
    return viewer


def item_view(services: Services, platform: str, item_id: str) -> dict[str, Any]:
    """An item's stored fields and its similar items."""
    item_id = check_id(item_id, "item_id")
    key = services.platforms.platform_id(platform)
    with storage_errors(services.engine, f"read item {item_id!r}"), services.engine.connect() as conn:
        item = PlatformRepo(conn, key).get_item(item_id)
    if item is None:
        raise NotFound(f"no item {item_id!r} on platform {platform!r}")
    similar = services.recommend.similar(platform, item_id, LIST_K)
    return {"item": item, "similar": _with_titles(similar, _titles(services, platform))}


def recent_user_ids(services: Services, platform: str, limit: int = 20) -> list[str]:
    """Users with the newest events: links on the Users page (none when user ids are pseudonymised: the
    stored ids are hashes, and a lookup needs the shop's own id)."""
    if services.recommend.privacy.pseudonymize:
        return []
    key = services.platforms.platform_id(platform)
    with storage_errors(services.engine, "list recent users"), services.engine.connect() as conn:
        return recent_users(conn, key, limit)


def popular_items(services: Services, platform: str, limit: int = 20) -> list[dict[str, str]]:
    """The most popular servable items (the fallback popularity): links on the Items page."""
    view = services.catalogs.get(platform)
    order = [int(i) for i in (-view.popularity).argsort(kind="stable") if view.servable[i]][:limit]
    return [{"item_id": view.items.external(i), "title": view.titles[i]} for i in order]


def _titles(services: Services, platform: str) -> dict[str, str]:
    view = services.catalogs.get(platform)
    return dict(zip(view.items.to_list(), view.titles, strict=True))


def _with_titles(answer: Recommendation, titles: dict[str, str]) -> dict[str, Any]:
    as_json = answer.to_json()
    items = [{**item, "title": titles.get(item["item_id"], ""), "explanation": explain(item.get("reason") or {},
                                                                                      titles)}
             for item in as_json["items"]]
    return {**as_json, "items": items}


def explain(reason: dict[str, Any], titles: dict[str, str]) -> str:
    """A sentence for a reason object: its own `text` when the service gave one, else built from its fields."""
    if isinstance(reason.get("text"), str) and reason["text"]:
        return str(reason["text"])
    because = reason.get("because_of") or reason.get("because") or []
    names = [titles.get(str(i)) or str(i) for i in because][:3]
    kind = reason.get("type") or reason.get("source")
    model = reason.get("model")
    by = f" ({model})" if model else ""
    if names:
        return f"Because of {', '.join(names)}{by}"
    if kind in ("popular_category", "popular_in_category") and reason.get("category"):
        return f"Popular in {reason['category']}"
    similar = reason.get("similar_to") or reason.get("item_id")
    if similar:
        return f"Similar text to {titles.get(str(similar)) or similar}"
    if kind in ("popular", "fallback_popular"):
        return "Popular overall"
    return f"{kind or 'model'}{by}"
