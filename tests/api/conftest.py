"""Fixtures: the app over fresh services (SQLite file) with a synthetic platform and an active itemknn model."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from shoprec.api import create_app
from shoprec.service import Services
from shoprec.service.testing import ReadyPlatform, local_services, synthetic_platform


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    svc = local_services(tmp_path)
    yield svc
    svc.close()


@pytest.fixture
def shop(services: Services) -> ReadyPlatform:
    return synthetic_platform(services, "shop")


@pytest.fixture
def client(services: Services, shop: ReadyPlatform) -> Iterator[TestClient]:
    app = create_app(services.settings, services.config, services=services)
    with TestClient(app, headers={"X-API-Key": shop.api_key}, raise_server_exceptions=False) as c:
        yield c
