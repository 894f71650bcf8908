"""Backtest: replay an AnalysisTemplate over Prometheus history to see when it would fail.

Called by ``deployctl analyze`` so users can tune thresholds before trusting them. Two
halves, kept apart: ``backtest`` fetches each metric's history with one range query
(through an injected ``RangeFetcher``; the CLI passes ``PrometheusMeasurer``), and
``replay`` is pure: it walks the points in time order and applies exactly the live
loop's verdict and limits (``verdict.evaluate`` then ``run.record``), one measurement per
step.

Rules of the replay:

- Each ``step`` is one measurement (use a step equal to the metric's interval to replay
  the live cadence; ``for`` windows use real timestamps, so they do not depend on it).
- ``count`` is ignored: the question is "at which moments would an analysis have
  failed", so the replay runs across the whole window.
- History starts at the metric's first point with data: a revision that did not exist
  yet is not a gap. Later gaps are missing data, as they would be live.
- When the replayed run leaves Running (Failed, Inconclusive or Error) that moment is an
  *event*, with its evidence; the replay then starts a fresh run from the next point, as
  an analysis started right then would.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal, Protocol

from controller.analysis.presets import metric_for, metric_query, metric_threshold
from controller.analysis.run import TERMINAL, record, start_run, template_args
from controller.analysis.templating import QueryContext, TemplateError, render
from controller.analysis.values import QueryFailure, RangeOutcome, RangeResult, Sample
from controller.analysis.verdict import evaluate
from controller.api.analysis import AnalysisTemplate, Metric
from controller.times import parse_timestamp

BacktestVerdict = Literal["Passed", "Failed", "Inconclusive", "Error"]


class RangeFetcher(Protocol):
    """Fetches a range query's history; returns a value, never raises."""

    def measure_range(
        self,
        promql: str,
        *,
        address: str | None,
        start: datetime,
        end: datetime,
        step: float,
        timeout: float,
    ) -> RangeOutcome: ...


@dataclass(frozen=True)
class Event:
    """A moment the replayed analysis left Running, with its evidence."""

    at: datetime
    phase: Literal["Failed", "Inconclusive", "Error"]
    value: str | None
    message: str


@dataclass(frozen=True)
class MetricReport:
    name: str
    query: str
    measurements: int = 0
    verdicts: Mapping[str, int] = field(default_factory=dict)
    events: tuple[Event, ...] = ()
    first_data: datetime | None = None
    failure: QueryFailure | None = None

    @property
    def outcome(self) -> BacktestVerdict:
        """Passed only with no event at all and at least one Successful measurement."""
        phases = {e.phase for e in self.events}
        if "Failed" in phases:
            return "Failed"
        if "Error" in phases or self.failure is not None:
            return "Error"
        if phases or not self.verdicts.get("Successful"):
            return "Inconclusive"
        return "Passed"

    @property
    def first_event(self) -> Event | None:
        return self.events[0] if self.events else None


@dataclass(frozen=True)
class BacktestReport:
    start: datetime
    end: datetime
    step: float
    metrics: tuple[MetricReport, ...]

    @property
    def passed(self) -> bool:
        return all(m.outcome == "Passed" for m in self.metrics)

    @property
    def unavailable(self) -> QueryFailure | None:
        """The first "Prometheus unreachable" failure, if any (the CLI's exit 4)."""
        return next(
            (
                m.failure
                for m in self.metrics
                if m.failure is not None and m.failure.kind == "unavailable"
            ),
            None,
        )


def _grid(result: RangeResult) -> dict[float, list[Sample]]:
    points: dict[float, list[Sample]] = {}
    for series in result.series:
        for at, value in series.points:
            points.setdefault(round(at, 3), []).append(Sample(labels=series.labels, value=value))
    return points


