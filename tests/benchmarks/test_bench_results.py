"""benchmarks/_results.py: the one shape every benchmark run is recorded in (nothing is benchmarked here)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def results():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import _results

        yield _results
    finally:
        sys.path.remove(str(BENCHMARKS))


def test_a_run_has_the_common_shape(results):
    run = results.record({"p50_ms": 1.5}, {"k": 10}, argv=["benchmarks/x.py", "--k", "10"])
    assert set(run) == {"date", "commit", "command", "machine", "figures", "config"}
    assert run["command"] == "python benchmarks/x.py --k 10"
    assert run["date"].endswith("+00:00")
    assert run["commit"] is None or run["commit"].split("+")[0].isalnum()
    assert set(run["machine"]) == {"cpu_model", "cores", "memory_gib", "torch", "torch_threads", "cuda_device",
                                   "platform"}
    assert run["machine"]["cores"] >= 1
    assert run["figures"] == {"p50_ms": 1.5} and run["config"] == {"k": 10}
    assert "config" not in results.record({"x": 1}, argv=[])
    assert results.is_run(run)


def test_commit_is_dirty_when_tracked_files_differ(results, tmp_path):
    import subprocess

    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(tmp_path)]
    if subprocess.run([*git, "init", "-q"], check=False).returncode != 0:
        pytest.skip("no git")
    (tmp_path / "f").write_text("a")
    subprocess.run([*git, "add", "f"], check=True)
    subprocess.run([*git, "commit", "-qm", "c"], check=True)
    clean = results.git_commit(tmp_path)
    assert clean and "+" not in clean
    (tmp_path / "f").write_text("b")
    assert results.git_commit(tmp_path) == f"{clean}+dirty"
    assert results.git_commit(tmp_path / "missing") is None


def test_append_keeps_older_entries_of_either_shape(results, tmp_path):
    path = tmp_path / "r" / "bench.json"
    assert results.load_runs(path) == [] and results.latest(path) is None
    results.append_run(path, {"n": 1}, argv=[])
    results.append_run(path, {"n": 2}, argv=[])
    assert [r["figures"]["n"] for r in json.loads(path.read_text())] == [1, 2]
    assert results.latest_figures(path) == {"n": 2}

    legacy = tmp_path / "legacy.json"  # a file from before: one JSON object
    legacy.write_text(json.dumps({"machine": "x86_64, 2 cores", "rows": [1]}))
    assert results.latest_figures(legacy) == {"machine": "x86_64, 2 cores", "rows": [1]}
    results.append_run(legacy, {"rows": [2]}, argv=[])
    old, new = json.loads(legacy.read_text())
    assert old == {"machine": "x86_64, 2 cores", "rows": [1]} and new["figures"] == {"rows": [2]}


def test_replace_last_updates_only_a_run_of_the_common_shape(results, tmp_path):
    path = tmp_path / "bench.json"
    path.write_text(json.dumps({"legacy": True}))
    results.append_run(path, {"done": 1}, argv=[], replace_last=True)  # never replaces an older-shape entry
    results.append_run(path, {"done": 2}, argv=[], replace_last=True)
    entries = results.load_runs(path)
    assert entries[0] == {"legacy": True} and [e["figures"] for e in entries[1:]] == [{"done": 2}]
    assert not (tmp_path / "bench.json.tmp").exists()


def test_every_benchmark_script_records_through_the_helper():
    scripts = [p for p in BENCHMARKS.glob("*.py") if not p.name.startswith("_")]  # _helpers are not benchmarks
    assert scripts
    for script in scripts:
        text = script.read_text(encoding="utf-8")
        assert "from _results import" in text, script.name
        assert "write_text(json.dumps" not in text, script.name
    popularity = (BENCHMARKS / "popularity_counts.py").read_text(encoding="utf-8")
    assert "import serving_latency" not in popularity and "from serving_latency" not in popularity
