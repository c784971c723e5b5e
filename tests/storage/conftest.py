"""Fixtures of the storage tests: a scratch database of its own per test, for the migration tests that downgrade
it (the session's shared `engine` stays at head)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from shoprec.storage.testing import ServerUnavailable, scratch_database

BACKENDS = [pytest.param("sqlite", id="sqlite"),
            pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
            pytest.param("mysql", id="mysql", marks=pytest.mark.mysql)]


@pytest.fixture(params=BACKENDS)
def scratch_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A scratch database of its own (the test downgrades it)."""
    try:
        with scratch_database(request.param) as url:
            yield url
    except ServerUnavailable as exc:
        pytest.skip(f"{exc} (start it to run the {request.param} migration test)")
