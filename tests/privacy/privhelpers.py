"""Helpers of the privacy tests: services with a deployment secret, a client, and dumps of every table,
every Redis key and every artifact file (to grep for raw ids)."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from fastapi.testclient import TestClient

from shoprec.api import create_app
from shoprec.service import Services, ServingConfig, build_services
from shoprec.service.cache import Cache, RedisCache
from shoprec.service.testing import TEST_ADMIN_KEY
from shoprec.settings import Settings
from shoprec.storage.tables import metadata

SECRET = "test-secret-0123456789"
REDIS_URL = "redis://127.0.0.1:6379/0"


def make_services(directory: Path, *, url: str | None = None, engine: sa.Engine | None = None,
                  cache: Cache | None = None, **settings: object) -> Services:
    """Services with SECRET (unless settings say otherwise) whose workers re-check the active model always."""
    directory.mkdir(parents=True, exist_ok=True)
    values: dict[str, object] = {"database_url": url or f"sqlite:///{directory / 'shoprec.db'}",
                                 "model_dir": directory / "models", "cache_dir": directory / "cache",
                                 "secret_key": SECRET}
    values.update(settings)
    config = ServingConfig(admin_key=TEST_ADMIN_KEY, model_poll_s=0.0)
    return build_services(Settings(**values), config, cache=cache, engine=engine)  # type: ignore[arg-type]


def client_for(services: Services, api_key: str) -> TestClient:
    app = create_app(services.settings, services.config, services=services)
    return TestClient(app, headers={"X-API-Key": api_key}, raise_server_exceptions=False)


def dump_tables(engine: sa.Engine) -> str:
    """Every row of every shoprec table as text."""
    parts = []
    with engine.connect() as conn:
        for table in metadata.sorted_tables:
            for row in conn.execute(sa.select(table)):
                parts.append(f"{table.name}: {tuple(row)!r}")
    return "\n".join(parts)


def dump_redis(cache: RedisCache) -> str:
    """Every key and value under the cache's prefix."""
    parts = []
    for key in cache.client.scan_iter(match=cache.prefix + "*", count=500):
        parts.append(f"{key!r} = {cache.client.get(key)!r}")
    return "\n".join(parts)


def dump_artifacts(services: Services) -> bytes:
    """Every artifact file the services hold on this machine: the model directory and the artifact cache
    (on PostgreSQL / MySQL the artifacts themselves are rows of model_artifacts: dump_tables has them)."""
    settings = services.settings
    return dump_files(settings.model_dir) + dump_files(settings.artifact_cache_dir or settings.cache_dir)


def dump_files(directory: Path) -> bytes:
    """The bytes of every file under `directory` (and the file names)."""
    out = []
    for path in sorted(directory.rglob("*")):
        out.append(str(path).encode())
        if path.is_file():
            out.append(path.read_bytes())
    return b"\n".join(out)
