"""The full UCI Online Retail file through `ingest` into SQLite, then the snapshot (slow: minutes under load).
How fast: benchmarks/import_benchmark.py and import_scale.py (speed is measured by benchmarks, never asserted)."""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

import pytest

from shoprec.datasets import read_records
from shoprec.ingest.pipeline import ingest
from shoprec.storage import create_db, load_interactions

pytestmark = [pytest.mark.slow, pytest.mark.realdata]


def test_full_online_retail_import_and_snapshot(shared_data: Path, tmp_path: Path) -> None:
    path = shared_data / "online-retail" / "online_retail.csv.gz"
    with gzip.open(path, "rt", encoding="utf-8", newline="") as f:
        lines = sum(1 for _ in csv.reader(f)) - 1
    engine = create_db(f"sqlite:///{tmp_path / 'retail.db'}")
    report = ingest(engine, "retail", read_records("online-retail", path))
    assert report.read == lines
    assert report.read == report.accepted + report.rejected_total
    assert {"missing_user", "duplicate", "non_product_code"} <= set(report.rejected)
    inter, catalog = load_interactions(engine, "retail")  # its speed: benchmarks/import_scale.py, not a test
    assert len(inter) == report.stored_total("events") == report.accepted
    assert all(catalog.title) and len(catalog) == inter.n_items
    again = ingest(engine, "retail", read_records("online-retail", path))
    assert again.stored_total("events") == 0 and again.rejected["duplicate"] >= report.accepted
    engine.dispose()
