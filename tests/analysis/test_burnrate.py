"""Burn-rate arithmetic against the worked numbers of the SRE workbook ("Alerting on
SLOs": a 99.9% SLO over 30 days), and the rules scaled to a canary's step."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.analysis.burnrate import (
    HOUR,
    MINUTE,
    WORKBOOK_RULES,
    BurnRule,
    burn_rate,
    error_budget,
    judge,
    remaining_budget,
    scaled_rules,
    threshold_ratio,
    time_to_exhaustion,
)

DAYS_30 = 30 * 24 * HOUR


def test_a_999_slo_allows_one_error_in_a_thousand() -> None:
    assert error_budget(99.9) == pytest.approx(0.001)
    assert burn_rate(0.001, 99.9) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("rate", "exhausted_after"),
    # The workbook's table of burn rates and time to exhaust a 30-day budget.
    [(1, 30 * 24 * HOUR), (2, 15 * 24 * HOUR), (10, 3 * 24 * HOUR), (1000, 43.2 * MINUTE)],
)
def test_time_to_exhaustion_matches_the_workbook(rate: float, exhausted_after: float) -> None:
    assert time_to_exhaustion(rate, DAYS_30) == pytest.approx(exhausted_after)


def test_the_paging_rules_spend_2_and_5_percent_of_the_budget() -> None:
    fast, slow = WORKBOOK_RULES
    assert (fast.factor, fast.long, fast.short) == (14.4, HOUR, 5 * MINUTE)
    assert (slow.factor, slow.long, slow.short) == (6.0, 6 * HOUR, 30 * MINUTE)
    assert fast.budget_spent(DAYS_30) == pytest.approx(0.02)
    assert slow.budget_spent(DAYS_30) == pytest.approx(0.05)


def test_14_4x_at_999_is_an_error_ratio_of_1_44_percent() -> None:
    assert threshold_ratio(14.4, 99.9) == pytest.approx(0.0144)
    assert threshold_ratio(6, 99.9) == pytest.approx(0.006)


def test_remaining_budget() -> None:
    assert remaining_budget(0.0, 99.9) == 1.0
    assert remaining_budget(0.0005, 99.9) == pytest.approx(0.5)
    assert remaining_budget(0.002, 99.9) == pytest.approx(-1.0)


def test_a_20x_burn_fires_the_fast_rule() -> None:
    ratios = {HOUR: 0.02, 5 * MINUTE: 0.02, 6 * HOUR: 0.02, 30 * MINUTE: 0.02}
    verdict = judge(ratios, 99.9, WORKBOOK_RULES)
    assert verdict.fired == WORKBOOK_RULES[0]
    assert verdict.severity == pytest.approx(20 / 6)
    assert verdict.message.startswith("burning the error budget at 20.0x over 1h and 5m")


def test_a_burst_that_stopped_does_not_fire() -> None:
    """The short window is what makes the alert stop soon after the problem does."""
    ratios = {HOUR: 0.02, 5 * MINUTE: 0.0}
    verdict = judge(ratios, 99.9, WORKBOOK_RULES[:1])
    assert verdict.fired is None and verdict.severity == 0.0


def test_missing_windows_never_fire() -> None:
    assert judge({HOUR: 1.0}, 99.9, WORKBOOK_RULES).fired is None


def test_a_ten_minute_step_scales_both_rules_to_10m_and_1m_keeping_the_lower_factor() -> None:
    assert scaled_rules(10 * MINUTE) == (BurnRule(factor=6.0, long=10 * MINUTE, short=MINUTE),)


def test_a_two_hour_step_scales_only_the_slow_rule() -> None:
    fast, slow = scaled_rules(2 * HOUR)
    assert fast == WORKBOOK_RULES[0]
    assert slow == BurnRule(factor=6.0, long=2 * HOUR, short=10 * MINUTE)


def test_no_step_keeps_the_workbook_windows() -> None:
    assert scaled_rules(None) == WORKBOOK_RULES


@given(step=st.floats(min_value=1, max_value=30 * 24 * HOUR), floor=st.floats(1, 600))
def test_scaled_windows_fit_the_step_and_keep_short_within_long(step: float, floor: float) -> None:
    for rule in scaled_rules(step, min_window=floor):
        assert rule.short <= rule.long
        assert rule.long <= max(step, floor) or rule in WORKBOOK_RULES
        assert rule.short >= min(floor, rule.long)


@given(ratio=st.floats(min_value=0, max_value=1), bump=st.floats(min_value=0, max_value=1))
def test_more_errors_never_turn_a_firing_gate_quiet(ratio: float, bump: float) -> None:
    windows = {w: ratio for rule in WORKBOOK_RULES for w in (rule.long, rule.short)}
    worse = {w: min(1.0, v + bump) for w, v in windows.items()}
    before, after = judge(windows, 99.9, WORKBOOK_RULES), judge(worse, 99.9, WORKBOOK_RULES)
    assert after.severity >= before.severity or math.isclose(after.severity, before.severity)
    assert before.fired is None or after.fired is not None


def test_an_objective_outside_0_100_is_refused() -> None:
    with pytest.raises(ValueError, match="above 0 and below 100"):
        error_budget(100)
