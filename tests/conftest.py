"""Shared fixtures. Area-specific fixtures live in tests/<area>/conftest.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from shoprec.settings import Settings


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (or SHOPREC_DATA_DIR); tests using it are skipped, saying so, when it is absent."""
    path = Settings.from_env().data_dir
    if not path.is_dir():
        pytest.skip(f"real datasets not found at {path} (set SHOPREC_DATA_DIR); skipping real-data test")
    return path
