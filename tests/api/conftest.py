"""Fixtures: the app over the `services` and `shop` fixtures of tests/conftest.py."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from shoprec.api import create_app
from shoprec.errors import StorageError
from shoprec.service import Services
from shoprec.service.cache import RedisCache
from shoprec.service.testing import ReadyPlatform

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def client(services: Services, shop: ReadyPlatform) -> Iterator[TestClient]:
    app = create_app(services.settings, services.config, services=services)
    with TestClient(app, headers={"X-API-Key": shop.api_key}, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A Redis key prefix of this test's own (its keys are removed afterwards); skips without Redis."""
    prefix = f"shoprec-test-{uuid.uuid4().hex[:8]}:"
    try:
        probe = RedisCache(REDIS_URL, prefix)
    except StorageError as exc:
        pytest.skip(f"Redis at {REDIS_URL} unavailable: {exc}")
    yield prefix
    probe.clear_prefix()
    probe.close()
