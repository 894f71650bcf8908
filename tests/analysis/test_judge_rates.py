"""The judge's error rates over seeded repetitions (``tests.analysis.judge_rates``):
deterministic (fixed seeds), so these are regressions checks on the figures quoted in
docs/analysis.md, not statistical claims by themselves."""

from __future__ import annotations

from tests.analysis.judge_rates import judge, measure


def test_thirty_runs_at_the_documented_setting_make_no_mistake() -> None:
    rates = measure(judge(0.98, 0.1), runs=30)
    assert (rates.false_positives, rates.false_negatives, rates.inconclusive) == (0, 0, 0)


def test_independent_samples_keep_the_false_alarm_rate_the_confidence_promises() -> None:
    rates = measure(judge(0.98, 0.0), runs=300, overlap=False)
    assert rates.false_positives <= 0.04 * 300  # 2% expected; 7 of 300 measured
    assert rates.false_negatives == 0


def test_overlapping_windows_raise_false_alarms_without_a_tolerance() -> None:
    # Consecutive scrapes of a rate window share requests: the rank test takes them as
    # independent and its p-values are too small. The tolerance is what protects.
    loose = measure(judge(0.98, 0.0), runs=300)
    assert loose.false_positives > 0.04 * 300


def test_a_tolerance_above_the_difference_lets_it_through() -> None:
    assert measure(judge(0.98, 0.25), runs=30).false_negatives == 30
