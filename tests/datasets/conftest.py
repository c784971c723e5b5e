"""Fixtures for dataset tests (helpers live in dshelpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from dshelpers import RETAIL_BAD_ROWS, RETAIL_HEADER, RETAIL_ROWS, write


@pytest.fixture
def retail_file(tmp_path: Path) -> Path:
    return write(tmp_path / "retail.csv.gz", RETAIL_HEADER + "\n".join(RETAIL_ROWS) + "\n", gz=True)


@pytest.fixture
def retail_bad_file(tmp_path: Path) -> Path:
    return write(tmp_path / "retail_bad.csv", RETAIL_HEADER + "\n".join(RETAIL_ROWS + RETAIL_BAD_ROWS) + "\n")
