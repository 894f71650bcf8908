"""The measurement loop's ``compare`` branch, on our own Measurer seam: which samples it
asks for, how the rank test's verdict and evidence are recorded, the threshold beside
it, provider failures, and the validation of the block."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from controller.analysis.run import AnalysisEngine, start_run
from controller.analysis.templating import QueryContext, TemplateError
from controller.analysis.values import (
    QueryFailure,
    QueryOutcome,
    QueryResult,
    Sample,
    SamplePair,
    SamplesOutcome,
)
from controller.api.analysis import Metric
from controller.api.rollout import AnalysisRef
from controller.api.status import AnalysisRunStatus
from controller.cli import app
from tests.analysis.helpers import T0, at, template

CONTEXT = QueryContext(canary_hash="abc", stable_hash="def", rollout_namespace="shop")
REF = AnalysisRef.model_validate({"templates": [{"name": "http-health"}]})
QUERY = 'latency{r="{{canary.hash}}"}'
STABLE = [0.100 + 0.001 * (i % 10) for i in range(60)]
SLOWER = [v * 1.5 for v in STABLE]


@dataclass
class ScriptedSamples:
    """Our own Measurer seam with samples: answers from scripts, remembers the calls."""

    samples: list[SamplesOutcome]
    values: list[QueryOutcome] = field(default_factory=list)
    ranges: list[dict[str, Any]] = field(default_factory=list)
    queries: list[str] = field(default_factory=list)

    def measure(self, promql, *, address, timeout, budget):
        self.queries.append(promql)
        return self.values.pop(0)

    def measure_samples(
        self, canary_promql, comparison_promql, *, address, start, end, step, timeout
    ):
        self.ranges.append(
            {
                "canary": canary_promql,
                "comparison": comparison_promql,
                "start": start,
                "end": end,
                "step": step,
                "timeout": timeout,
            }
        )
        return self.samples.pop(0)


def compared(**fields: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": "latency",
        "interval": "30s",
        "count": 1,
        "compare": {"against": "stable", "minSamples": 20},
        "provider": {"prometheus": {"query": QUERY}},
    }
    spec.update(fields)
    return spec


def advance(
    engine: AnalysisEngine, spec: dict[str, Any], *, now: datetime, run: AnalysisRunStatus | None
) -> AnalysisRunStatus:
    run = run or start_run(key="k", revision="abc", metrics=[], now=T0)
    return engine.advance(
        run, templates={"http-health": template(spec)}, ref=REF, context=CONTEXT, now=now
    )


def pair(canary: list[float], comparison: list[float]) -> SamplePair:
    return SamplePair(canary=tuple(canary), comparison=tuple(comparison))


def test_a_slower_canary_fails_with_the_evidence_from_samples_since_the_run_started() -> None:
    measurer = ScriptedSamples([pair(SLOWER, STABLE)])
    engine = AnalysisEngine(measurer, scrape_interval=5.0, monotonic=lambda: 100.0)
    run = advance(engine, compared(initialDelay="60s"), now=at(60), run=None)
    assert measurer.ranges == [
        {
            "canary": 'latency{r="abc"}',
            "comparison": 'latency{r="def"}',
            "start": T0,
            "end": at(60),
            "step": 5.0,
            "timeout": 10.0,
        }
    ]
    assert measurer.queries == []  # no threshold: no instant query
    assert run.phase == "Failed"
    message = run.metrics[0].measurements[-1].message
    assert message.startswith("latency: increase beyond tolerance 25%: canary median ")
    assert "(+50.0%), p=" in message and "n=60/60" in message
    assert message.endswith("samples since the run started (1m, every 5s)")
    assert run.metrics[0].measurements[-1].value is not None


def test_an_identical_canary_passes() -> None:
    engine = AnalysisEngine(ScriptedSamples([pair(STABLE, STABLE)]))
    run = advance(engine, compared(), now=at(30), run=None)
    assert run.phase == "Successful", run.message
    assert run.metrics[0].message.startswith("latency: no significant increase")


def test_a_long_run_asks_for_no_more_points_than_prometheus_allows() -> None:
    measurer = ScriptedSamples([pair(STABLE, STABLE)])
    advance(AnalysisEngine(measurer, scrape_interval=1.0), compared(), now=at(22_000), run=None)
    assert measurer.ranges[0]["step"] == 2.0


def test_too_few_samples_wait_for_the_first_interval_then_are_inconclusive() -> None:
    few = pair(STABLE[:5], STABLE)
    measurer = ScriptedSamples([few, few])
    engine = AnalysisEngine(measurer)
    run = advance(engine, compared(), now=at(0), run=None)
    assert run.phase == "Running" and run.metrics[0].measurements == []
    run = advance(engine, compared(), now=at(31), run=run)
    assert run.phase == "Inconclusive"
    assert run.message.startswith(
        "latency: too few samples to compare: canary 5, stable 60, minSamples 20"
    )


def test_a_provider_outage_follows_on_provider_error() -> None:
    down = QueryFailure(kind="unavailable", query="latency", message="connection refused")
    paused = advance(AnalysisEngine(ScriptedSamples([down])), compared(), now=at(0), run=None)
    assert paused.phase == "Running"
    assert paused.metrics[0].unreachable_since is not None
    aborted = advance(
        AnalysisEngine(ScriptedSamples([down])),
        compared(onProviderError="abort", consecutiveErrorLimit=0),
        now=at(0),
        run=None,
    )
    assert aborted.phase == "Error"


def test_a_threshold_beside_compare_also_applies() -> None:
    over = QueryResult(query="q", samples=(Sample({}, 0.9),))
    measurer = ScriptedSamples([pair(STABLE, STABLE)], values=[over])
    spec = compared(threshold={"max": 0.5})
    run = advance(AnalysisEngine(measurer), spec, now=at(30), run=None)
    assert measurer.queries == ['latency{r="abc"}']
    assert run.phase == "Failed"
    message = run.metrics[0].measurements[-1].message
    assert message.startswith("latency: no significant increase")
    assert "; threshold: latency 0.9 > max 0.5" in message


def test_a_measurer_without_samples_is_a_permanent_error() -> None:
    class ValuesOnly:
        def measure(self, promql, *, address, timeout, budget):
            raise AssertionError("not asked")

    run = advance(AnalysisEngine(ValuesOnly()), compared(), now=at(0), run=None)
    assert run.phase == "Error"
    assert run.message == "latency: this controller cannot fetch samples for compare"


def test_validation_of_compare_and_threshold() -> None:
    assert Metric.model_validate(compared()).threshold is None
    assert Metric.model_validate(compared(compare={"against": "baseline"})).compare
    plain = compared()
    del plain["compare"]
    with pytest.raises(ValidationError, match="needs a threshold .* or a compare block"):
        Metric.model_validate(plain)


def test_the_controller_refuses_a_scrape_interval_below_a_second() -> None:
    refused = CliRunner().invoke(app, ["controller", "--scrape-interval", "0.5"])
    assert refused.exit_code == 2
    assert "--scrape-interval" in refused.output


def test_against_baseline_asks_about_the_baseline_pods_series() -> None:
    measurer = ScriptedSamples([pair(SLOWER, STABLE)])
    engine = AnalysisEngine(measurer)
    spec = compared(compare={"against": "baseline", "minSamples": 20})
    run = advance(engine, spec, now=at(30), run=None)
    assert measurer.ranges[0]["canary"] == 'latency{r="abc"}'
    assert measurer.ranges[0]["comparison"] == 'latency{r="def-baseline"}'
    assert run.phase == "Failed"
    evidence = run.metrics[0].measurements[-1].comparison
    assert evidence is not None and evidence.against == "baseline"
    assert (evidence.canary_samples, evidence.comparison_samples) == (60, 60)
    assert evidence.effect == pytest.approx(0.5, rel=0.01)
    assert evidence.shift_low is not None and evidence.shift_low > 0
    assert "vs baseline" in run.metrics[0].measurements[-1].message


def test_against_baseline_without_a_stable_revision_is_a_clear_error() -> None:
    with pytest.raises(TemplateError, match="against: baseline needs a stable revision"):
        QueryContext(canary_hash="abc").for_baseline()
