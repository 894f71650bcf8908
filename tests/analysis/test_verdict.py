"""The verdict table: absolute and relative thresholds, missing data, series, `for`."""

from __future__ import annotations

import math

import pytest

from controller.analysis.values import QueryFailure, QueryResult, Sample
from controller.analysis.verdict import assess, evaluate, fmt, judge, judge_failure
from controller.api.analysis import Threshold
from tests.analysis.helpers import at

MAX = Threshold(max=0.05)
BAND = Threshold(min=0.9, max=1.1)


@pytest.mark.parametrize(
    ("value", "threshold", "status", "message"),
    [
        (0.01, MAX, "ok", "error-rate 0.01 <= max 0.05"),
        (0.05, MAX, "ok", "error-rate 0.05 <= max 0.05"),
        (0.124, MAX, "breach", "error-rate 0.124 > max 0.05"),
        (0.5, BAND, "breach", "error-rate 0.5 < min 0.9"),
        (1.0, BAND, "ok", "error-rate 1 <= max 1.1 and >= min 0.9"),
        (None, MAX, "nodata", "error-rate: no data (empty result)"),
        ([], MAX, "nodata", "error-rate: no data (empty result)"),
        (math.nan, MAX, "nodata", "error-rate NaN: no data (no traffic?)"),
        (math.inf, MAX, "nodata", "error-rate +Inf: no data"),
        (-math.inf, MAX, "nodata", "error-rate -Inf: no data"),
    ],
)
def test_absolute_table(value, threshold, status, message) -> None:
    result = assess("error-rate", value, threshold)
    assert (result.status, result.message) == (status, message)


def test_worst_series_is_judged_and_named() -> None:
    samples = QueryResult(
        query="q",
        samples=(
            Sample({"pod": "a"}, 0.01),
            Sample({"pod": "b"}, 0.2),
            Sample({"pod": "c"}, math.nan),
        ),
    )
    result = assess("error-rate", samples, MAX)
    assert result.status == "breach"
    assert result.value == "0.2"
    assert 'worst of 3 series: {pod="b"}' in result.message


def test_a_nan_series_among_passing_ones_is_inconclusive() -> None:
    result = assess("error-rate", [Sample({"pod": "a"}, 0.0), Sample({"pod": "b"}, math.nan)], MAX)
    assert result.status == "nodata"


@pytest.mark.parametrize(
    ("canary", "stable", "threshold", "status", "fragment"),
    [
        (0.03, 0.01, Threshold(max_increase=0.05), "ok", "<= stable 0.01 + maxIncrease 0.05"),
        (0.07, 0.01, Threshold(max_increase=0.05), "breach", "> stable 0.01 + maxIncrease 0.05"),
        (1.4, 1.0, Threshold(max_ratio=1.5), "ok", "<= stable 1 x maxRatio 1.5"),
        (1.6, 1.0, Threshold(max_ratio=1.5), "breach", "> stable 1 x maxRatio 1.5"),
        (0.01, 0.0, Threshold(max_ratio=2), "breach", "> stable 0 x maxRatio 2"),
        (0.0, 0.0, Threshold(max_ratio=2), "ok", "<= stable 0"),
        (0.2, 0.19, Threshold(max=0.1, max_increase=0.05), "breach", "> max 0.1"),
        (0.01, math.nan, Threshold(max_increase=0.05), "nodata", "no data for the stable"),
        (0.01, None, Threshold(max_increase=0.05), "nodata", "no data for the stable"),
    ],
)
def test_relative_table(canary, stable, threshold, status, fragment) -> None:
    result = assess("error-rate", canary, threshold, relative=True, stable=stable)
    assert result.status == status
    assert fragment in result.message


def test_for_window_pending_then_failed_and_reset_by_a_pass() -> None:
    breach = assess("error-rate", 0.124, MAX)
    first = judge(breach, breach_since=None, for_=120, now=at(0))
    assert first.phase == "Pending" and first.breach_since == at(0)
    assert "breaching for 0s of 2m" in first.message
    middle = judge(breach, breach_since=first.breach_since, for_=120, now=at(60))
    assert middle.phase == "Pending" and "breaching for 1m of 2m" in middle.message
    last = judge(breach, breach_since=first.breach_since, for_=120, now=at(120))
    assert last.phase == "Failed"
    assert last.message == "error-rate 0.124 > max 0.05 for 2m"
    cleared = judge(assess("error-rate", 0.0, MAX), breach_since=at(0), for_=120, now=at(130))
    assert (cleared.phase, cleared.breach_since) == ("Successful", None)


def test_missing_data_keeps_the_breach_clock() -> None:
    gap = evaluate("error-rate", None, MAX, for_=120, breach_since=at(0), now=at(60))
    assert (gap.phase, gap.breach_since) == ("Inconclusive", at(0))


def test_without_for_a_breach_fails_at_once() -> None:
    result = evaluate("error-rate", 0.124, MAX, for_=0, breach_since=None, now=at(0))
    assert (result.phase, result.message) == ("Failed", "error-rate 0.124 > max 0.05")


def test_failures_are_errors_and_rejections_are_permanent() -> None:
    down = QueryFailure(kind="unavailable", query="q", message="connection refused")
    bad = QueryFailure(kind="rejected", query="q", message="parse error")
    assert judge_failure("m", down, breach_since=None).permanent is False
    rejected = judge_failure("m", bad, breach_since=None)
    assert (rejected.phase, rejected.permanent, rejected.message) == (
        "Error",
        True,
        "m: parse error",
    )


def test_number_format() -> None:
    assert [fmt(v) for v in (0.124, 2.0, 12345.6, 1.5e-5)] == ["0.124", "2", "12346", "1.5e-05"]
