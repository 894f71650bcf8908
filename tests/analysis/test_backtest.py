"""Pure replay of history: the same verdicts and limits, measurement by measurement."""

from __future__ import annotations

import math
from collections.abc import Sequence

from controller.analysis.backtest import replay, step_times
from controller.analysis.values import RangeResult, Series
from tests.analysis.helpers import T0, at, metric


def history(values: Sequence[float | None]) -> RangeResult:
    start = T0.timestamp()
    points = tuple((start + 60 * i, v) for i, v in enumerate(values) if v is not None)
    return RangeResult(query="q", series=(Series(labels={}, points=points),))


TIMES = step_times(T0, at(60 * 9), 60)


def test_step_times() -> None:
    assert TIMES[0] == T0 and TIMES[-1] == at(540) and len(TIMES) == 10


def test_finds_when_the_breach_held_for_the_window() -> None:
    m = metric(**{"for": "2m"})
    values = [0.01, 0.01, 0.01, 0.2, 0.2, 0.2, 0.01, 0.01, 0.01, 0.01]
    report = replay(m, query="q", canary=history(values), stable=None, times=TIMES)
    assert report.outcome == "Failed"
    (event,) = report.events
    assert event.at == at(300)
    assert event.message == "error-rate 0.2 > max 0.05 for 2m"
    assert report.verdicts == {"Successful": 7, "Pending": 2, "Failed": 1}


def test_leading_gap_is_skipped_and_a_later_gap_is_inconclusive() -> None:
    values = [None, None, 0.01, 0.01, math.nan, 0.01, 0.01, 0.01, 0.01, 0.01]
    report = replay(metric(), query="q", canary=history(values), stable=None, times=TIMES)
    assert report.first_data == at(120)
    assert [(e.at, e.phase) for e in report.events] == [(at(240), "Inconclusive")]
    assert report.outcome == "Inconclusive"


def test_healthy_history_passes_and_count_is_ignored() -> None:
    report = replay(
        metric(count=1), query="q", canary=history([0.01] * 10), stable=None, times=TIMES
    )
    assert (report.outcome, report.measurements) == ("Passed", 10)


def test_no_data_at_all_is_not_a_pass() -> None:
    report = replay(metric(), query="q", canary=history([None] * 10), stable=None, times=TIMES)
    assert report.outcome == "Inconclusive" and report.measurements == 0


def test_relative_replay_compares_with_stable_point_by_point() -> None:
    m = metric(relativeTo="stable", threshold={"maxIncrease": 0.05})
    report = replay(
        m,
        query="q",
        canary=history([0.02] * 5 + [0.2] * 5),
        stable=history([0.01] * 10),
        times=TIMES,
    )
    assert [e.at for e in report.events][:1] == [at(300)]
