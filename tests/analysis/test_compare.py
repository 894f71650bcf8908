"""The comparison judge: reference values computed independently, verdicts, properties.

The references do not come from the library under test: a published example with R's
documented result, the exact U distribution enumerated here by brute force, the
normal approximation written out from the textbook formula, and the Hodges-Lehmann
interval checked by inverting the test it is built from.
"""

from __future__ import annotations

import itertools
import math
import os
import random
import statistics
from statistics import NormalDist

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from controller.analysis.compare import hodges_lehmann, judge_samples
from controller.api.analysis import Compare, Metric

# Hollander & Wolfe (1973), p. 69: permeability constants of the human chorioamnion at
# term (x) and at 12-26 weeks (y). R's documentation of wilcox.test uses this example;
# `wilcox.test(x, y, alternative = "g")` prints W = 35, p-value = 0.1272.
TERM = [0.80, 0.83, 1.89, 1.04, 1.45, 1.38, 1.91, 1.64, 0.73, 1.46]
EARLY = [1.15, 0.88, 0.90, 0.74, 1.21]
R_EXACT_GREATER_P = 0.1272

SMALL = Compare(direction="increase", confidence=0.9, tolerance=0.0, min_samples=5)


def _u_statistic(x: list[float], y: list[float]) -> float:
    """U of x: the pairs where x wins, ties counting a half (the definition)."""
    return sum(1.0 if a > b else 0.5 if a == b else 0.0 for a in x for b in y)


def _exact_greater_p(x: list[float], y: list[float]) -> float:
    """P(U >= observed) over every assignment of the pooled ranks (no ties)."""
    pooled = sorted(x + y)
    rank = {v: i + 1 for i, v in enumerate(pooled)}
    n = len(x)
    offset = n * (n + 1) // 2
    observed = sum(rank[v] for v in x) - offset
    splits = list(itertools.combinations(range(1, len(pooled) + 1), n))
    return sum(1 for ranks in splits if sum(ranks) - offset >= observed) / len(splits)


def test_published_example_matches_r_and_the_enumerated_distribution() -> None:
    result = judge_samples("permeability", TERM, EARLY, SMALL)
    assert _u_statistic(TERM, EARLY) == 35  # R's W
    assert result.evidence.p_value == pytest.approx(R_EXACT_GREATER_P, abs=5e-5)
    assert result.evidence.p_value == pytest.approx(_exact_greater_p(TERM, EARLY), rel=1e-12)
    # Not significant at 90%: no amount of difference fails it.
    assert result.verdict == "Successful"
    assert "no significant increase (p >= 0.1)" in result.message


def test_hodges_lehmann_is_the_median_of_pairwise_differences() -> None:
    differences = [a - b for a, b in itertools.product(TERM, EARLY)]
    shift, _, _ = hodges_lehmann(TERM, EARLY, 0.95)
    assert shift == pytest.approx(statistics.median(differences))
    evidence = judge_samples("permeability", TERM, EARLY, SMALL).evidence
    assert evidence.shift == pytest.approx(statistics.median(differences))
    assert evidence.canary_median == pytest.approx(statistics.median(TERM))
    assert evidence.comparison_median == pytest.approx(statistics.median(EARLY))
    effect = (statistics.median(TERM) - statistics.median(EARLY)) / statistics.median(EARLY)
    assert evidence.effect == pytest.approx(effect)


def _sample(seed: int, n: int, scale: float) -> list[float]:
    rng = random.Random(seed)
    return [scale * rng.lognormvariate(0.0, 0.3) for _ in range(n)]


def test_large_samples_match_the_textbook_normal_approximation() -> None:
    canary, stable = _sample(1, 80, 1.08), _sample(2, 90, 1.0)
    n, m = len(canary), len(stable)
    u = _u_statistic(canary, stable)
    sigma = math.sqrt(n * m * (n + m + 1) / 12)
    # One-sided, continuity-corrected: what the library uses for samples this large.
    expected = 1 - NormalDist().cdf((u - n * m / 2 - 0.5) / sigma)
    result = judge_samples("latency", canary, stable, Compare(min_samples=50))
    assert result.evidence.p_value == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.98])
