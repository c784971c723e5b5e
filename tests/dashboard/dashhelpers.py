"""Helpers: a platform ready for the dashboard (synthetic shop, an evaluated itemknn model that is active,
an mf model with a per-epoch training log, and an item whose title is markup), and a platform with a
running A/B experiment and outcomes."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from shoprec.data.records import EventRecord, ItemRecord
from shoprec.service import Services
from shoprec.service.experiments import Experiment
from shoprec.service.testing import TEST_ADMIN_KEY, ReadyPlatform, local_services, synthetic_platform
from shoprec.types import EventType

EVIL_TITLE = "<script>alert('x')</script> Evil & Co"
EVIL_ITEM = "evil-item"


@dataclass
class Dashboard:
    services: Services
    shop: ReadyPlatform
    knn_id: str
    mf_id: str
    admin_key: str = TEST_ADMIN_KEY


def ready_dashboard(directory: Path) -> Dashboard:
    """Services over a fresh SQLite file with platform "shop" set up as the module doc says."""
    services = local_services(directory)
    shop = synthetic_platform(services, "shop", users=60, items=40, evaluate=True)
    mf = services.store.train("shop", "mf", {"epochs": 4}, evaluate=False)
    newest = max(e.timestamp for e in shop.data.events)
    services.data.upsert_items("shop", [ItemRecord(EVIL_ITEM, title=EVIL_TITLE, category="Toys")])
    services.data.add_events("shop", [EventRecord(user_id=shop.user_ids[0], item_id=EVIL_ITEM,
                                                  event_type=EventType.VIEW, timestamp=newest + 60)])
    return Dashboard(services, shop, shop.trained.model_id, mf.model_id)


def ab_experiment(services: Services, platform: str) -> Experiment:
    """A platform with a running two-variant experiment (popular vs itemknn) and its outcomes so far: every
    user was served a list through RecommendService (an exposure) and the knn variant's users clicked
    (and half of them bought) its first item, the control's users only every third time."""
    shop = synthetic_platform(services, platform, users=40, items=20, model="popular")
    knn = services.store.train(platform, "itemknn", evaluate=False).model_id
    experiment = services.experiments.create(platform, "popular-vs-knn", [
        {"name": "control", "model_id": shop.trained.model_id, "share": 0.5},
        {"name": "knn", "model_id": knn, "share": 0.5}])
    now, events = time.time(), []
    for n, user in enumerate(shop.user_ids):
        served = services.recommend.recommend(platform, user, 5)
        if served.variant == "knn" or n % 3 == 0:
            kinds = [EventType.CLICK] + ([EventType.PURCHASE] if n % 2 == 0 else [])
            events += [EventRecord(user_id=user, item_id=served.items[0].item_id, event_type=kind,
                                   timestamp=now, context={"recommendation_id": served.recommendation_id})
                       for kind in kinds]
    services.data.add_events(platform, events)
    return experiment
