"""Argo's successCondition/failureCondition read as thresholds: the plain comparisons
real manifests use, the differences worth a note, and why the rest cannot be read."""

from __future__ import annotations

import pytest

from controller.argo.conditions import Unreadable, read


@pytest.mark.parametrize(
    ("success", "failure", "bounds", "equals", "path"),
    [
        ("result[0] >= 0.95", None, {"min": 0.95}, None, ""),
        ("result <= 0.01", None, {"max": 0.01}, None, ""),
        (None, "result[0] >= 10", {"max": 10.0}, None, ""),
        (None, "result < 0.95", {"min": 0.95}, None, ""),
        ("0.05 > result[0]", None, {"max": 0.05}, None, ""),
        ("max(result) < 0.05", None, {"max": 0.05}, None, ""),
        ("asFloat(result) >= 2", None, {"min": 2.0}, None, ""),
        ("result[0] >= 0.9 && result[0] <= 1", None, {"min": 0.9, "max": 1.0}, None, ""),
        (None, "result > 2 || result < 0.5", {"min": 0.5, "max": 2.0}, None, ""),
        ("result == true", None, {}, "true", ""),
        ("result.major == '1'", None, {}, "1", ".major"),
        ('result.data.state == "ready"', None, {}, "ready", ".data.state"),
        (None, "result.ok != true", {}, "true", ".ok"),
        ("result.p99 < 250", None, {"max": 250.0}, None, ".p99"),
    ],
)
def test_plain_comparisons_become_bounds_or_equals(
    success: str | None,
    failure: str | None,
    bounds: dict[str, float],
    equals: str | None,
    path: str,
) -> None:
    reading = read(success, failure)
    assert (reading.threshold(), reading.equals, reading.path) == (bounds, equals, path)


def test_differences_are_noted() -> None:
    strict = read("result < 0.05", None)
    assert strict.notes == ["result < 0.05: deployctl's max 0.05 also passes at 0.05 itself"]
    defaulted = read("default(result, 0) < 5", None)
    assert any("missing data as Inconclusive" in n for n in defaulted.notes)
    both = read("result[0] >= 0.95", "result[0] < 0.5")
    assert both.threshold() == {"min": 0.95}
    assert any("Inconclusive in Argo" in n for n in both.notes)


@pytest.mark.parametrize(
    ("success", "failure", "why"),
    [
        ("len(result) == 0 || result[0] >= 0.95", None, "joined by &&, not ||"),
        ("isNaN(result) || result >= 0.95", None, "joined by &&, not ||"),
        ("all(result, # < 1000)", None, "compares something other than result"),
        ("result.ok && result.successPercent >= 0.90", None, "'result.ok' is not a comparison"),
        (None, "result.Status == -1", "can require a value (equals) but not forbid one"),
        ('result == "{{args.expected}}"', None, "thresholds are numbers"),
        ("result > 'high'", None, "not a number"),
        ("result.a > 1 && result.b < 2", None, "more than one value"),
        (None, None, "no successCondition or failureCondition"),
    ],
)
def test_other_expressions_say_why_they_cannot_be_read(
    success: str | None, failure: str | None, why: str
) -> None:
    with pytest.raises(Unreadable) as caught:
        read(success, failure)
    assert why in str(caught.value)
