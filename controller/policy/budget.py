"""The error-budget release freeze: is the service's budget left above the policy's floor?

Pure: the budget left is measured by the caller (``controller.policy_gate`` through
``controller.analysis.budget``) and passed in per policy; ``evaluate`` calls
``budget_hold`` after the freezes. Budget left is ``1 - (error ratio over the SLO
window) / (1 - objective/100)``: 1.0 untouched, 0 spent, negative overspent.

A budget that could not be measured (Prometheus did not answer, no series) does not
hold: the freeze acts on evidence, and a metrics outage must not stop every release
(the rollout's own analysis still judges the new revision). It is said in an Event.
"""

from __future__ import annotations

from dataclasses import dataclass

from controller.api.policy import ErrorBudgetFreeze


@dataclass(frozen=True)
class BudgetLeft:
    """What was measured for one policy's rule: the share left, or why none."""

    remaining: float | None
    problem: str = ""


def budget_hold(rule: ErrorBudgetFreeze, left: BudgetLeft | None) -> str:
    """Why the rule holds a new rollout ('' when it does not)."""
    if left is None or left.remaining is None:
        return ""
    if left.remaining >= rule.min_remaining and left.remaining > 0:
        return ""
    floor = f"{rule.min_remaining:.0%} left" if rule.min_remaining else "some left"
    return (
        f"error budget of the {rule.objective:g}% SLO over the last {_days(rule.window)} "
        f"{_state(left.remaining)} (needs {floor})"
    )


def _state(remaining: float) -> str:
    if remaining < 0:
        return f"is overspent by {-remaining:.0%}"
    if remaining == 0:
        return "is spent"
    return f"has {remaining:.1%} left"


def _days(seconds: float) -> str:
    if seconds % 86400 == 0:
        return f"{seconds / 86400:g}d"
    if seconds % 3600 == 0:
        return f"{seconds / 3600:g}h"
    return f"{seconds:g}s"