def test_interval_is_the_inverted_two_sided_test(confidence: float) -> None:
    """Shifts just inside the interval are accepted by the test, just outside rejected."""
    canary, stable = _sample(3, 40, 1.2), _sample(4, 45, 1.0)
    n, m = len(canary), len(stable)
    sigma = math.sqrt(n * m * (n + m + 1) / 12)
    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)

    def accepted(d: float) -> bool:
        return abs(_u_statistic([a - d for a in canary], stable) - n * m / 2) < z * sigma

    shift, low, high = hodges_lehmann(canary, stable, confidence)
    eps = 1e-9
    assert low < shift < high
    assert accepted(low + eps) and accepted(high - eps) and accepted(shift)
    assert not accepted(low - eps) and not accepted(high + eps)


def test_a_slower_canary_fails_beyond_tolerance_with_its_evidence() -> None:
    stable = _sample(5, 200, 1.0)
    canary = _sample(6, 200, 1.3)
    result = judge_samples("latency", canary, stable, Compare())
    assert result.verdict == "Failed"
    evidence = result.evidence
    assert (evidence.canary_count, evidence.comparison_count) == (200, 200)
    assert evidence.effect is not None and evidence.effect > 0.25
    assert evidence.p_value is not None and evidence.p_value < 0.02
    assert evidence.shift_low is not None and evidence.shift_high is not None
    assert 0 < evidence.shift_low < evidence.shift_high
    assert result.message.startswith("latency: increase beyond tolerance 25%: canary median")
    assert "n=200/200" in result.message and "at 98%" in result.message


def test_significant_but_within_tolerance_passes() -> None:
    stable, canary = _sample(7, 300, 1.0), _sample(8, 300, 1.1)
    result = judge_samples("latency", canary, stable, Compare(tolerance=0.25))
    assert result.evidence.p_value is not None and result.evidence.p_value < 0.02
    assert result.verdict == "Successful"
    assert "significant but within tolerance 25%" in result.message
    assert judge_samples("latency", canary, stable, Compare(tolerance=0.05)).verdict == "Failed"


def test_direction_decides_what_is_harmful() -> None:
    stable, faster = _sample(9, 200, 1.0), _sample(10, 200, 0.6)
    assert judge_samples("x", faster, stable, Compare(direction="increase")).verdict == (
        "Successful"
    )
    decrease = judge_samples("x", faster, stable, Compare(direction="decrease"))
    assert decrease.verdict == "Failed"
    assert "decrease beyond tolerance" in decrease.message
    either = judge_samples("x", faster, stable, Compare(direction="either"))
    assert either.verdict == "Failed" and "decrease beyond tolerance" in either.message


def test_too_few_samples_is_inconclusive_with_the_counts() -> None:
    stable = _sample(11, 200, 1.0)
    canary = [*_sample(12, 49, 5.0), math.nan, math.inf]
    result = judge_samples("latency", canary, stable, Compare(min_samples=50))
    assert result.verdict == "Inconclusive"
    assert result.message == (
        "latency: too few samples to compare: canary 49, stable 200, minSamples 50 "
        "(2 NaN/Inf samples dropped)"
    )
    assert result.evidence.p_value is None and result.evidence.dropped == 2
    nothing = judge_samples("latency", [], [], Compare(against="baseline"))
    assert nothing.verdict == "Inconclusive"
    assert "canary 0, baseline 0" in nothing.message


def test_a_zero_median_comparison_gives_an_unbounded_effect() -> None:
    stable = [0.0] * 60 + [0.01] * 10
    canary = [0.0] * 20 + [0.05] * 50
    result = judge_samples("errors", canary, stable, Compare())
    assert result.evidence.effect == math.inf
    assert result.verdict == "Failed"
    assert "+inf% (from 0)" in result.message


def test_one_value_everywhere_passes_without_a_division_by_zero() -> None:
    result = judge_samples("errors", [0.0] * 60, [0.0] * 60, Compare(direction="either"))
    assert (result.verdict, result.evidence.p_value, result.evidence.effect) == (
        "Successful",
        1.0,
        0.0,
    )


@pytest.mark.parametrize(
    ("compare", "message"),
    [
        ({"confidence": 1.0}, "confidence must be at least 0.5 and below 1 (got 1.0)"),
        ({"confidence": 0.3}, "confidence must be at least 0.5 and below 1"),
        ({"tolerance": -0.1}, "tolerance must be a finite number >= 0 (got -0.1)"),
        ({"tolerance": math.inf}, "tolerance must be a finite number >= 0"),
        (
            {"minSamples": 5, "confidence": 0.999},
            "with minSamples 5 the test can never reach confidence 0.999 (smallest p-value "
            "0.00397); raise minSamples or lower confidence",
        ),
        ({"minSamples": 4}, "greater than or equal to 5"),
        ({"test": "tTest"}, "'mannWhitney'"),
        ({"against": "canary"}, "'baseline' or 'stable'"),
        ({"confidense": 0.9}, "Extra inputs are not permitted"),
    ],
)
def test_bad_compare_gets_a_clear_message(compare: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=None) as raised:
        Compare.model_validate(compare)
    assert message in str(raised.value)


