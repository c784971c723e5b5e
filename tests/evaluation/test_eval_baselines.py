"""benchmarks/baselines.py: merging results and regenerating the docs table (no model is run)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "baselines.py"


@pytest.fixture(scope="module")
def baselines():
    spec = importlib.util.spec_from_file_location("baselines_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the script runs
    sys.path.insert(0, str(SCRIPT.parent))  # its helper, benchmarks/_results.py
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)
        sys.path.remove(str(SCRIPT.parent))


def row(bench, model, hr=0.1, status="ok"):
    if status != "ok":
        return {"benchmark": bench, "model": model, "status": "error", "error": "DataError: no ratings"}
    return {"benchmark": bench, "model": model, "status": "ok", "n_users_evaluated": 7, "fit_seconds": 1.5,
            "eval_seconds": 0.25, "metrics": {"HR@10": hr, "NDCG@10": hr / 2, "RMSE": 0.9, "MAE": 0.7}}


def test_merge_replaces_same_pairs_keeps_others_and_orders_rows(baselines):
    old = {"runs": [row("retail", "popular", 0.3), row("beauty", "ease", 0.2), row("beauty", "popular", 0.1)]}
    merged = baselines.merge(old, [row("beauty", "popular", 0.15)], fresh=False)
    assert [(r["benchmark"], r["model"]) for r in merged] == [("beauty", "popular"), ("beauty", "ease"),
                                                             ("retail", "popular")]
    assert merged[0]["metrics"]["HR@10"] == 0.15
    assert len(baselines.merge(old, [row("beauty", "popular")], fresh=True)) == 1


def test_markdown_tables_and_rewrite_between_markers(baselines, tmp_path):
    results = {"updated": "today", "machine": {"cpu_model": "cpu-x", "cpu_count": 2}, "note": "under load",
               "runs": [row("beauty", "popular", 0.125), row("beauty", "mf", status="error"), row("ml100k", "mf")]}
    table = baselines.markdown(results)
    assert "| popular | 0.1250 | 0.0625 |" in table
    assert "failed: DataError: no ratings" in table
    assert "| mf | 0.9000 | 0.7000 | 7 | 1.5 | 0.25 |" in table
    assert "cpu-x, 2 CPUs" in table and "under load" in table
    assert "Online Retail" not in table  # no rows, no table
    doc = tmp_path / "b.md"
    doc.write_text(f"# B\n\nintro\n\n{baselines.BEGIN}\nOLD-TABLE\n{baselines.END}\n\n## Later section\n")
    baselines.write_markdown(table, doc)
    text = doc.read_text()
    assert "OLD-TABLE" not in text and "| popular | 0.1250" in text
    assert text.startswith("# B\n\nintro") and text.rstrip().endswith("## Later section")


def test_the_table_is_appended_as_a_run_and_older_tables_still_read(baselines, tmp_path):
    legacy = {"updated": "then", "machine": {"cpu_model": "old-cpu", "cpu_count": 2}, "threads": 1, "note": None,
              "runs": [row("beauty", "popular", 0.1)]}
    path = tmp_path / "baselines.json"
    path.write_text(json.dumps(legacy))
    old = baselines.current_table(baselines.latest(path))
    assert old == legacy
    table = baselines.save_table(path, baselines.merge(old, [row("beauty", "ease", 0.2)], False), "note",
                                 {"threads": 2})
    entries = json.loads(path.read_text())
    assert entries[0] == legacy and entries[1]["figures"]["note"] == "note"
    assert {r["model"] for r in table["runs"]} == {"popular", "ease"}
    assert table["threads"] == 2 and table["updated"] == entries[1]["date"]
    assert baselines.current_table(baselines.latest(path)) == table
    assert f"{table['machine']['cores']} CPUs" in baselines.markdown(table)
