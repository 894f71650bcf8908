"""Median, min and max of a handful of figures, printed the same way everywhere."""

from __future__ import annotations

import statistics
from dataclasses import dataclass


@dataclass(frozen=True)
class Spread:
    median: float
    low: float
    high: float
    n: int

    @classmethod
    def of(cls, values: list[float]) -> Spread:
        return cls(statistics.median(values), min(values), max(values), len(values))

    def text(self, unit: str = "s", digits: int = 2) -> str:
        suffix = f" {unit}" if unit else ""
        return (
            f"{self.median:.{digits}f}{suffix} (min {self.low:.{digits}f}, "
            f"max {self.high:.{digits}f}, n={self.n})"
        )


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank percentile (q in 0..1): with 20 values, p95 is the 19th."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 1))))
    return ordered[rank - 1]
