"""Fixtures: fresh services over a SQLite file, and a synthetic platform with an active itemknn model."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

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