def replay(
    metric: Metric,
    *,
    query: str,
    canary: RangeResult,
    stable: RangeResult | None,
    times: Sequence[datetime],
) -> MetricReport:
    """The live verdict and limits applied at each of ``times``, in order. Pure."""
    # The live loop would stop after `count`; a replay asks about the whole window.
    replayed = metric.model_copy(update={"count": None})
    canary_points = _grid(canary)
    stable_points = _grid(stable) if stable is not None else {}
    threshold = metric_threshold(metric)
    for_ = metric_for(metric)
    first = next(
        (t for t in times if canary_points.get(round(t.timestamp(), 3))),
        None,
    )
    if first is None:
        return MetricReport(name=metric.name, query=query)
    run = start_run(key="backtest", revision="backtest", metrics=[replayed], now=first)
    verdicts: Counter[str] = Counter()
    events: list[Event] = []
    measured = 0
    for at in times:
        if at < first:
            continue
        key = round(at.timestamp(), 3)
        since_text = run.metrics[0].breach_since
        judgement = evaluate(
            metric.name,
            canary_points.get(key, []),
            threshold,
            for_=for_,
            breach_since=parse_timestamp(since_text) if since_text else None,
            now=at,
            relative=metric.relative_to == "stable",
            stable=stable_points.get(key, []),
        )
        measured += 1
        verdicts[judgement.phase] += 1
        run = record(run, replayed, judgement, now=at)
        if run.phase in TERMINAL:
            phase = run.phase
            assert phase in ("Failed", "Inconclusive", "Error")
            events.append(Event(at=at, phase=phase, value=judgement.value, message=run.message))
            run = start_run(key="backtest", revision="backtest", metrics=[replayed], now=at)
    return MetricReport(
        name=metric.name,
        query=query,
        measurements=measured,
        verdicts=dict(verdicts),
        events=tuple(events),
        first_data=first,
    )


def step_times(start: datetime, end: datetime, step: float) -> list[datetime]:
    """The instants a range query evaluates: start, start+step, ... <= end (whole seconds)."""
    # The client sends whole-second start/end; align with what Prometheus will return.
    first = round(start.timestamp())
    last = round(end.timestamp())
    count = int((last - first) // step) + 1
    return [datetime.fromtimestamp(first + i * step, tz=UTC) for i in range(max(count, 0))]


def backtest(
    template: AnalysisTemplate,
    *,
    args: Mapping[str, str],
    context: QueryContext,
    fetch: RangeFetcher,
    start: datetime,
    end: datetime,
    step: float,
) -> BacktestReport:
    """Fetch each metric's history and replay it. Raises ``TemplateError`` for bad args."""
    ctx = context.with_args(template_args(template, args))
    times = step_times(start, end, step)
    reports = []
    for metric in template.spec.metrics:
        if metric.job is not None or metric.web is not None or metric.alert_rules is not None:
            # A Job or an HTTP check has no history; alert rules: `deployctl analyze --rules`.
            continue
        source = metric_query(metric)
        promql = render(source, ctx)
        stable_promql = render(source, ctx.for_stable()) if metric.relative_to else None
        provider = metric.provider.prometheus if metric.provider is not None else None
        address = provider.address if provider is not None else None
        timeout = provider.timeout if provider is not None else 30.0
        canary = fetch.measure_range(
            promql, address=address, start=start, end=end, step=step, timeout=timeout
        )
        stable: RangeOutcome | None = None
        if stable_promql is not None:
            stable = fetch.measure_range(
                stable_promql, address=address, start=start, end=end, step=step, timeout=timeout
            )
        failure = next(
            (r for r in (canary, stable) if isinstance(r, QueryFailure)),
            None,
        )
        if failure is not None:
            reports.append(MetricReport(name=metric.name, query=promql, failure=failure))
            continue
        assert isinstance(canary, RangeResult)
        assert stable is None or isinstance(stable, RangeResult)
        reports.append(replay(metric, query=promql, canary=canary, stable=stable, times=times))
    return BacktestReport(start=start, end=end, step=step, metrics=tuple(reports))


__all__ = [
    "BacktestReport",
    "Event",
    "MetricReport",
    "RangeFetcher",
    "TemplateError",
    "backtest",
    "replay",
    "step_times",
]
