"""Fixtures: services with a deployment secret over SQLite, and a Redis cache under a prefix of its own."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from privhelpers import REDIS_URL, make_services

from shoprec.errors import StorageError
from shoprec.service import Services
from shoprec.service.cache import RedisCache


@pytest.fixture
def redis_cache() -> Iterator[RedisCache]:
    """A Redis cache under a prefix of its own (removed afterwards); skipped when Redis is not running."""
    try:
        cache = RedisCache(REDIS_URL, prefix=f"shoprec-test-{uuid.uuid4().hex[:8]}:")
    except StorageError as exc:
        pytest.skip(f"{exc} (start Redis to run the erasure tests against it)")
    yield cache
    cache.clear_prefix()
    cache.close()


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    svc = make_services(tmp_path)
    yield svc
    svc.close()
