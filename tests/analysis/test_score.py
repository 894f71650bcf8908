"""Scoring compare metrics together (``controller.analysis.score``) and what a score
does to a run (``controller.analysis.scored_run``, through the measurement loop)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from controller.analysis.run import AnalysisEngine, start_run
from controller.analysis.score import Scored, score
from controller.api.analysis import AnalysisTemplate
from controller.api.status import AnalysisRunStatus
from tests.analysis.helpers import T0, at
from tests.analysis.test_run_compare import (
    CONTEXT,
    REF,
    SLOWER,
    STABLE,
    ScriptedSamples,
    compared,
    pair,
)


def s(name: str, weight: float, phase: str) -> Scored:
    return Scored(name, weight, phase)


def test_weights_decide_the_score_and_the_thresholds_the_outcome() -> None:
    metrics = [s("latency", 3, "Failed"), s("errors", 1, "Successful"), s("cpu", 1, "Successful")]
    result = score(metrics, pass_at=95, marginal_at=75)
    assert (result.outcome, result.value) == ("Fail", 40.0)
    assert result.message == (
        "score 40 (Fail: below marginal 75): passed errors, cpu; failed latency"
    )
    light = [s("latency", 1, "Failed"), s("errors", 4, "Successful")]
    assert score(light, pass_at=95, marginal_at=75).outcome == "Marginal"  # 80
    assert score(light, pass_at=80, marginal_at=75).outcome == "Pass"
    assert score(light, pass_at=95, marginal_at=81).outcome == "Fail"


def test_missing_evidence_is_never_scored() -> None:
    assert score(
        [s("a", 1, "Running"), s("b", 1, "Failed")], pass_at=95, marginal_at=75
    ).outcome == ("Pending")
    result = score([s("a", 1, "Inconclusive"), s("b", 1, "Successful")], pass_at=50, marginal_at=0)
    assert result.outcome == "NoData" and result.value is None
    assert "a without a verdict" in result.message
    assert score([], pass_at=95, marginal_at=75).outcome == "NoData"


phases = st.sampled_from(["Successful", "Failed"])


@given(
    metrics=st.lists(st.tuples(st.floats(0.1, 100), phases), min_size=1, max_size=8),
    pass_at=st.floats(1, 100),
    gap=st.floats(0, 100),
)
def test_a_metric_turning_from_failed_to_passed_never_lowers_the_outcome(
    metrics: list[tuple[float, str]], pass_at: float, gap: float
) -> None:
    marginal_at = max(0.0, pass_at - gap)
    order = {"Fail": 0, "Marginal": 1, "Pass": 2}
    items = [s(f"m{i}", w, p) for i, (w, p) in enumerate(metrics)]
    before = score(items, pass_at=pass_at, marginal_at=marginal_at)
    assert before.value is not None and 0 <= before.value <= 100
    for index, item in enumerate(items):
        if item.phase == "Failed":
            better = [*items[:index], s(item.name, item.weight, "Successful"), *items[index + 1 :]]
            after = score(better, pass_at=pass_at, marginal_at=marginal_at)
            assert after.value is not None and after.value >= before.value
            assert order[after.outcome] >= order[before.outcome]


def scored_template(*metrics: dict[str, Any], **score_spec: Any) -> AnalysisTemplate:
    return AnalysisTemplate.model_validate(
        {
            "apiVersion": "deployctl.io/v1alpha1",
            "kind": "AnalysisTemplate",
            "metadata": {"name": "http-health"},
            "spec": {"metrics": list(metrics), "score": score_spec},
        }
    )


def latency(weight: float) -> dict[str, Any]:
    return compared(compare={"against": "stable", "minSamples": 20, "weight": weight})


def errors(weight: float) -> dict[str, Any]:
    return compared(
        name="errors",
        compare={"against": "stable", "minSamples": 20, "weight": weight},
        provider={"prometheus": {"query": 'errors{r="{{canary.hash}}"}'}},
    )


def advance(
    engine: AnalysisEngine, template: AnalysisTemplate, *, now: Any, run: AnalysisRunStatus | None
) -> AnalysisRunStatus:
    run = run or start_run(key="k", revision="abc", metrics=[], now=T0)
    return engine.advance(
        run, templates={"http-health": template}, ref=REF, context=CONTEXT, now=now
    )


def test_a_light_failing_metric_passes_the_score() -> None:
    # latency fails on its own, but weighs 1 against errors' 19: score 95, a pass.
    engine = AnalysisEngine(ScriptedSamples([pair(SLOWER, STABLE), pair(STABLE, STABLE)]))
    template = scored_template(latency(1), errors(19), **{"pass": 95, "marginal": 75})
    run = advance(engine, template, now=at(30), run=None)
    assert [m.phase for m in run.metrics] == ["Failed", "Successful"]
    assert run.phase == "Successful", run.message
    assert run.score == 95.0
    assert "score 95 (Pass" in run.message


def test_a_heavy_failing_metric_fails_the_score() -> None:
    engine = AnalysisEngine(ScriptedSamples([pair(SLOWER, STABLE), pair(STABLE, STABLE)]))
    template = scored_template(latency(3), errors(1))
    run = advance(engine, template, now=at(30), run=None)
    assert run.phase == "Failed"
    assert run.score == 25.0
    assert run.message.startswith("http-health: score 25 (Fail: below marginal 75)")


def test_a_marginal_score_extends_the_step_once_then_pauses_for_a_person() -> None:
    measurer = ScriptedSamples([pair(SLOWER, STABLE), pair(STABLE, STABLE)] * 2)
    engine = AnalysisEngine(measurer)
    template = scored_template(latency(1), errors(4))  # 80: marginal
    run = advance(engine, template, now=at(30), run=None)
    assert run.phase == "Running" and run.extended
    assert run.message.endswith("the step is extended once")
    assert [m.phase for m in run.metrics] == ["Running", "Running"]
    assert [len(m.measurements) for m in run.metrics] == [1, 1]  # the evidence stays
    run = advance(engine, template, now=at(60), run=run)
    assert len(measurer.ranges) == 4  # measured again, on the samples since the start
    assert measurer.ranges[-1]["start"] == T0
    assert run.phase == "Inconclusive"
    assert "marginal again after the extension: a person decides" in run.message


def test_missing_samples_make_the_scored_run_inconclusive() -> None:
    engine = AnalysisEngine(ScriptedSamples([pair(STABLE[:5], STABLE), pair(STABLE, STABLE)]))
    template = scored_template(latency(1), errors(1))
    # Past its first interval, too few samples is recorded: Inconclusive, never scored.
    run = advance(engine, template, now=at(60), run=None)
    assert run.phase == "Inconclusive", run.message
    assert "latency without a verdict" in run.message


def test_score_validation() -> None:
    with pytest.raises(ValidationError, match="marginal 90.0 is above pass 80.0"):
        scored_template(latency(1), **{"pass": 80, "marginal": 90})
    plain = compared()
    del plain["compare"]
    plain["threshold"] = {"max": 1}
    with pytest.raises(ValidationError, match="score weighs the compare metrics"):
        scored_template(plain)
    with pytest.raises(ValidationError, match="weight"):
        scored_template(latency(0))
