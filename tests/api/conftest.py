"""Fixtures: the app over the `services` and `shop` fixtures of tests/conftest.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from shoprec.api import create_app
from shoprec.service import Services
from shoprec.service.testing import ReadyPlatform


@pytest.fixture
def client(services: Services, shop: ReadyPlatform) -> Iterator[TestClient]:
    app = create_app(services.settings, services.config, services=services)
    with TestClient(app, headers={"X-API-Key": shop.api_key}, raise_server_exceptions=False) as c:
        yield c
