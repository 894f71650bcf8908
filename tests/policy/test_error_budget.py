"""The error-budget release freeze (``controller.policy.budget``) inside ``evaluate``."""

from __future__ import annotations

import pytest

from controller.api import reasons as r
from controller.api.policy import ErrorBudgetFreeze
from controller.policy.budget import BudgetLeft, budget_hold
from controller.policy.evaluate import BUDGET_RECHECK, PolicyDecision, evaluate
from controller.policy.overrides import Override
from tests.policy.helpers import policy, rollout, utc

NOW = utc(2026, 12, 4, 12)
RULE = {"objective": 99.9, "window": "30d", "minRemaining": 0.1}
BUDGETED = policy({"errorBudget": RULE, "exemptions": ["hotfix"]})
HOTFIX = Override("hotfix", "payment outage, the fix is the release", "alice@example.com")


def decide(left: BudgetLeft | None, override: Override | None = None) -> PolicyDecision:
    budgets = {"shop/release": left} if left is not None else {}
    return evaluate(rollout(), [BUDGETED], now=NOW, override=override, budgets=budgets)


def test_a_service_with_budget_left_above_the_floor_may_roll_out() -> None:
    assert decide(BudgetLeft(0.4)).allowed


def test_an_exhausted_budget_holds_new_rollouts_and_says_how_to_override() -> None:
    decision = decide(BudgetLeft(-0.5))
    assert decision.verdict == "Wait" and decision.reason == r.ERROR_BUDGET_EXHAUSTED
    assert decision.message.startswith(
        "error budget of the 99.9% SLO over the last 30d is overspent by 50% "
        "(needs 10% left) in policy shop/release"
    )
    assert "--override-freeze" in decision.message
    assert decision.retry_at is not None
    assert (decision.retry_at - NOW).total_seconds() == BUDGET_RECHECK


def test_below_the_floor_but_not_spent_also_holds() -> None:
    decision = decide(BudgetLeft(0.05))
    assert (
        decision.reason == r.ERROR_BUDGET_EXHAUSTED
        and "has 5.0% left (needs 10% left)" in decision.message
    )


def test_an_exempt_override_releases_and_is_recorded() -> None:
    decision = decide(BudgetLeft(-0.5), HOTFIX)
    assert decision.allowed and decision.message.endswith("(overridden)")
    (note,) = decision.notes
    assert "overridden: hotfix by alice@example.com" in note
    assert [e.reason for e in decision.events] == [r.POLICY_OVERRIDDEN]


def test_an_unknown_budget_does_not_hold_but_says_so() -> None:
    decision = decide(BudgetLeft(None, "connection refused"))
    assert decision.allowed
    assert [e.type for e in decision.events] == ["Warning"]
    assert "connection refused" in decision.events[0].message


@pytest.mark.parametrize(
    ("remaining", "floor", "holds"),
    [
        (1.0, 0.0, False),
        (0.0, 0.0, True),
        (0.001, 0.0, False),
        (0.1, 0.1, False),
        (0.09, 0.1, True),
    ],
)
def test_the_floor(remaining: float, floor: float, holds: bool) -> None:
    rule = ErrorBudgetFreeze(objective=99.9, min_remaining=floor)
    assert bool(budget_hold(rule, BudgetLeft(remaining))) is holds
