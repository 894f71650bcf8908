"""Judge a canary's samples against its comparison's with a rank test. Pure.

A fixed threshold catches a broken version, not one that is 20% slower than the version
it replaces while staying under the threshold. ``judge_samples`` takes the values a
metric had on the canary and on the comparison (the stable revision, or a baseline)
over a step, at scrape resolution, and decides as Kayenta's judge does: a Mann-Whitney
U test (``scipy.stats.mannwhitneyu``: exact for small samples without ties, otherwise
the normal approximation with tie and continuity corrections) says whether the canary
differs, and an effect size says whether the difference matters.

- **Inconclusive** when either side has fewer than ``minSamples`` finite values (NaN and
  +/-Inf, a scrape without traffic, are dropped and counted): too little evidence is never
  a pass.
- **Failed** only when both hold: the test is significant at ``confidence`` in the harmful
  ``direction`` (one-sided for increase/decrease, two-sided for either), and the harmful
  relative difference of the medians is larger than ``tolerance``.
- **Successful** otherwise.

The verdict carries its evidence: both sample sizes and medians, the effect size, the
p-value, and the Hodges-Lehmann estimate of the shift (canary minus comparison, the
median of all pairwise differences) with its distribution-free confidence interval at
``confidence`` (two-sided; order statistics of the pairwise differences at the U
distribution's normal-approximation critical value, as in Hollander & Wolfe).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import TYPE_CHECKING, Literal

# numpy and scipy are imported where a comparison is judged: most controllers never judge
# one, and loading them costs every start (and the CLI) a third of a second and ~30 MiB.
if TYPE_CHECKING:
    import numpy as np

from controller.analysis.verdict import fmt
from controller.api.analysis import Compare

CompareVerdict = Literal["Successful", "Failed", "Inconclusive"]

MAX_PAIRWISE = 4_000_000
"""Pairwise differences the shift's estimate is computed from at most (32 MB of floats);
larger samples are thinned evenly for the estimate only, never for the test."""


@dataclass(frozen=True)
class Evidence:
    """What the verdict rests on; every field is shown to people as is."""

    canary_count: int
    comparison_count: int
    dropped: int
    canary_median: float | None
    comparison_median: float | None
    effect: float | None
    """(canary median - comparison median) / |comparison median|; +/-inf from a 0 median."""
    p_value: float | None
    shift: float | None
    """Hodges-Lehmann estimate of canary minus comparison."""
    shift_low: float | None
    shift_high: float | None


@dataclass(frozen=True)
class Comparison:
    verdict: CompareVerdict
    message: str
    evidence: Evidence


def judge_samples(
    name: str,
    canary: Sequence[float],
    comparison: Sequence[float],
    compare: Compare,
) -> Comparison:
    """The verdict on ``canary`` against ``comparison``; see the module docstring."""
    import numpy as np
    from scipy.stats import mannwhitneyu

    canary_values = _finite(canary)
    comparison_values = _finite(comparison)
    dropped = len(canary) + len(comparison) - len(canary_values) - len(comparison_values)
    against = compare.against
    n, m = len(canary_values), len(comparison_values)
    if n < compare.min_samples or m < compare.min_samples:
        evidence = Evidence(
            n,
            m,
            dropped,
            _median(canary_values),
            _median(comparison_values),
            None,
            None,
            None,
            None,
            None,
        )
        return Comparison(
            "Inconclusive",
            f"{name}: too few samples to compare: canary {n}, {against} {m}, "
            f"minSamples {compare.min_samples}" + _dropped_note(dropped),
            evidence,
        )
    canary_median = float(np.median(canary_values))
    comparison_median = float(np.median(comparison_values))
    effect = _relative_difference(canary_median, comparison_median)
    alternative = {"increase": "greater", "decrease": "less", "either": "two-sided"}[
        compare.direction
    ]
    if min(canary_values) == max(canary_values) == min(comparison_values) == max(comparison_values):
        # One value everywhere: every pair ties, the U statistic has no variance (the
        # normal approximation would divide by zero) and there is no difference at all.
        p_value = 1.0
    else:
        test = mannwhitneyu(canary_values, comparison_values, alternative=alternative)
        p_value = float(test.pvalue)
    shift, low, high = hodges_lehmann(canary_values, comparison_values, compare.confidence)
    evidence = Evidence(
        n, m, dropped, canary_median, comparison_median, effect, p_value, shift, low, high
    )
    alpha = 1.0 - compare.confidence
    harm = _harm(effect, compare.direction)
    significant = p_value < alpha
    summary = (
        f"canary median {fmt(canary_median)} vs {against} {fmt(comparison_median)} "
        f"({_percent(effect)}), p={p_value:.3g}, shift {fmt(shift)} "
        f"[{fmt(low)}, {fmt(high)}] at {fmt(compare.confidence * 100)}%, "
        f"n={n}/{m}" + _dropped_note(dropped)
    )
    if significant and harm > compare.tolerance:
        return Comparison(
            "Failed",
            f"{name}: {_harm_word(compare.direction, effect)} beyond tolerance "
            f"{fmt(compare.tolerance * 100)}%: {summary}",
            evidence,
        )
    if significant:
        why = f"significant but within tolerance {fmt(compare.tolerance * 100)}%"
    else:
        why = f"no significant {_direction_word(compare.direction)} (p >= {fmt(alpha)})"
    return Comparison("Successful", f"{name}: {why}: {summary}", evidence)


def hodges_lehmann(
    canary: Sequence[float], comparison: Sequence[float], confidence: float
) -> tuple[float, float, float]:
    """The shift estimate (canary minus comparison) and its two-sided interval."""
    import numpy as np

    x = np.asarray(canary, dtype=float)
    y = np.asarray(comparison, dtype=float)
    x, y = _thinned(x, len(y)), _thinned(y, len(x))
    n, m = len(x), len(y)
    differences = np.sort(np.subtract.outer(x, y).ravel())
    estimate = float(np.median(differences))
    z = NormalDist().inv_cdf(1.0 - (1.0 - confidence) / 2.0)
    # k: the count of pairwise differences cut from each end; the U distribution's
    # lower critical value under the normal approximation.
    k = math.floor(n * m / 2.0 - z * math.sqrt(n * m * (n + m + 1) / 12.0))
    k = max(0, min(k, len(differences) // 2 - 1 if len(differences) > 1 else 0))
    return estimate, float(differences[k]), float(differences[len(differences) - 1 - k])


def _thinned(values: np.ndarray, other: int) -> np.ndarray:
    """Every k-th of the sorted values so that len * other stays under MAX_PAIRWISE."""
    import numpy as np

    if len(values) * other <= MAX_PAIRWISE:
        return values
    keep = max(1, MAX_PAIRWISE // max(other, 1))
    ordered = np.sort(values)
    picks = np.linspace(0, len(ordered) - 1, keep).round().astype(int)
    thinned: np.ndarray = ordered[picks]
    return thinned


def _finite(values: Sequence[float]) -> list[float]:
    return [float(v) for v in values if math.isfinite(v)]


def _median(values: list[float]) -> float | None:
    import numpy as np

    return float(np.median(values)) if values else None


def _relative_difference(canary: float, comparison: float) -> float:
    if comparison == 0:
        if canary == 0:
            return 0.0
        return math.copysign(math.inf, canary)
    return (canary - comparison) / abs(comparison)


def _harm(effect: float, direction: str) -> float:
    if direction == "increase":
        return effect
    if direction == "decrease":
        return -effect
    return abs(effect)


def _percent(value: float) -> str:
    if math.isinf(value):
        return f"{'+' if value > 0 else '-'}inf% (from 0)"
    return f"{value * 100:+.1f}%" if value != 0 else "0%"


def _harm_word(direction: str, effect: float) -> str:
    if direction == "either":
        return "increase" if effect > 0 else "decrease"
    return direction


def _direction_word(direction: str) -> str:
    return "difference" if direction == "either" else direction


def _dropped_note(dropped: int) -> str:
    return f" ({dropped} NaN/Inf samples dropped)" if dropped else ""
