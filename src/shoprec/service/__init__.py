"""Services: the online path without HTTP and without SQL strings (the API and the CLI are thin over them).

    services = build_services(Settings.from_env(), ServingConfig.from_env())
    key = services.platforms.create("shop-a")
    services.data.add_events("shop-a", [EventRecord(...)])
    services.recommend.recommend("shop-a", "user-1", k=10)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from shoprec.service.artifacts import open_artifact_store
from shoprec.service.cache import Cache, LocalCache, make_cache
from shoprec.service.catalog import CatalogViews
from shoprec.service.config import ServingConfig
from shoprec.service.data import DataService
from shoprec.service.experiments import ExperimentService
from shoprec.service.idempotency import IdempotencyService
from shoprec.service.jobs import JobService, check_retrain
from shoprec.service.lists import ListService
from shoprec.service.models import ModelStore, ServedModels
from shoprec.service.platform import PlatformService
from shoprec.service.pretrain import check_pretrain
from shoprec.service.reclog import RecommendationLog
from shoprec.service.recommend import Filters, RecommendService
from shoprec.service.retraining import RetrainService
from shoprec.service.rules import RulesService
from shoprec.service.state import UserStates
from shoprec.settings import Settings
from shoprec.storage import Engine

if TYPE_CHECKING:
    from shoprec.service.privacy import PrivacyService


@dataclass
class Services:
    settings: Settings
    config: ServingConfig
    engine: Engine
    cache: Cache
    platforms: PlatformService
    users: UserStates
    catalogs: CatalogViews
    store: ModelStore
    models: ServedModels
    data: DataService
    recommend: RecommendService
    jobs: JobService
    privacy: PrivacyService  # erasure, export, retention, platform links (shoprec.privacy)
    experiments: ExperimentService  # A/B tests: variants, assignment, attribution, results
    retraining: RetrainService  # continuous retraining: policies, schedule, promotion gate, decisions
    idempotency: IdempotencyService  # answers of writes sent with an Idempotency-Key, replayed to retries
    rules: RulesService  # each platform's saved default business rules (shoprec.rules)
    lists: ListService  # list types: trending, buy it again, frequently bought together, new arrivals

    def close(self) -> None:
        self.jobs.close()
        self.recommend.list_store().log.close()
        self.cache.close()
        self.engine.dispose()


def build_services(settings: Settings, config: ServingConfig | None = None, *, cache: Cache | None = None,
                   engine: Engine | None = None) -> Services:
    """Wire the services over one engine (migrated to head) and one cache (Redis when settings say so)."""
    from shoprec.privacy.keys import Privacy
    from shoprec.service.export import check_export
    from shoprec.service.privacy import Hooks, PrivacyService
    from shoprec.storage import create_db

    config = config or ServingConfig.from_env()
    engine = engine or create_db(settings.database_url)
    cache = cache or make_cache(settings.redis_url, config.redis_prefix, max_entries=config.cache_size)
    platforms = PlatformService(engine, cache, config.admin_key)
    users = UserStates(engine, cache, platforms, config.history_length, config.cache_ttl_s)
    catalogs = CatalogViews(engine, platforms, config.cache_ttl_s)
    artifacts = open_artifact_store(settings, engine)  # a directory, the database or an fsspec URL
    store = ModelStore(engine, platforms, artifacts)
    models = ServedModels(store, config.model_poll_s, config.ann_threshold, config.scan_min_items,
                          config.scan, history_length=config.history_length)
    keys = Privacy.from_settings(settings)
    experiments = ExperimentService(engine, platforms, store, window_s=config.attribution_window_s,
                                    stored_user_id=keys.user_id)
    data = DataService(engine, platforms, config, on_users_changed=users.invalidate,
                       on_catalog_changed=catalogs.invalidate, privacy=keys, on_events_stored=experiments.credit_events)
    lists = cache if cache.shared else LocalCache(config.list_cache_size)  # a bound of their own: lists are big
    reclog = RecommendationLog(engine, lists, platforms)
    rules = RulesService(engine, platforms, catalogs, config.cache_ttl_s)
    recommend = RecommendService(engine, config, platforms, users, catalogs, models, reclog, keys, experiments,
                                 rules=rules)
    jobs = JobService(engine, platforms, store, models, settings.jobs, settings.limits)
    privacy = PrivacyService(engine, platforms, keys, Hooks(users=users, reclog=reclog, models=models,
                                                            catalogs=catalogs), artifacts=artifacts)
    retraining = RetrainService(
        engine, platforms, store, experiments, settings.retraining,
        enqueue=lambda platform, kind, params: jobs.submit(platform, kind, params, actor="retrain"),
        busy=lambda platform: any(j.kind == "retrain" for j in jobs.list_jobs(platform, ("queued", "running"))),
        limits=settings.limits)
    jobs.register_kind("retrain", check_retrain)
    jobs.register_kind("export", check_export)  # batch recommendations (shoprec.service.export)
    jobs.register_kind("pretrain", check_pretrain)
    idempotency = IdempotencyService(engine, platforms, config.idempotency_ttl_s, config.idempotency_wait_s)
    return Services(settings, config, engine, cache, platforms, users, catalogs, store, models, data, recommend, jobs,
                    privacy, experiments, retraining, idempotency, rules, lists=ListService(recommend))


__all__ = ["Filters", "Services", "ServingConfig", "build_services"]
