"""The measurement loop: due times, limits, bounded history, run phase, the engine."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from controller.analysis.run import (
    AnalysisEngine,
    BoundMetric,
    due_metrics,
    next_due,
    record,
    run_phase,
    start_run,
)
from controller.analysis.templating import QueryContext
from controller.analysis.values import QueryFailure, QueryOutcome, QueryResult, Sample
from controller.analysis.verdict import Judgement
from controller.api.analysis import Metric
from controller.api.rollout import AnalysisRef
from controller.api.status import MAX_MEASUREMENTS, AnalysisRunStatus, MetricResult, Verdict
from tests.analysis.helpers import T0, at, metric, template

OK = Judgement("Successful", "0.01", "error-rate 0.01 <= max 0.05")
BAD = Judgement("Failed", "0.2", "error-rate 0.2 > max 0.05")
GAP = Judgement("Inconclusive", "", "error-rate: no data (empty result)")
DOWN = Judgement("Error", None, "error-rate: Prometheus unavailable")
REJECTED = Judgement("Error", None, "error-rate: rejected", permanent=True)
PENDING = Judgement("Pending", "0.2", "error-rate 0.2 > max 0.05 (breaching)", at(0))


def feed(
    m: Metric, judgements: list[Judgement], *, every: float = 10.0
) -> tuple[AnalysisRunStatus, list[str]]:
    run = start_run(key="step-2", revision="abc", metrics=[m], now=T0)
    phases: list[str] = []
    for index, judgement in enumerate(judgements):
        run = record(run, m, judgement, now=at(index * every))
        phases.append(run.metrics[0].phase)
    return run, phases


def test_due_times_follow_initial_delay_and_interval() -> None:
    m = metric(initialDelay="30s", interval="10s")
    run = start_run(key="k", revision="abc", metrics=[m], now=T0)
    assert due_metrics(run, [m], now=at(29)) == []
    assert next_due(run, [m], now=at(0)) == at(30)
    assert due_metrics(run, [m], now=at(30)) == ["error-rate"]
    run = record(run, m, OK, now=at(30))
    assert due_metrics(run, [m], now=at(39)) == []
    assert next_due(run, [m], now=at(39)) == at(40)


def test_count_measurements_make_a_success() -> None:
    _, phases = feed(metric(count=3), [OK, OK, OK])
    assert phases == ["Running", "Running", "Successful"]


def test_failure_limit_is_exceeded_not_reached() -> None:
    _, phases = feed(metric(failureLimit=1), [BAD, OK, BAD])
    assert phases == ["Running", "Running", "Failed"]
    _, phases = feed(metric(failureLimit=1, count=3), [BAD, OK, OK])
    assert phases[-1] == "Successful"


def test_inconclusive_limit() -> None:
    _, phases = feed(metric(inconclusiveLimit=1), [GAP, OK, GAP])
    assert phases == ["Running", "Running", "Inconclusive"]


def test_count_of_only_missing_data_never_succeeds() -> None:
    _, phases = feed(metric(count=2, inconclusiveLimit=5), [GAP, GAP])
    assert phases[-1] == "Inconclusive"


def test_an_unreachable_provider_pauses_whatever_the_limits_are() -> None:
    """onProviderError: pause (the default): no limit counts an outage; it waits."""
    for limits in (
        {"inconclusiveLimit": 0, "consecutiveErrorLimit": 0},
        {"inconclusiveLimit": 30, "consecutiveErrorLimit": 4},
    ):
        run, phases = feed(metric(**limits), [OK] + [DOWN] * 40)
        assert set(phases) == {"Running"}, limits
        result = run.metrics[0]
        assert result.unreachable_since == "2024-05-01T12:00:10Z"  # the first failed attempt
        assert (result.error, result.consecutive_error, result.inconclusive) == (40, 40, 0)
        # One entry for the whole outage (the latest attempt); the evidence before it stays.
        assert [m.phase for m in result.measurements] == ["Successful", "Error"]
        assert result.measurements[-1].at == "2024-05-01T12:06:40Z"
        assert "unreachable since 2024-05-01T12:00:10Z (40 attempt(s))" in result.message
        assert "onProviderError: pause" in result.message


def test_the_provider_answering_again_ends_the_wait_and_the_run_goes_on() -> None:
    run, phases = feed(metric(count=3), [OK, DOWN, DOWN, OK, OK])
    assert phases == ["Running"] * 4 + ["Successful"]
    result = run.metrics[0]
    assert result.unreachable_since is None and result.consecutive_error == 0
    assert [m.phase for m in result.measurements] == [
        "Successful",
        "Error",
        "Successful",
        "Successful",
    ]


def test_on_provider_error_abort_counts_towards_consecutive_error_limit() -> None:
    abort = metric(onProviderError="abort", inconclusiveLimit=10, consecutiveErrorLimit=1)
    run, phases = feed(abort, [DOWN, DOWN])
    assert phases == ["Running", "Error"]
    result = run.metrics[0]
    assert result.unreachable_since is None and result.inconclusive == 0
    assert "consecutiveErrorLimit 1, onProviderError: abort" in result.message


def test_a_rejected_query_is_an_error_at_once() -> None:
    run, phases = feed(metric(inconclusiveLimit=10), [REJECTED])
    assert phases == ["Error"] and run.phase == "Error"


def test_pending_breaches_do_not_count_towards_count() -> None:
    run, phases = feed(metric(count=2, **{"for": "1m"}), [OK, PENDING, PENDING, OK])
    assert phases == ["Running", "Running", "Running", "Successful"]
    assert run.metrics[0].breach_since is None


def test_breach_since_is_kept_in_status() -> None:
    run, _ = feed(metric(**{"for": "1m"}), [PENDING])
    assert run.metrics[0].breach_since == "2024-05-01T12:00:00Z"


def test_measurements_are_bounded_newest_kept() -> None:
    run, _ = feed(metric(failureLimit=100), [OK] * (MAX_MEASUREMENTS + 5))
    kept = run.metrics[0].measurements
    assert len(kept) == MAX_MEASUREMENTS
    assert kept[-1].at == "2024-05-01T12:02:20Z"
    assert run.metrics[0].successful == MAX_MEASUREMENTS + 5


def test_run_phase_is_the_worst_metric() -> None:
    def phases(*names: Verdict) -> str:
        return run_phase([MetricResult(name=f"m{i}", phase=p) for i, p in enumerate(names)])

    assert phases("Successful", "Running") == "Running"
    assert phases("Successful", "Successful") == "Successful"
    assert phases("Error", "Running") == "Error"
    assert phases("Error", "Inconclusive") == "Inconclusive"
    assert phases("Inconclusive", "Failed", "Successful") == "Failed"


def test_a_finished_run_takes_no_more_measurements() -> None:
    m = metric()
    run, _ = feed(m, [BAD])
    assert run.phase == "Failed"
    assert due_metrics(run, [m], now=at(1000)) == []
    assert next_due(run, [m], now=at(1000)) is None


@dataclass
class ScriptedMeasurer:
    """Our own Measurer seam: answers from a script and remembers the queries."""

    answers: Iterator[QueryOutcome]
    queries: list[str] = field(default_factory=list)

    def measure(self, promql, *, address, timeout, budget):
        self.queries.append(promql)
        return next(self.answers)


def value(v: float) -> QueryResult:
    return QueryResult(query="q", samples=(Sample({}, v),))


CONTEXT = QueryContext(canary_hash="abc", stable_hash="def", rollout_namespace="shop")
TEMPLATE = template(
    {
        "name": "error-rate",
        "interval": "10s",
        "count": 2,
        "threshold": {"max": 0.05},
        "provider": {"prometheus": {"query": 'x{s="{{args.service}}",r="{{canary.hash}}"}'}},
    },
    args=[{"name": "service", "value": "default"}],
)


def test_engine_measures_due_metrics_with_resolved_args() -> None:
    measurer = ScriptedMeasurer(iter([value(0.01), value(0.02)]))
    engine = AnalysisEngine(measurer)
    ref = AnalysisRef.model_validate(
        {"templates": [{"name": "http-health"}], "args": [{"name": "service", "value": "shop"}]}
    )
    run = start_run(key="k", revision="abc", metrics=[], now=T0)
    templates = {"http-health": TEMPLATE}
    run = engine.advance(run, templates=templates, ref=ref, context=CONTEXT, now=at(0))
    run = engine.advance(run, templates=templates, ref=ref, context=CONTEXT, now=at(5))
    assert len(measurer.queries) == 1
    run = engine.advance(run, templates=templates, ref=ref, context=CONTEXT, now=at(10))
    assert measurer.queries == ['x{s="shop",r="abc"}'] * 2
    assert run.phase == "Successful"
    assert run.metrics[0].query == 'x{s="shop",r="abc"}'
    bound = engine.bind(templates, ref, revision="abc", context=CONTEXT)
    assert next_due(run, [b.metric for b in bound], now=at(10)) is None


def test_engine_relative_metric_asks_the_same_query_about_stable() -> None:
    relative = template(
        {
            "name": "latency",
            "relativeTo": "stable",
            "threshold": {"maxRatio": 1.5},
            "provider": {"prometheus": {"query": 'x{r="{{canary.hash}}"}'}},
        }
    )
    measurer = ScriptedMeasurer(iter([value(3.0), value(1.0)]))
    run = AnalysisEngine(measurer).advance(
        start_run(key="k", revision="abc", metrics=[], now=T0),
        templates={"http-health": relative},
        ref=AnalysisRef.model_validate({"templates": [{"name": "http-health"}]}),
        context=CONTEXT,
        now=at(0),
    )
    assert measurer.queries == ['x{r="abc"}', 'x{r="def"}']
    assert run.phase == "Failed"
    assert run.message == "latency 3 > stable 1 x maxRatio 1.5"


def test_missing_required_arg_is_an_error_result_not_an_exception() -> None:
    needs = template(
        {"name": "m", "threshold": {"max": 1}, "provider": {"prometheus": {"query": "vector(0)"}}},
        args=[{"name": "service"}],
    )
    run = AnalysisEngine(ScriptedMeasurer(iter([]))).advance(
        start_run(key="k", revision="abc", metrics=[], now=T0),
        templates={"http-health": needs},
        ref=AnalysisRef.model_validate({"templates": [{"name": "http-health"}]}),
        context=CONTEXT,
        now=at(0),
    )
    assert run.phase == "Error"
    assert "needs argument 'service'" in run.message


def test_unknown_template_is_an_error_result() -> None:
    run = AnalysisEngine(ScriptedMeasurer(iter([]))).advance(
        start_run(key="k", revision="abc", metrics=[], now=T0),
        templates={"http-health": TEMPLATE},
        ref=AnalysisRef.model_validate({"templates": [{"name": "nope"}]}),
        context=CONTEXT,
        now=at(0),
    )
    assert (run.phase, run.message) == (
        "Error",
        "unknown AnalysisTemplate 'nope'; known: http-health",
    )


def test_unreachable_prometheus_keeps_the_run_running_and_measures_again() -> None:
    down = QueryFailure(kind="unavailable", query="q", message="Prometheus at x unavailable")
    measurer = ScriptedMeasurer(iter([value(0.01), down, value(0.02)]))
    engine = AnalysisEngine(measurer)
    ref = AnalysisRef.model_validate({"templates": [{"name": "http-health"}]})
    run = start_run(key="k", revision="abc", metrics=[], now=T0)
    for second in (0, 10):
        run = engine.advance(
            run, templates={"http-health": TEMPLATE}, ref=ref, context=CONTEXT, now=at(second)
        )
    assert [m.phase for m in run.metrics[0].measurements] == ["Successful", "Error"]
    assert run.phase == "Running" and run.metrics[0].unreachable_since is not None
    bound = engine.bind({"http-health": TEMPLATE}, ref, revision="abc", context=CONTEXT)
    assert next_due(run, [b.metric for b in bound], now=at(10)) == at(20)  # its interval
    run = engine.advance(
        run, templates={"http-health": TEMPLATE}, ref=ref, context=CONTEXT, now=at(20)
    )
    assert run.metrics[0].unreachable_since is None


def test_a_template_that_does_not_render_is_an_error_at_once() -> None:
    """Waiting cannot cure it, so the outage rule does not apply: Error, whatever the limits."""
    bad = template(
        {
            "name": "m",
            "threshold": {"max": 1},
            "inconclusiveLimit": 100,
            "provider": {"prometheus": {"query": "rate(x[{{args.window}}])"}},
        },
        args=[{"name": "window", "value": "1m] or vector(1"}],
    )
    run = AnalysisEngine(ScriptedMeasurer(iter([]))).advance(
        start_run(key="k", revision="abc", metrics=[], now=T0),
        templates={"http-health": bad},
        ref=AnalysisRef.model_validate({"templates": [{"name": "http-health"}]}),
        context=CONTEXT,
        now=at(0),
    )
    assert run.phase == "Error" and run.metrics[0].unreachable_since is None


@dataclass
class ScriptedJobs:
    """Our own JobRunner seam: a Job that runs for ``running`` checks, then succeeds."""

    running: int
    checks: list[str] = field(default_factory=list)
    tidied: list[tuple[str, str]] = field(default_factory=list)

    def check(self, check):
        self.checks.append(check.name)
        if len(self.checks) <= self.running:
            return None
        return Judgement("Successful", "0", f"{check.metric}: Job {check.name} succeeded")

    def tidy(self, namespace, rollout):
        self.tidied.append((namespace, rollout))
        return 0


JOB_METRIC = Metric.model_validate(
    {
        "name": "smoke",
        "count": 1,
        "provider": {
            "job": {
                "spec": {
                    "template": {"spec": {"containers": [{"name": "t", "image": "sandbox/shell"}]}}
                }
            }
        },
    }
)


def test_finished_jobs_are_tidied_when_a_job_gives_its_verdict_not_on_every_pass() -> None:
    jobs = ScriptedJobs(running=2)
    engine = AnalysisEngine(ScriptedMeasurer(iter([])), jobs=jobs)
    bound = [BoundMetric(metric=JOB_METRIC, template="hook-preRollout", args={})]
    context = QueryContext(canary_hash="abc", rollout_name="shop", rollout_namespace="ns")
    run = start_run(key="hook-preRollout", revision="abc", metrics=[JOB_METRIC], now=T0)
    for second in range(3):
        run = engine.advance_bound(run, bound, context=context, now=at(second))
        assert jobs.tidied == ([("ns", "shop")] if second == 2 else [])
    assert run.phase == "Successful"
    assert len(set(jobs.checks)) == 1  # one Job, looked at on each pass


def test_a_provider_this_controller_lacks_is_a_permanent_error_naming_it() -> None:
    engine = AnalysisEngine(ScriptedMeasurer(iter([])))
    bound = [BoundMetric(metric=JOB_METRIC, template="t", args={})]
    run = start_run(key="step-1", revision="abc", metrics=[JOB_METRIC], now=T0)
    run = engine.advance_bound(run, bound, context=CONTEXT, now=T0)
    assert run.phase == "Error"
    assert run.metrics[0].message == "smoke: this controller cannot run Jobs"
