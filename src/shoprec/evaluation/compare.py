"""Paired comparison of two evaluation runs: per-metric difference (B - A) with a bootstrap CI and p-value.

Units (users, or fold:user for rating runs) present in both runs are paired. Each bootstrap replicate
draws units with replacement (seeded) and recomputes both runs' statistic on the same draw: the mean of
a per-user metric (NaN ignored), or pooled RMSE = sqrt(sum SE / sum n) and MAE = sum AE / sum n for
rating runs. The CI is the percentile interval of the replicate differences; the two-sided p-value is
2 * min(P(diff <= 0), P(diff >= 0)) over replicates (with +1 smoothing), capped at 1; its smallest possible
value (the resolution) is 2 / (replicates + 1), and a p-value there is printed as "< 0.002" (1,000 replicates):
the data say only that p is at most that, so more replicates (--n-boot) are needed to say how much smaller.
Metrics without per-user values (catalog coverage) are shown without an interval.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from shoprec.errors import DataError

Stat = Callable[[dict[str, np.ndarray], np.ndarray | None], float | np.ndarray]


@dataclass(frozen=True)
class MetricDiff:
    metric: str
    a: float | None
    b: float | None
    diff: float | None
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    p_floor: float | None = None  # the smallest p the replicates can give: 2 / (replicates + 1)

    @property
    def p_at_floor(self) -> bool:
        return self.p_value is not None and self.p_floor is not None and self.p_value <= self.p_floor * (1 + 1e-9)


@dataclass(frozen=True)
class Comparison:
    rows: list[MetricDiff]
    n_paired: int
    only_a: int
    only_b: int
    n_boot: int
    seed: int
    warnings: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {"n_paired": self.n_paired, "only_a": self.only_a, "only_b": self.only_b, "n_boot": self.n_boot,
                "seed": self.seed, "warnings": self.warnings,
                "metrics": {r.metric: {"a": r.a, "b": r.b, "diff": r.diff, "ci95": [r.ci_low, r.ci_high],
                                       "p_value": r.p_value, "p_floor": r.p_floor, "p_at_floor": r.p_at_floor}
                            for r in self.rows}}


def compare(a: dict[str, Any], b: dict[str, Any], *, n_boot: int = 1000, seed: int = 0,
            level: float = 0.95) -> Comparison:
    """Compare run B against run A (documents from `report.read_json`)."""
    if a["protocol"] != b["protocol"]:
        raise DataError(f"cannot compare protocol {a['protocol']!r} with {b['protocol']!r}")
    if n_boot < 1:
        raise DataError(f"n_boot must be positive, got {n_boot}")
    warnings = [] if a.get("dataset") == b.get("dataset") else [
        f"different datasets: {a.get('dataset')!r} vs {b.get('dataset')!r}"]
    if "SE" in a["per_user"]["values"]:
        warnings.append("RMSE/MAE here are pooled over the paired ratings (the runs report the mean over folds)")
    va, vb, n_a, n_b = _paired_values(a, b)
    n = len(next(iter(va.values()))) if va else 0
    if n == 0:
        raise DataError("the two runs have no evaluated user in common")
    stats = _statistics(va.keys() & vb.keys())
    rng = np.random.default_rng(seed)
    boot = _bootstrap(va, vb, stats, n, n_boot, rng)
    rows = []
    for name in _metric_order(a, b, stats):
        if name in stats:
            sa, sb = float(stats[name](va, None)), float(stats[name](vb, None))
            rows.append(_with_interval(name, sa, sb, boot[name], level))
        else:
            ma, mb = a["metrics"].get(name), b["metrics"].get(name)
            diff = mb - ma if ma is not None and mb is not None else None
            rows.append(MetricDiff(name, ma, mb, diff))
    return Comparison(rows, n, n_a - n, n_b - n, n_boot, seed, warnings)


def _paired_values(a: dict[str, Any], b: dict[str, Any]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray],
                                                                    int, int]:
    keys_a, keys_b = a["per_user"]["keys"], b["per_user"]["keys"]
    pos_b = {k: i for i, k in enumerate(keys_b)}
    ia = np.array([i for i, k in enumerate(keys_a) if k in pos_b], dtype=np.int64)
    ib = np.array([pos_b[keys_a[i]] for i in ia], dtype=np.int64)
    common = a["per_user"]["values"].keys() & b["per_user"]["values"].keys()
    va = {m: _floats(a["per_user"]["values"][m])[ia] for m in common}
    vb = {m: _floats(b["per_user"]["values"][m])[ib] for m in common}
    return va, vb, len(keys_a), len(keys_b)


def _floats(values: list[Any]) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def _statistics(names: set[str]) -> dict[str, Stat]:
    """Statistic per metric: nanmean of a per-user metric, pooled RMSE/MAE from SE/AE/n sums."""
    stats: dict[str, Stat] = {}
    for name in sorted(names - {"SE", "AE", "n"}):
        stats[name] = _mean_stat(name)
    if {"SE", "n"} <= names:
        stats["RMSE"] = _ratio_stat("SE", sqrt=True)
    if {"AE", "n"} <= names:
        stats["MAE"] = _ratio_stat("AE", sqrt=False)
    return stats


def _mean_stat(name: str) -> Stat:
    def stat(values: dict[str, np.ndarray], idx: np.ndarray | None) -> float | np.ndarray:
        x = values[name] if idx is None else values[name][idx]
        ok = ~np.isnan(x)
        count = ok.sum(axis=-1)
        total = np.where(ok, x, 0.0).sum(axis=-1)
        return np.divide(total, count, out=np.full(np.shape(count), np.nan), where=count > 0)
    return stat


def _ratio_stat(num: str, *, sqrt: bool) -> Stat:
    def stat(values: dict[str, np.ndarray], idx: np.ndarray | None) -> float | np.ndarray:
        top = values[num] if idx is None else values[num][idx]
        cnt = values["n"] if idx is None else values["n"][idx]
        r = top.sum(axis=-1) / cnt.sum(axis=-1)
        return np.sqrt(r) if sqrt else r
    return stat


def _bootstrap(va: dict[str, np.ndarray], vb: dict[str, np.ndarray], stats: dict[str, Stat], n: int,
               n_boot: int, rng: np.random.Generator, chunk: int = 100) -> dict[str, np.ndarray]:
    """Replicate differences per metric; every metric uses the same resampled units."""
    out: dict[str, list[np.ndarray]] = {name: [] for name in stats}
    for start in range(0, n_boot, chunk):
        idx = rng.integers(0, n, size=(min(chunk, n_boot - start), n))
        for name, stat in stats.items():
            out[name].append(np.asarray(stat(vb, idx)) - np.asarray(stat(va, idx)))
    return {name: np.concatenate(parts) for name, parts in out.items()}


def _with_interval(name: str, sa: float, sb: float, diffs: np.ndarray, level: float) -> MetricDiff:
    diffs = diffs[~np.isnan(diffs)]
    if math.isnan(sa) or math.isnan(sb) or not len(diffs):
        return MetricDiff(name, _opt(sa), _opt(sb), None)
    tail = (1.0 - level) / 2.0
    lo, hi = np.quantile(diffs, [tail, 1.0 - tail])
    m = len(diffs)
    p = 2.0 * min((1 + (diffs <= 0).sum()) / (m + 1), (1 + (diffs >= 0).sum()) / (m + 1))
    return MetricDiff(name, sa, sb, sb - sa, float(lo), float(hi), float(min(p, 1.0)), 2.0 / (m + 1))


def _opt(x: float) -> float | None:
    return None if math.isnan(x) else x


def _metric_order(a: dict[str, Any], b: dict[str, Any], stats: dict[str, Stat]) -> list[str]:
    names = [m for m in a["metrics"] if m in b["metrics"]]
    names += [m for m in stats if m not in names]
    return names


def render_comparison(cmp: Comparison, name_a: str = "A", name_b: str = "B") -> str:
    """A plain-text table: metric, A, B, B - A, 95% CI, p."""
    head = f"{'metric':<18} {name_a[:12]:>12} {name_b[:12]:>12} {'B - A':>10} {'95% CI':>23} {'p':>7}"
    lines = [head]
    for r in cmp.rows:
        ci = f"[{r.ci_low:+.4f}, {r.ci_high:+.4f}]" if r.ci_low is not None and r.ci_high is not None else "-"
        p = format_p(r)
        lines.append(f"{r.metric:<18} {_f(r.a):>12} {_f(r.b):>12} {_f(r.diff, signed=True):>10} {ci:>23} {p:>7}")
    lines.append(f"{cmp.n_paired} paired units ({cmp.only_a} only in A, {cmp.only_b} only in B); "
                 f"p and CI from {cmp.n_boot:,} bootstrap resamples (seed {cmp.seed}; smallest p "
                 f"{_ceil_2sig(2.0 / (cmp.n_boot + 1))})")
    lines.extend(f"note: {w}" for w in cmp.warnings)
    return "\n".join(lines)


def format_p(r: MetricDiff) -> str:
    """The p-value to 4 decimals, or "< FLOOR" at the bootstrap's resolution floor (e.g. "< 0.002")."""
    if r.p_value is None:
        return "-"
    if r.p_at_floor and r.p_floor is not None:
        return f"< {_ceil_2sig(r.p_floor)}"
    return f"{r.p_value:.4f}"


def _ceil_2sig(x: float) -> str:
    """`x` rounded up to two significant digits (0.001998 -> "0.002"), so that "< that" holds."""
    exp = math.floor(math.log10(x)) - 1
    value = math.ceil(x / 10.0 ** exp * (1 - 1e-12)) * 10.0 ** exp
    return f"{value:.{max(0, -exp)}f}".rstrip("0").rstrip(".")


def _f(x: float | None, signed: bool = False) -> str:
    if x is None:
        return "n/a"
    return f"{x:+.4f}" if signed else f"{x:.4f}"
