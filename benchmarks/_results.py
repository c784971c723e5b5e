"""One shape for every benchmark run, appended to the benchmark's file under benchmarks/results/.

A run is recorded as

    {"date": "2026-12-06T14:00:00+00:00",          # UTC, ISO 8601
     "commit": "17fae26" | "17fae26+dirty" | None,   # git short hash of the checkout that ran
     "command": "python benchmarks/x.py --flag",   # sys.argv joined
     "machine": {"cpu_model", "cores", "memory_gib", "torch", "torch_threads", "cuda_device", "platform"},
     "figures": {...},                              # what was measured
     "config": {...}}                               # optional: what was run (arguments, parameters)

A results file is a JSON list of runs, oldest first. Entries written before this shape (a file holding one
JSON object, or a list of older objects) are kept as they are: the first new run turns a one-object file into
a list that starts with the old object. `load_runs` reads either; `latest` is the newest entry.

Scripts run as `python benchmarks/<script>.py`, so `from _results import append_run` finds this module.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "benchmarks" / "results"


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux), else what the platform module knows."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        return next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def cores() -> int:
    """The cores this process may run on (its affinity), else the machine's count."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def memory_gib() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (AttributeError, OSError, ValueError):
        return None


def _torch() -> dict[str, Any]:
    try:
        import torch
    except ImportError:
        return {"torch": None, "torch_threads": None, "cuda_device": None}
    cuda = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"torch": str(torch.__version__), "torch_threads": torch.get_num_threads(), "cuda_device": cuda}


def machine() -> dict[str, Any]:
    """The machine a run ran on: cpu_model, cores, memory_gib, torch, torch_threads, cuda_device, platform."""
    return {"cpu_model": cpu_model(), "cores": cores(), "memory_gib": memory_gib(), **_torch(),
            "platform": platform.platform()}


def git_commit(root: Path = ROOT) -> str | None:
    """The checkout's short hash, with "+dirty" when tracked files differ from it; None outside git."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return f"{head}+dirty" if dirty else head or None


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def record(figures: dict[str, Any], config: dict[str, Any] | None = None,
           argv: list[str] | None = None) -> dict[str, Any]:
    """One run in the common shape (see the module docstring)."""
    run: dict[str, Any] = {"date": utc_now(), "commit": git_commit(),
                           "command": " ".join(["python", *(sys.argv if argv is None else argv)]),
                           "machine": machine(), "figures": figures}
    if config is not None:
        run["config"] = config
    return run


def load_runs(path: Path) -> list[dict[str, Any]]:
    """Every entry of a results file, oldest first ([] when there is none); a one-object file is one entry."""
    if not path.exists():
        return []
    data = json.loads(path.read_text(encoding="utf-8"))
    return data if isinstance(data, list) else [data]


def latest(path: Path) -> dict[str, Any] | None:
    """The newest entry of a results file, or None."""
    runs = load_runs(path)
    return runs[-1] if runs else None


def is_run(entry: dict[str, Any]) -> bool:
    """Whether an entry has the common shape (older entries have their own)."""
    return isinstance(entry.get("figures"), dict) and isinstance(entry.get("machine"), dict)


def latest_figures(path: Path) -> dict[str, Any] | None:
    """The figures of the newest entry (an older-shape entry is its own figures), or None."""
    entry = latest(path)
    if entry is None:
        return None
    return entry["figures"] if is_run(entry) else entry


def append_run(path: Path, figures: dict[str, Any], config: dict[str, Any] | None = None,
               argv: list[str] | None = None, replace_last: bool = False) -> dict[str, Any]:
    """Record a run (`record`) and add it to the results file at `path`, keeping what the file held.

    `replace_last`: the run updates the one this process appended before (a benchmark that saves as it goes);
    the newest entry is replaced when it has the common shape, else the run is appended.
    """
    run = record(figures, config, argv)
    path.parent.mkdir(parents=True, exist_ok=True)
    runs = load_runs(path)
    if replace_last and runs and is_run(runs[-1]):
        runs.pop()
    runs.append(run)
    tmp = path.with_name(path.name + ".tmp")  # a killed run leaves the file whole
    tmp.write_text(json.dumps(runs, indent=1) + "\n", encoding="utf-8")
    tmp.replace(path)
    print(f"wrote {path}", file=sys.stderr)
    return run
