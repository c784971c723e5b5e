"""Proportions with 95% Wilson intervals and the two-proportion z-test (pure functions, no I/O)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

Z95 = 1.959963984540054


def wilson(successes: int, trials: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of successes / trials ((0, 1) when there are no trials)."""
    if trials <= 0:
        return 0.0, 1.0
    p = successes / trials
    denom = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def two_proportion_p(s1: int, n1: int, s2: int, n2: int) -> float | None:
    """Two-sided p-value of H0: p1 == p2 (pooled z-test); None when a group is empty or nothing varies."""
    if n1 <= 0 or n2 <= 0:
        return None
    pooled = (s1 + s2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return None
    z = (s1 / n1 - s2 / n2) / se
    return math.erfc(abs(z) / math.sqrt(2))


@dataclass(frozen=True, slots=True)
class Rate:
    """A proportion and its 95% Wilson interval."""

    value: float
    ci95: tuple[float, float]

    def to_json(self) -> dict[str, Any]:
        return {"value": self.value, "ci95": list(self.ci95)}


def rate(successes: int, trials: int) -> Rate:
    """The proportion successes / trials (0.0 without trials) and its 95% interval (rounded to 6 places)."""
    low, high = wilson(successes, trials)
    return Rate(successes / trials if trials else 0.0, (round(low, 6), round(high, 6)))