def test_compare_goes_with_prometheus_samples_only() -> None:
    base = {"name": "latency", "interval": "30s"}
    ok = Metric.model_validate(
        {**base, "latency": {}, "compare": {"against": "stable", "tolerance": 0.2}}
    )
    assert ok.compare is not None and ok.compare.min_samples == 50
    web = {"web": {"url": "http://example.test/health"}}
    with pytest.raises(ValidationError, match="compare judges samples from Prometheus"):
        Metric.model_validate({**base, "provider": web, "compare": {}})
    with pytest.raises(ValidationError, match="drop relativeTo"):
        Metric.model_validate({**base, "latency": {}, "relativeTo": "stable", "compare": {}})


PROPERTY = settings(
    max_examples=int(os.environ.get("DEPLOYCTL_PROPERTY_EXAMPLES", "300")), deadline=None
)
values = st.lists(
    st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False),
    min_size=5,
    max_size=60,
)
compares = st.builds(
    Compare,
    direction=st.sampled_from(["increase", "decrease", "either"]),
    confidence=st.sampled_from([0.9, 0.95, 0.98, 0.99]),
    tolerance=st.sampled_from([0.0, 0.1, 0.25]),
    min_samples=st.just(8),
)


@PROPERTY
@given(samples=values, compare=compares)
def test_identical_samples_never_fail(samples: list[float], compare: Compare) -> None:
    assert judge_samples("m", samples, list(samples), compare).verdict != "Failed"


@PROPERTY
@given(
    canary=values,
    stable=values,
    raises=st.lists(st.floats(min_value=0, max_value=1e6), min_size=60, max_size=60),
    confidence=st.sampled_from([0.9, 0.95, 0.98]),
    tolerance=st.sampled_from([0.0, 0.1, 0.25]),
)
def test_raising_the_canary_never_turns_a_fail_into_a_pass(
    canary: list[float],
    stable: list[float],
    raises: list[float],
    confidence: float,
    tolerance: float,
) -> None:
    compare = Compare(confidence=confidence, tolerance=tolerance, min_samples=5)
    before = judge_samples("m", canary, stable, compare)
    higher = [value + extra for value, extra in zip(canary, raises, strict=False)]
    after = judge_samples("m", higher, stable, compare)
    if before.verdict == "Failed":
        assert after.verdict == "Failed", (before.message, after.message)


def test_very_large_samples_are_thinned_for_the_shift_only() -> None:
    """2500 x 2000 pairwise differences exceed the bound: the estimate uses evenly
    spaced order statistics and stays close to the full median; the test uses all."""
    canary, stable = _sample(13, 2500, 1.2), _sample(14, 2000, 1.0)
    full = float(np.median(np.subtract.outer(canary, stable)))
    result = judge_samples("latency", canary, stable, Compare())
    evidence = result.evidence
    assert (evidence.canary_count, evidence.comparison_count) == (2500, 2000)
    assert evidence.shift == pytest.approx(full, rel=0.01)
    assert evidence.shift is not None and evidence.shift_low is not None
    assert evidence.shift_high is not None
    assert evidence.shift_low < evidence.shift < evidence.shift_high


@PROPERTY
@given(
    stable=values,
    scale=st.floats(min_value=1.0, max_value=4.0),
    raises=st.lists(st.floats(min_value=0, max_value=1e6), min_size=60, max_size=60),
    tolerance=st.sampled_from([0.0, 0.1, 0.25]),
)
def test_raising_a_slower_copy_of_stable_never_turns_a_fail_into_a_pass(
    stable: list[float], scale: float, raises: list[float], tolerance: float
) -> None:
    """The same property where failures are common: the canary is stable, slowed."""
    compare = Compare(confidence=0.9, tolerance=tolerance, min_samples=5)
    canary = [value * scale for value in stable]
    before = judge_samples("m", canary, stable, compare)
    higher = [value + extra for value, extra in zip(canary, raises, strict=False)]
    if before.verdict == "Failed":
        after = judge_samples("m", higher, stable, compare)
        assert after.verdict == "Failed", (before.message, after.message)
