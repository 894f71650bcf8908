"""Error-budget burn rates: the multiwindow, multi-burn-rate rules of the SRE workbook.

Pure arithmetic (no I/O), used by ``controller.analysis.presets`` to write the ``slo``
preset's PromQL with the right windows and thresholds, and by the DeliveryPolicy's
error-budget freeze (``controller.policy_gate``) for the budget left.

An SLO of ``objective`` percent over ``window`` allows an error ratio of
``budget = 1 - objective / 100``. A *burn rate* is the observed error ratio divided by
that budget: 1x spends exactly the budget over the window, 14.4x spends it in
``window / 14.4`` (30d / 14.4 = 50h). The workbook's paging rules (chapter 5, "Alerting
on SLOs", table 5-8) fire when *both* a long and a short window burn faster than a
factor; the short window (1/12 of the long) makes the alert stop soon after the
problem does:

=========  ============  ============  ==========================================
factor     long window   short window  budget spent (30d SLO) before it fires
=========  ============  ============  ==========================================
14.4       1h            5m            2%  (14.4 x 1h / 720h)
6          6h            30m           5%  (6 x 6h / 720h)
=========  ============  ============  ==========================================

**Scaling to a step.** A canary's series exist only since the canary started, and a
step is usually much shorter than 6h. When the step is shorter than a rule's long
window, the long window becomes the step's duration and the short window keeps the
workbook's ratio (1/12 of the long), never below ``min_window`` (two scrapes or
``rate()`` has nothing to say). The *factor* is kept: it is a speed, and a canary that
burns at 14.4x is as bad over 10 minutes as over an hour; what the shorter window
changes is only how much budget is spent before the gate fires (less, which is the
point of a canary). Scaled rules that end up with the same windows are merged,
keeping the lowest factor (over the same windows it is the one that fires first).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

HOUR = 3600.0
MINUTE = 60.0


@dataclass(frozen=True)
class BurnRule:
    """Fire when the burn rate over ``long`` and over ``short`` both exceed ``factor``."""

    factor: float
    long: float
    short: float

    def budget_spent(self, slo_window: float) -> float:
        """The share of the budget spent over ``long`` at exactly ``factor`` (0.02 = 2%)."""
        return self.factor * self.long / slo_window


WORKBOOK_RULES: tuple[BurnRule, ...] = (
    BurnRule(factor=14.4, long=1 * HOUR, short=5 * MINUTE),
    BurnRule(factor=6.0, long=6 * HOUR, short=30 * MINUTE),
)
"""The two paging rules of the workbook's table 5-8 (for a 30-day SLO window)."""

SHORT_OF_LONG = 12.0
"""The workbook's short window is 1/12 of the long one (5m of 1h, 30m of 6h)."""


def error_budget(objective: float) -> float:
    """The error ratio an SLO of ``objective`` percent allows: 99.9 -> 0.001."""
    if not 0 < objective < 100:
        raise ValueError(
            f"an SLO objective is a percentage above 0 and below 100 (got {objective})"
        )
    return 1 - objective / 100


def burn_rate(error_ratio: float, objective: float) -> float:
    """How many times faster than the SLO allows the budget is being spent."""
    return error_ratio / error_budget(objective)


def threshold_ratio(factor: float, objective: float) -> float:
    """The error ratio that is a burn rate of ``factor``: 14.4 at 99.9% -> 0.0144."""
    return factor * error_budget(objective)


def time_to_exhaustion(rate: float, slo_window: float) -> float:
    """Seconds a full budget lasts at burn rate ``rate`` (infinite at 0)."""
    return float("inf") if rate <= 0 else slo_window / rate


def remaining_budget(error_ratio: float, objective: float) -> float:
    """The share of the window's budget left when the window's error ratio is
    ``error_ratio``: 1.0 untouched, 0 spent, negative overspent."""
    return 1 - burn_rate(error_ratio, objective)


def scaled_rules(
    step: float | None,
    *,
    rules: Sequence[BurnRule] = WORKBOOK_RULES,
    min_window: float = MINUTE,
) -> tuple[BurnRule, ...]:
    """``rules`` with windows no longer than ``step`` seconds (see the module's doc).

    ``step`` None (no known end: background analysis) keeps the workbook's windows.
    """
    out: dict[tuple[float, float], BurnRule] = {}
    for rule in rules:
        long, short = rule.long, rule.short
        if step is not None and step < long:
            long = max(step, min_window)
            short = long / SHORT_OF_LONG
        short = min(max(short, min_window), long)
        kept = out.get((long, short))
        if kept is None or rule.factor < kept.factor:
            out[(long, short)] = BurnRule(factor=rule.factor, long=long, short=short)
    return tuple(out.values())


@dataclass(frozen=True)
class BurnVerdict:
    """Which rule fired (None: none did) and the worst severity seen: the largest, over
    rules, of ``min(burn over long, burn over short) / factor`` (>= 1 fires)."""

    fired: BurnRule | None
    severity: float
    message: str


def judge(
    ratios: Mapping[float, float],
    objective: float,
    rules: Sequence[BurnRule],
) -> BurnVerdict:
    """Judge the error ratios measured over each window (seconds -> ratio) by ``rules``.

    A window missing from ``ratios`` (no data) cannot make its rule fire.
    """
    worst: BurnRule | None = None
    worst_severity = 0.0
    fired: BurnRule | None = None
    for rule in rules:
        if rule.long not in ratios or rule.short not in ratios:
            continue
        rate = min(
            burn_rate(ratios[rule.long], objective), burn_rate(ratios[rule.short], objective)
        )
        severity = rate / rule.factor
        if worst is None or severity > worst_severity:
            worst, worst_severity = rule, severity
        if severity >= 1 and fired is None:
            fired = rule
    if worst is None:
        return BurnVerdict(None, 0.0, "no data over the burn-rate windows")
    if fired is not None:
        both = min(
            burn_rate(ratios[fired.long], objective), burn_rate(ratios[fired.short], objective)
        )
        message = (
            f"burning the error budget at {both:.1f}x over {_span(fired.long)} and "
            f"{_span(fired.short)} (limit {fired.factor:g}x)"
        )
    else:
        message = (
            f"burn rate {worst_severity * worst.factor:.2f}x over {_span(worst.long)} and "
            f"{_span(worst.short)}, under {worst.factor:g}x"
        )
    return BurnVerdict(fired, worst_severity, message)


def _span(seconds: float) -> str:
    if seconds % HOUR == 0:
        return f"{seconds / HOUR:g}h"
    if seconds % MINUTE == 0:
        return f"{seconds / MINUTE:g}m"
    return f"{seconds:g}s"
