"""Shared fixtures: real datasets, and database fixtures that run the storage and ingest tests against
SQLite, PostgreSQL and MySQL/MariaDB (each backend gets a scratch database for the test session; a
server that cannot be reached skips its tests with the reason; CI starts both servers).

Also `services` (fresh services over a SQLite file) and `shop` (a synthetic platform with an active itemknn
model), used by the service, API and explanation tests. Area-specific fixtures live in tests/<area>/conftest.py."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from shoprec.service import Services
from shoprec.service.testing import ReadyPlatform, local_services, synthetic_platform
from shoprec.settings import Settings
from shoprec.storage import create_db
from shoprec.storage.testing import ServerUnavailable, scratch_database


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (or SHOPREC_DATA_DIR); tests using it are skipped, saying so, when it is absent."""
    path = Settings.from_env().data_dir
    if not path.is_dir():
        pytest.skip(f"real datasets not found at {path} (set SHOPREC_DATA_DIR); skipping real-data test")
    return path


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    svc = local_services(tmp_path)
    yield svc
    svc.close()


@pytest.fixture
def shop(services: Services) -> ReadyPlatform:
    return synthetic_platform(services, "shop")


BACKEND_PARAMS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    pytest.param("mysql", id="mysql", marks=pytest.mark.mysql),
]


@pytest.fixture(scope="session", params=BACKEND_PARAMS)
def db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    try:
        with scratch_database(request.param, tmp_path_factory.mktemp("db")) as url:
            yield url
    except ServerUnavailable as exc:
        pytest.skip(f"{exc} (start it to run the {request.param} storage tests)")


@pytest.fixture(scope="session")
def engine(db_url: str) -> Iterator[sa.Engine]:
    engine = create_db(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def platform() -> str:
    """A platform name no other test uses."""
    return f"shop-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def sqlite_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sa.Engine]:
    """A fresh migrated SQLite database, for tests that need no other backend."""
    engine = create_db(f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'shoprec.db'}")
    yield engine
    engine.dispose()
