"""Judge one measurement: a value against a threshold and a ``for`` window. Pure.

Called by the measurement loop (``controller.analysis.run``) and the backtest, once per
measurement. Two steps, both without I/O or clock:

``assess`` compares what a query returned with a ``Threshold``: ``min``/``max``, and
for ``relativeTo: stable`` ``maxIncrease`` (canary <= stable + n) and ``maxRatio``
(canary <= stable x n) against the stable revision's value from the same query. An empty
result, NaN or +/-Inf is *no data*. With several series the worst one is judged: any
breach beats missing data, which beats a pass (missing data never promotes).

``judge`` applies the ``for`` window, like an alerting rule's: a breach only fails once
it has held ``for`` seconds since ``breach_since`` (kept in ``MetricResult.breachSince``);
until then the measurement is Pending. A pass clears the breach; missing data leaves it
as it was (a gap must not reset the clock of a real breach).

Every result carries its evidence, e.g. ``error-rate 0.124 > max 0.05 for 2m``; the
strategy appends where it happened (``at step 3 (weight 20%)``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from controller.analysis.values import QueryFailure, QueryResult, Sample
from controller.api.analysis import Threshold
from controller.api.duration import format_duration
from controller.api.status import CompareEvidence

# Status timestamps carry whole seconds, so a breach_since read back may be up to a
# second later than the breach really began; without this slack a breach observed
# exactly `for` later would wait one more interval.
_TIMESTAMP_SLACK = 1.0

Value = float | None | Sequence[Sample] | QueryResult
JudgedPhase = Literal["Successful", "Failed", "Inconclusive", "Error", "Pending"]


@dataclass(frozen=True)
class Assessment:
    """A value against a threshold, before the ``for`` window is applied."""

    status: Literal["ok", "breach", "nodata"]
    value: str
    message: str


@dataclass(frozen=True)
class Judgement:
    """The verdict on one measurement, ready for ``run.record``.

    ``permanent`` marks an Error that retrying cannot fix (Prometheus rejected the query,
    a missing argument): the metric goes to Error at once instead of Inconclusive.
    """

    phase: JudgedPhase
    value: str | None
    message: str
    breach_since: datetime | None = None
    permanent: bool = False
    comparison: CompareEvidence | None = None
    """A compare metric's evidence as numbers, kept with the measurement."""


def fmt(value: float) -> str:
    """Numbers as people read them in evidence: 0.124, 2, 1.5e-05, 12345."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.0f}"


def samples_of(value: Value) -> tuple[Sample, ...]:
    if value is None:
        return ()
    if isinstance(value, QueryResult):
        return value.samples
    if isinstance(value, int | float):
        return (Sample(labels={}, value=float(value)),)
    return tuple(value)


def assess(
    name: str,
    value: Value,
    threshold: Threshold,
    *,
    relative: bool = False,
    stable: Value = None,
) -> Assessment:
    """Compare ``value`` (the canary's) with ``threshold``; see the module docstring."""
    samples = samples_of(value)
    if not samples:
        return Assessment("nodata", "", f"{name}: no data (empty result)")
    stable_value: float | None = None
    if relative:
        finite = [s.value for s in samples_of(stable) if math.isfinite(s.value)]
        if not finite:
            return Assessment("nodata", "", f"{name}: no data for the stable revision")
        # Relative queries should aggregate to one series; with several, compare with
        # stable's highest, the value its worst series reached.
        stable_value = max(finite)
    checked = [(s, _check(name, s.value, threshold, stable_value)) for s in samples]
    breaches = [(s, c) for s, c in checked if c[0] == "breach"]
    gaps = [(s, c) for s, c in checked if c[0] == "nodata"]
    if breaches:
        sample, (_, message, _) = max(breaches, key=lambda item: item[1][2])
    elif gaps:
        sample, (_, message, _) = gaps[0]
    else:
        # Report the series closest to (least inside) its bound.
        sample, (_, message, _) = max(checked, key=lambda item: item[1][2])
    status: Literal["ok", "breach", "nodata"] = "breach" if breaches else "nodata" if gaps else "ok"
    if len(samples) > 1:
        message += f" (worst of {len(samples)} series: {sample.describe()})"
    return Assessment(status, fmt(sample.value), message)


def _check(
    name: str, value: float, threshold: Threshold, stable: float | None
) -> tuple[str, str, float]:
    """(status, evidence, excess): excess > 0 is a breach, and orders the breaches."""
    if not math.isfinite(value):
        hint = " (no traffic?)" if math.isnan(value) else ""
        return "nodata", f"{name} {fmt(value)}: no data{hint}", -math.inf
    bounds: list[tuple[float, str, str]] = []  # (excess, breach text, pass text)
    if threshold.max is not None:
        m = fmt(threshold.max)
        bounds.append((value - threshold.max, f"> max {m}", f"<= max {m}"))
    if threshold.min is not None:
        m = fmt(threshold.min)
        bounds.append((threshold.min - value, f"< min {m}", f">= min {m}"))
    if stable is not None and threshold.max_increase is not None:
        limit = stable + threshold.max_increase
        text = f"stable {fmt(stable)} + maxIncrease {fmt(threshold.max_increase)}"
        bounds.append((value - limit, f"> {text}", f"<= {text}"))
    if stable is not None and threshold.max_ratio is not None:
        # stable 0 makes any positive canary value a breach: x > 0 * ratio.
        limit = stable * threshold.max_ratio
        text = f"stable {fmt(stable)} x maxRatio {fmt(threshold.max_ratio)}"
        bounds.append((value - limit, f"> {text}", f"<= {text}"))
    if not bounds:
        return "nodata", f"{name}: the threshold has no bound that applies here", -math.inf
    excess, breach_text, _ = max(bounds, key=lambda b: b[0])
    if excess > 0:
        return "breach", f"{name} {fmt(value)} {breach_text}", excess
    passes = " and ".join(b[2] for b in bounds)
    return "ok", f"{name} {fmt(value)} {passes}", excess


def judge(
    assessment: Assessment,
    *,
    breach_since: datetime | None,
    for_: float,
    now: datetime,
) -> Judgement:
    """Apply the ``for`` window to an assessment made at ``now``."""
    if assessment.status == "nodata":
        return Judgement("Inconclusive", assessment.value, assessment.message, breach_since)
    if assessment.status == "ok":
        return Judgement("Successful", assessment.value, assessment.message, None)
    since = breach_since or now
    held = (now - since).total_seconds()
    if held + _TIMESTAMP_SLACK >= for_ or for_ <= 0:
        window = f" for {format_duration(for_)}" if for_ > 0 else ""
        return Judgement("Failed", assessment.value, assessment.message + window, since)
    return Judgement(
        "Pending",
        assessment.value,
        f"{assessment.message} (breaching for {format_duration(round(held))} "
        f"of {format_duration(for_)})",
        since,
    )


def judge_failure(name: str, failure: QueryFailure, *, breach_since: datetime | None) -> Judgement:
    """A query that gave no answer: Error, permanent when retrying cannot help."""
    return Judgement(
        "Error", None, f"{name}: {failure.message}", breach_since, permanent=failure.permanent
    )


def evaluate(
    name: str,
    value: Value,
    threshold: Threshold,
    *,
    for_: float,
    breach_since: datetime | None,
    now: datetime,
    relative: bool = False,
    stable: Value = None,
) -> Judgement:
    """``assess`` then ``judge``: the whole verdict on one measurement."""
    assessment = assess(name, value, threshold, relative=relative, stable=stable)
    return judge(assessment, breach_since=breach_since, for_=for_, now=now)
