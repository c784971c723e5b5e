"""A ready platform for tests, the demo and benchmarks: synthetic shop -> ingest -> trained, active model.

    services = build_services(Settings(database_url=..., model_dir=...), ServingConfig(admin_key="admin"))
    shop = synthetic_platform(services, "shop", users=80, items=50, model="itemknn")
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shoprec.data.synthetic import PlatformData, SyntheticConfig, generate
from shoprec.ingest.pipeline import ingest
from shoprec.service import Services, ServingConfig, build_services
from shoprec.service.cache import Cache
from shoprec.service.models import TrainedModel
from shoprec.settings import Settings

TEST_ADMIN_KEY = "admin-test-key-0123456789abcdef"  # >= 24 characters: what `shoprec serve` accepts


def local_services(directory: Path, *, cache: Cache | None = None, **config: Any) -> Services:
    """Services over a fresh SQLite file (and model directory) in `directory`; the admin key is
    TEST_ADMIN_KEY and workers re-check the active model on every request unless `config` says otherwise."""
    directory.mkdir(parents=True, exist_ok=True)
    settings = Settings(database_url=f"sqlite:///{directory / 'shoprec.db'}", model_dir=directory / "models",
                        cache_dir=directory / "cache")
    values: dict[str, Any] = {"admin_key": TEST_ADMIN_KEY, "model_poll_s": 0.0}
    values.update(config)
    return build_services(settings, ServingConfig(**values), cache=cache)


@dataclass
class ReadyPlatform:
    name: str
    api_key: str
    data: PlatformData
    trained: TrainedModel | None = None  # ModelStore.train's answer (None: no model)

    @property
    def user_ids(self) -> list[str]:
        return [u.user_id for u in self.data.users]

    @property
    def item_ids(self) -> list[str]:
        return [i.item_id for i in self.data.items]


def synthetic_platform(services: Services, name: str, *, users: int = 80, items: int = 50, seed: int = 0,
                       model: str | None = "itemknn", params: dict[str, Any] | None = None,
                       evaluate: bool = False) -> ReadyPlatform:
    """Create platform `name` with an API key, load a synthetic shop through the ingest pipeline and
    (unless model is None) train and activate `model` on it."""
    data = generate(SyntheticConfig(n_users=users, n_items=items, seed=seed)).platform()
    key = services.platforms.create(name)
    ingest(services.engine, name, data.records(), privacy=services.privacy.privacy)
    trained = None
    if model is not None:
        trained = services.store.train(name, model, params, activate=True, evaluate=evaluate)
    return ReadyPlatform(name=name, api_key=key, data=data, trained=trained)


def create_test_experiment(services: Services, platform: str) -> str:
    """A running A/A experiment on `platform` (two variants of its newest model; a popularity model is
    trained first when the platform has none); returns its experiment_id. For route-table tests."""
    models = services.store.list_models(platform)
    if models:
        model_id = models[-1].model_id
    else:
        model_id = services.store.train(platform, "popular", evaluate=False).model_id
    created = services.experiments.create(platform, "test experiment", [
        {"name": "control", "model_id": model_id, "share": 0.5},
        {"name": "treatment", "model_id": model_id, "share": 0.5}])
    return created.experiment_id
