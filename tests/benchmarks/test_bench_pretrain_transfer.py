"""benchmarks/pretrain_transfer.py's summary over seeds (nothing is benchmarked here): the means, standard errors
and ratios to scratch that docs/benchmarks.md quotes for the small shares of users."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        spec = importlib.util.spec_from_file_location("pretrain_transfer", BENCHMARKS / "pretrain_transfer.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path.remove(str(BENCHMARKS))


def _row(model: str, users: float, seed: int, ndcg: float, val: float | None, best: int | None) -> dict:
    return {"model": model, "users": users, "seed": seed, "NDCG@10": ndcg, "HR@10": 2 * ndcg, "val_NDCG@10": val,
            "best_epoch": best}


def test_the_summary_averages_the_seeds_and_compares_with_scratch(bench: ModuleType) -> None:
    rows = [_row("scratch", 0.05, 0, 0.030, 0.05, 6), _row("fine-tuned", 0.05, 0, 0.036, 0.06, 10),
            _row("scratch", 0.05, 1, 0.034, 0.07, 8), _row("fine-tuned", 0.05, 1, 0.036, 0.08, 20),
            _row("popular", 0.05, 0, 0.010, None, None), _row("popular", 0.05, 1, 0.012, None, None),
            _row("scratch", 1.0, 0, 0.08, 0.1, 9)]
    summary = {(s["users"], s["model"]): s for s in bench.summary(rows)}
    scratch, tuned, popular = (summary[(0.05, m)] for m in ("scratch", "fine-tuned", "popular"))
    assert scratch["seeds"] == 2 and scratch["NDCG@10"] == pytest.approx(0.032)
    assert scratch["NDCG@10_se"] == pytest.approx(0.002)  # sd 0.00283 / sqrt(2)
    assert tuned["NDCG@10_se"] == 0.0 and tuned["best_epoch"] == 15.0 and tuned["val_NDCG@10"] == 0.07
    assert tuned["vs_scratch"] == pytest.approx(0.036 / 0.032, abs=1e-3)
    assert tuned["val_vs_scratch"] == pytest.approx(0.07 / 0.06, abs=1e-3)
    assert popular["val_NDCG@10"] is None and popular["best_epoch"] is None and "val_vs_scratch" not in popular
    assert summary[(1.0, "scratch")]["NDCG@10_se"] is None  # one seed: no error to show
    assert "vs_scratch" not in scratch
