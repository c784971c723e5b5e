"""Fixtures: the dashboard's platform (see dashhelpers.ready_dashboard), built once per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from dashhelpers import Dashboard, ready_dashboard


@pytest.fixture(scope="module")
def board(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    dash = ready_dashboard(tmp_path_factory.mktemp("dashboard"))
    yield dash
    dash.services.close()
