"""The measurement loop: which metrics are due, and what a new measurement changes.

Called by the reconciler (through ``AnalysisEngine.advance``) on every pass over a
rollout with an analysis in flight, and by the backtest to replay history. Everything
here is a pure function of (status, spec, ``now``) except the injected ``Measurer``:
status is the only memory, so a controller restarted at any instant carries on.

Limits, as in Argo Rollouts, decide a metric's phase after each measurement:

- Failed        when failed > failureLimit
- Inconclusive  when inconclusive > inconclusiveLimit (the provider answered: no data)
- Error         when the query can never work (Prometheus rejected it, a template that
                does not render, alert rules that cannot be read): waiting cannot cure it
- Successful    when ``count`` measurements are decided within the limits and at least
                one was Successful (a metric never passes on missing data alone)
- Running       otherwise

A provider that does not answer (connection refused, timeout, 5xx; the provider has
already retried with backoff inside the interval) is an outage, not a verdict on the
revision, and the metric's ``onProviderError`` decides, whatever the other limits are:

- ``pause`` (default): the failure counts towards no limit; the metric stays Running
  with ``unreachableSince`` set, so the strategy pauses the rollout
  (``strategies.judge``) and this loop measures again at the metric's interval until
  the provider answers; then ``unreachableSince`` is cleared and the run goes on. A
  streak of such failures keeps one measurement in the bounded list (the latest), so the
  evidence from before the outage is not pushed out.
- ``abort``: the failures count towards ``consecutiveErrorLimit``; past it the metric is
  Error, which aborts the rollout (Argo Rollouts' behaviour).

A Pending measurement (a breach that has not yet held for ``for``) is not a decided
measurement: it does not count towards ``count``, so a metric cannot pass mid-breach.

The first verdict comes as soon as the data is there, not on the next tick of the
interval: until a Prometheus metric has its first value, it is asked again every
``FIRST_DATA_POLL`` seconds (``next_due``), and an answer with no data is recorded
(Inconclusive, counted towards ``inconclusiveLimit``) only once a whole interval has
passed without data since the run's first due moment or the last no-data record, as
before. The polling lasts for the first ``FIRST_DATA_WINDOW`` seconds at most (at
least one interval): long enough for Prometheus to discover a new revision's pods
(its discovery hands new targets to the scrapers every 5 s) and scrape them, while a
query that never finds data is asked at its interval after that. The presets'
``minRequests`` makes a window with too few requests no data, so an early verdict is
never one on two samples.

With ``batches`` (the operator's engine), the presets' queries of every run measured at
the same moment are one query (``controller.analysis.batch``); a preset metric's first
measurement is then taken a second after its run started (``BATCH_FIRST_DELAY``), so
that the pass that started the run has registered it for the batch of that moment, and
its due moments (interval ticks and first-data polls) are rounded up to the batch grid
(``AnalysisEngine.next_due``), so runs that come due within one tick are measured in
the same batch.

A metric with ``compare`` is judged by the rank test (``controller.analysis.compare``)
on the canary's and stable's samples since the run started, one range query per side
at the engine's ``scrape_interval``; its threshold, when it has one, also applies and
the worse verdict decides. Too few samples is Inconclusive, not recorded while the
first interval lasts, like an answer without data.

The run's phase is its worst metric's: Failed > Inconclusive > Error > Running >
Successful; a template with ``score`` has its compare metrics decided together by a
weighted score (``controller.analysis.scored_run``). A run that is not Running takes
no more measurements.

Budgets (``controller.limits``): one measurement, every request of it included (the
canary and stable queries, an alert rule's presence queries), shares one deadline of
the metric's interval at most (and never more than ``measurementDeadline``); a pass
stops starting measurements after ``passMeasuring`` seconds (``stop_by``) and measures
the longest-waiting metrics first, so a Rollout with many slow metrics hands its worker
back and the rest are measured on the next pass.
"""

from __future__ import annotations

import math
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

import structlog

from controller.analysis.alertrules import (
    AlertRule,
    RulesError,
    judge_alert,
    scoped,
    select_rules,
)
from controller.analysis.arguments import (
    ArgValues,
    SecretReader,
    hide,
    rollout_args,
    template_args,
    with_secrets,
)
from controller.analysis.batch import Batches, BatchKey
from controller.analysis.compare import Evidence, judge_samples
from controller.analysis.jobs import JOB_POLL_SECONDS, JobCheck
from controller.analysis.presets import (
    grouped_query,
    metric_for,
    metric_query,
    metric_threshold,
    traffic_query,
)
from controller.analysis.scored_run import ScoreGroup, apply_scores
from controller.analysis.templating import (
    QueryContext,
    TemplateError,
    render,
    render_body,
    render_header,
    render_job,
    render_url,
)
from controller.analysis.values import (
    QueryFailure,
    QueryOutcome,
    QueryResult,
    SamplesOutcome,
    short_query,
)
from controller.analysis.verdict import Judgement, evaluate, fmt, judge_failure
from controller.analysis.webcheck import WebReply, judge_reply
from controller.api.analysis import AnalysisTemplate, Compare, Metric, Score, WebProvider
from controller.api.common import SecretKeyRef
from controller.api.duration import format_duration
from controller.api.rollout import AnalysisRef, JobProvider
from controller.api.status import (
    MAX_MEASUREMENTS,
    AnalysisRunStatus,
    CompareEvidence,
    Measurement,
    MetricResult,
    Verdict,
)
from controller.limits import (
    MEASUREMENT_DEADLINE,
    MEASUREMENT_MESSAGE,
    RULES_PER_METRIC,
    truncate,
)
from controller.times import parse_timestamp, timestamp

log = structlog.get_logger(__name__)

TERMINAL: frozenset[str] = frozenset({"Successful", "Failed", "Inconclusive", "Error"})
_RANK: Mapping[str, int] = {
    "Failed": 5,
    "Inconclusive": 4,
    "Error": 3,
    "Running": 2,
    "Pending": 2,
    "Successful": 1,
}
DEFAULT_RETRY_BUDGET = 10.0
# While a metric waits for its first data, how often it is asked again (see above).
FIRST_DATA_POLL = 0.5
# How long after its first due moment a metric without a value is polled (at least an
# interval): Prometheus's discovery (new targets every 5 s), a scrape and minRequests.
FIRST_DATA_WINDOW = 20.0
# A batched metric's first measurement, after its run started: the next batch's moment.
BATCH_FIRST_DELAY = 1.0
# The step of a comparison's range queries: Prometheus's default scrape interval, so
# each sample is one scrape (the engine takes the real one as ``scrape_interval``).
DEFAULT_SCRAPE_INTERVAL = 15.0
# Prometheus refuses a range query of more than 11,000 points per series.
MAX_RANGE_POINTS = 11_000
_WORSE: Mapping[str, int] = {"Error": 5, "Failed": 4, "Inconclusive": 3, "Pending": 2}


class Measurer(Protocol):
    """Asks a metrics backend one query; returns a value, never raises.

    ``budget`` bounds the whole call, retries included (the engine passes what is left
    of the measurement's deadline). The Prometheus-backed one is
    ``controller.analysis.prometheus.PrometheusMeasurer``.
    """

    def measure(
        self, promql: str, *, address: str | None, timeout: float, budget: float
    ) -> QueryOutcome: ...


@runtime_checkable
class SampleMeasurer(Protocol):
    """A ``Measurer`` that can also fetch the comparison judge's samples: one range query
    per side (``PrometheusMeasurer.measure_samples``); never raises."""

    def measure_samples(
        self,
        canary_promql: str,
        comparison_promql: str,
        *,
        address: str | None,
        start: datetime,
        end: datetime,
        step: float,
        timeout: float,
    ) -> SamplesOutcome: ...


class JobRunner(Protocol):
    """Runs one attempt of a job metric: None while it runs, then its verdict.

    The Kubernetes-backed one is ``controller.analysis.jobs.JobChecks``.
    """

    def check(self, check: JobCheck) -> Judgement | None: ...

    def tidy(self, namespace: str, rollout: str) -> int: ...


class WebRunner(Protocol):
    """Sends one HTTP check; the reply or why there is none, never raises.

    The real one is ``controller.analysis.web.WebChecks``.
    """

    def fetch(
        self, web: WebProvider, *, namespace: str, budget: float
    ) -> WebReply | QueryFailure: ...


def start_run(
    *, key: str, revision: str, metrics: Sequence[Metric], now: datetime
) -> AnalysisRunStatus:
    """A new run with every metric Running and nothing measured yet."""
    return AnalysisRunStatus(
        key=key,
        revision=revision,
        phase="Running",
        started_at=timestamp(now),
        metrics=[MetricResult(name=m.name) for m in metrics],
    )


def _result(run: AnalysisRunStatus, name: str) -> MetricResult | None:
    return next((r for r in run.metrics if r.name == name), None)


def _due_at(run: AnalysisRunStatus, metric: Metric) -> datetime | None:
    result = _result(run, metric.name)
    if result is not None and result.phase in TERMINAL:
        return None
    if result is not None and result.job is not None:
        # A Job in flight is looked at on every pass (a cache read); see next_due.
        return parse_timestamp(run.started_at)
    if result is None or not result.measurements:
        return parse_timestamp(run.started_at) + timedelta(seconds=metric.initial_delay_seconds)
    last = parse_timestamp(result.measurements[-1].at)
    if _polls_for_data(run, metric) and last < _polling_ends(run, metric):
        return last  # only no data so far: asked again on the poll grid (next_due)
    return last + timedelta(seconds=metric.interval_seconds)


Align = Callable[[Metric, datetime], datetime]
"""Moves a metric's due moment (the engine rounds batched ones up to the batch grid)."""


def _as_is(metric: Metric, at: datetime) -> datetime:
    return at


def due_metrics(
    run: AnalysisRunStatus,
    metrics: Sequence[Metric],
    *,
    now: datetime,
    align: Align = _as_is,
) -> list[str]:
    """Names of the metrics to measure at ``now``, in spec order."""
    if run.phase in TERMINAL:
        return []
    due = []
    for metric in metrics:
        at = _due_at(run, metric)
        if at is not None and align(metric, at) <= now:
            due.append(metric.name)
    return due


def next_due(
    run: AnalysisRunStatus,
    metrics: Sequence[Metric],
    *,
    now: datetime,
    align: Align = _as_is,
) -> datetime | None:
    """When the next measurement is due (the reconciler's requeue-after); None when done.

    May be at or before ``now`` when a metric is already due.
    """
    if run.phase in TERMINAL:
        return None
    times = [
        align(metric, at)
        for metric in metrics
        if (at := metric_next_due(run, metric, now=now)) is not None
    ]
    return min(times) if times else None


def metric_next_due(run: AnalysisRunStatus, metric: Metric, *, now: datetime) -> datetime | None:
    """When ``metric`` of ``run`` is next measured (``next_due`` for one metric)."""
    result = _result(run, metric.name)
    if result is not None and result.job is not None and result.phase not in TERMINAL:
        return now + timedelta(seconds=JOB_POLL_SECONDS)
    at = _due_at(run, metric)
    if at is not None and at < now and waiting_for_first_data(run, metric, now=now):
        # Asked (or due) since ``at`` without data: the next poll on the grid
        # at, at + 0.5 s, ... (a run not asked yet is due at once).
        polls = math.floor((now - at).total_seconds() / FIRST_DATA_POLL) + 1
        end = _no_data_since(run, metric) + timedelta(seconds=metric.interval_seconds)
        at = min(at + timedelta(seconds=polls * FIRST_DATA_POLL), end)
    return at


def _first_due(run: AnalysisRunStatus, metric: Metric) -> datetime:
    return parse_timestamp(run.started_at) + timedelta(seconds=metric.initial_delay_seconds)


def _polls_for_data(run: AnalysisRunStatus, metric: Metric) -> bool:
    """A Prometheus metric, still running, with no value yet (nothing measured, or only
    no-data Inconclusives)."""
    if metric.provider is not None and metric.provider.prometheus is None:
        return False  # job and web checks decide on their first answer
    if metric.alert_rules is not None:
        return False
    result = _result(run, metric.name)
    if result is None:
        return True
    if result.phase in TERMINAL:
        return False
    return all(m.phase == "Inconclusive" for m in result.measurements)


def _polling_ends(run: AnalysisRunStatus, metric: Metric) -> datetime:
    window = max(metric.interval_seconds, FIRST_DATA_WINDOW)
    return _first_due(run, metric) + timedelta(seconds=window)


def _no_data_since(run: AnalysisRunStatus, metric: Metric) -> datetime:
    """Since when the metric has waited without recording: its last (no-data)
    measurement, or its first due moment."""
    result = _result(run, metric.name)
    if result is not None and result.measurements:
        return parse_timestamp(result.measurements[-1].at)
    return _first_due(run, metric)


def waiting_for_first_data(run: AnalysisRunStatus, metric: Metric, *, now: datetime) -> bool:
    """A Prometheus metric without a value yet, less than an interval after its first due
    moment or its last no-data record (and within ``FIRST_DATA_WINDOW``): an answer with
    no data is not recorded then, and the metric is asked again soon."""
    if not _polls_for_data(run, metric):
        return False
    result = _result(run, metric.name)
    if result is not None and result.measurements and now >= _polling_ends(run, metric):
        return False
    return now < _no_data_since(run, metric) + timedelta(seconds=metric.interval_seconds)


def metric_phase(result: MetricResult, metric: Metric, *, permanent_error: bool = False) -> Verdict:
    """The limits above, applied to a metric's counters."""
    if result.failed > metric.failure_limit_value:
        return "Failed"
    if result.inconclusive > metric.inconclusive_limit_value:
        return "Inconclusive"
    if permanent_error:
        return "Error"
    if (
        metric.on_provider_error == "abort"
        and result.consecutive_error > metric.consecutive_error_limit_value
    ):
        return "Error"
    decided = result.successful + result.failed + result.inconclusive
    count = metric.effective_count
    if count is not None and decided >= count:
        return "Successful" if result.successful > 0 else "Inconclusive"
    return "Running"


def run_phase(results: Sequence[MetricResult]) -> Verdict:
    """The worst metric phase; a run without metrics is still Running."""
    if not results:
        return "Running"
    worst = max(results, key=lambda r: _RANK.get(r.phase, 2))
    return worst.phase


def record(
    run: AnalysisRunStatus,
    metric: Metric,
    judgement: Judgement,
    *,
    now: datetime,
    query: str | None = None,
) -> AnalysisRunStatus:
    """The run after one measurement of ``metric`` judged ``judgement`` at ``now``."""
    result = _result(run, metric.name) or MetricResult(name=metric.name)
    counts = {
        "successful": result.successful,
        "failed": result.failed,
        "inconclusive": result.inconclusive,
        "error": result.error,
        "consecutive_error": 0,
    }
    phase = judgement.phase
    if phase == "Successful":
        counts["successful"] += 1
    elif phase == "Failed":
        counts["failed"] += 1
    elif phase == "Inconclusive":
        counts["inconclusive"] += 1
    elif phase == "Error":
        counts["error"] += 1
        counts["consecutive_error"] = result.consecutive_error + 1
    # An outage under onProviderError: pause (see the module docstring): no limit counts
    # it; the metric waits, measuring again at its interval.
    waiting = phase == "Error" and not judgement.permanent and metric.on_provider_error == "pause"
    unreachable_since = (result.unreachable_since or timestamp(now)) if waiting else None
    measurement = Measurement(
        value=judgement.value,
        phase=phase,
        at=timestamp(now),
        message=truncate(judgement.message, MEASUREMENT_MESSAGE.int),
        comparison=judgement.comparison,
    )
    earlier = result.measurements
    if waiting and result.unreachable_since and earlier and earlier[-1].phase == "Error":
        earlier = earlier[:-1]  # one entry per outage: the latest attempt
    measurements = [*earlier, measurement][-MAX_MEASUREMENTS:]
    message = judgement.message
    if waiting:
        message = (
            f"{judgement.message}; unreachable since {unreachable_since} "
            f"({counts['consecutive_error']} attempt(s)), measuring again every "
            f"{format_duration(metric.interval_seconds)} (onProviderError: pause)"
        )
    elif phase == "Error" and not judgement.permanent:
        message = (
            f"{judgement.message} ({counts['consecutive_error']} in a row; "
            f"consecutiveErrorLimit {metric.consecutive_error_limit_value}, onProviderError: abort)"
        )
    updated = result.model_copy(
        update={
            **counts,
            "unreachable_since": unreachable_since,
            "breach_since": (
                timestamp(judgement.breach_since) if judgement.breach_since is not None else None
            ),
            "message": truncate(message),
            "measurements": measurements,
            "job": None,
            **({"query": short_query(query)} if query is not None else {}),
        }
    )
    updated = updated.model_copy(
        update={
            "phase": metric_phase(
                updated, metric, permanent_error=phase == "Error" and judgement.permanent
            )
        }
    )
    results = [updated if r.name == metric.name else r for r in run.metrics]
    if _result(run, metric.name) is None:
        results.append(updated)
    return _with_phase(run, results)


def cannot_run(
    run: AnalysisRunStatus, metric: Metric, why: str, *, now: datetime
) -> AnalysisRunStatus:
    """The run after ``metric`` turned out impossible to measure (a template problem, a
    rules file that cannot be read, a provider this controller lacks): a permanent
    Error saying ``why``, so the metric stops at once instead of waiting for data."""
    return record(run, metric, Judgement("Error", None, why, permanent=True), now=now)


def _with_phase(run: AnalysisRunStatus, results: list[MetricResult]) -> AnalysisRunStatus:
    phase = run_phase(results)
    if phase in ("Failed", "Inconclusive", "Error"):
        worst = next(r for r in results if r.phase == phase)
        message = worst.message
    elif phase == "Successful":
        message = f"all {len(results)} metric(s) successful"
    else:
        message = ""
    return run.model_copy(update={"metrics": results, "phase": phase, "message": message})


@dataclass(frozen=True)
class BoundMetric:
    """A metric with the template's args resolved for it.

    An ``alertRules`` metric becomes one BoundMetric per rule (named ``metric/Rule``,
    ``alert`` and its revision-scoped ``query`` set), or one with ``problem`` set when its
    rules cannot be read or scoped: that is a permanent Error naming the rule.
    """

    metric: Metric
    template: str
    args: Mapping[str, str]
    alert: AlertRule | None = None
    query: str = ""
    presence: tuple[str, ...] = ()
    problem: str = ""
    secrets: Mapping[str, SecretKeyRef] = field(default_factory=dict)
    """Arguments whose values a Secret holds: read when measuring, never shown."""
    score: Score | None = None
    """The template's score thresholds, when it scores its compare metrics."""


class RulesSource(Protocol):
    """Reads a Prometheus rules file from a ConfigMap; raises RulesError saying why not.

    The Kubernetes-backed one is ``controller.analysis.rulesource.ConfigMapRules``.
    """

    def rules(self, namespace: str, config_map: str, key: str | None) -> list[AlertRule]: ...


def resolve(
    templates: Mapping[str, AnalysisTemplate],
    ref: AnalysisRef,
    context: QueryContext | None = None,
) -> list[BoundMetric]:
    """The metrics of every referenced template, each with its args resolved and its
    ``{{args.*}}`` fields (count, interval, limits) filled in.

    ``ref.args`` override the template's defaults. Raises ``TemplateError`` naming a
    missing template, an argument without a value, a field its argument does not fit,
    or a metric name used twice. Secret-valued args are left for ``with_secrets``.
    """
    ctx = context or QueryContext()
    given = rollout_args(ref.args, ctx)
    bound: list[BoundMetric] = []
    seen: dict[str, str] = {}
    for template_ref in ref.templates:
        template = templates.get(template_ref.name)
        if template is None:
            known = ", ".join(sorted(templates)) or "none"
            raise TemplateError(f"unknown AnalysisTemplate {template_ref.name!r}; known: {known}")
        args = template_args(template_ref.name, template.spec.args, given, ctx)
        for metric in template.spec.metrics:
            if metric.name in seen:
                raise TemplateError(
                    f"metric {metric.name!r} is defined by both AnalysisTemplate "
                    f"{seen[metric.name]!r} and {template_ref.name!r}; rename one"
                )
            seen[metric.name] = template_ref.name
            from_secret = sorted(set(metric.placeholders().values()) & set(args.secrets))
            if from_secret:
                raise TemplateError(
                    f"AnalysisTemplate {template_ref.name!r}: metric {metric.name}: "
                    f"{', '.join(from_secret)} comes from a Secret; count, interval and the "
                    "limits take plain values"
                )
            try:
                concrete = metric.bind(args.values)
            except ValueError as exc:
                raise TemplateError(f"AnalysisTemplate {template_ref.name!r}: {exc}") from None
            bound.append(
                BoundMetric(
                    metric=concrete,
                    template=template_ref.name,
                    args=dict(args.values),
                    secrets=dict(args.secrets),
                    score=template.spec.score,
                )
            )
    return bound


def score_groups(bound: Sequence[BoundMetric]) -> list[ScoreGroup]:
    """The compare metrics of each template that scores them, with their weights."""
    groups: dict[str, ScoreGroup] = {}
    for item in bound:
        if item.score is None or item.metric.compare is None:
            continue
        group = groups.setdefault(item.template, ScoreGroup(item.template, item.score, {}))
        groups[item.template] = ScoreGroup(
            group.template,
            group.thresholds,
            {**group.weights, item.metric.name: item.metric.compare.weight},
        )
    return list(groups.values())


def cannot_start(run: AnalysisRunStatus, problem: str) -> AnalysisRunStatus:
    """The run in Error because its templates cannot be used (a permanent problem)."""
    log.warning("analysis cannot start", run=run.key, error=problem)
    return run.model_copy(update={"phase": "Error", "message": truncate(problem)})


def _logged(
    run: AnalysisRunStatus,
    metric: Metric,
    judgement: Judgement,
    *,
    now: datetime,
    query: str | None = None,
) -> AnalysisRunStatus:
    """``record``, with the measurement and its evidence in the log."""
    log.info(
        "analysis measurement",
        run=run.key,
        metric=metric.name,
        verdict=judgement.phase,
        value=judgement.value,
        evidence=judgement.message,
    )
    return record(run, metric, judgement, now=now, query=query)


def _crashed(metric: Metric, exc: BaseException) -> Judgement:
    """A provider raised (a bug): an Error measurement, and a log line with where.

    Only the exception's type and the frames' places are logged: its message and the
    frames' local variables may hold what was being sent (a header read from a Secret).
    """
    frames = traceback.extract_tb(exc.__traceback__)
    log.error(
        "analysis provider crashed; recorded as an error",
        metric=metric.name,
        error=type(exc).__name__,
        at=[f"{f.filename}:{f.lineno} in {f.name}" for f in frames[-5:]],
    )
    return Judgement(
        "Error",
        None,
        f"{metric.name}: the check could not be made ({type(exc).__name__}); "
        "see the controller's log",
    )


def _breach_since(run: AnalysisRunStatus, name: str) -> datetime | None:
    """When the metric's current threshold breach began (for ``for``), if one is on."""
    result = _result(run, name)
    return parse_timestamp(result.breach_since) if result and result.breach_since else None


def _hidden(judgement: Judgement, hidden: Sequence[str]) -> Judgement:
    """The judgement with Secret values masked in its evidence and value."""
    if not hidden:
        return judgement
    value = hide(judgement.value, hidden) if judgement.value is not None else None
    return replace(judgement, message=hide(judgement.message, hidden), value=value)


def render_web(web: WebProvider, context: QueryContext) -> WebProvider:
    """The HTTP check with its URL, header values and body filled in for ``context``."""
    headers = [
        h.model_copy(update={"value": render_header(h.value, context, header=h.name)})
        if h.value is not None
        else h
        for h in web.headers
    ]
    update: dict[str, object] = {"headers": headers}
    if web.url is not None:
        update["url"] = render_url(web.url, context)
    if web.body is not None:
        update["body"] = render_body(web.body, context)
    return web.model_copy(update=update)


def render_job_provider(provider: JobProvider, context: QueryContext) -> JobProvider:
    """The Job check with every string of its metadata and spec filled in."""
    written = provider.model_dump(mode="json", by_alias=True, exclude_none=True)
    return JobProvider.model_validate(render_job(written, context))


class AnalysisEngine:
    """Measures every due metric of a run and returns the run's new status.

    Clock-free: ``now`` is an argument; the measurer is injected (the reconciler passes a
    ``PrometheusMeasurer``; tests may pass their own at this seam).
    """

    def __init__(
        self,
        measurer: Measurer,
        *,
        jobs: JobRunner | None = None,
        web: WebRunner | None = None,
        rules: RulesSource | None = None,
        secrets: SecretReader | None = None,
        retry_budget: float = DEFAULT_RETRY_BUDGET,
        batches: Batches | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        scrape_interval: float = DEFAULT_SCRAPE_INTERVAL,
    ):
        self.measurer = measurer
        self.jobs = jobs
        self.web = web
        self.rules = rules
        self.secrets = secrets
        self.retry_budget = retry_budget
        self.batches = batches
        self.monotonic = monotonic
        self.scrape_interval = scrape_interval

    def _deadline(self, metric: Metric) -> float:
        """When one measurement of ``metric`` must be over (a ``monotonic`` instant)."""
        seconds = min(metric.interval_seconds, self.retry_budget, MEASUREMENT_DEADLINE.value)
        return self.monotonic() + seconds

    def _left(self, deadline: float) -> float:
        return max(0.0, deadline - self.monotonic())

    def advance(
        self,
        run: AnalysisRunStatus,
        *,
        templates: Mapping[str, AnalysisTemplate],
        ref: AnalysisRef,
        context: QueryContext,
        now: datetime,
        stop_by: float | None = None,
    ) -> AnalysisRunStatus:
        """``bind`` then ``advance_bound``; a run whose templates cannot be bound is Error."""
        if run.phase in TERMINAL:
            return run
        try:
            bound = self.bind(templates, ref, revision=run.revision, context=context)
        except TemplateError as exc:
            return cannot_start(run, str(exc))
        return self.advance_bound(run, bound, context=context, now=now, stop_by=stop_by)

    def bind(
        self,
        templates: Mapping[str, AnalysisTemplate],
        ref: AnalysisRef,
        *,
        revision: str,
        context: QueryContext,
    ) -> list[BoundMetric]:
        """The run's metrics: templates resolved with their args, alert rules expanded
        for ``revision``. Raises ``TemplateError`` when the templates cannot be used."""
        bound = self._batched(resolve(templates, ref, context))
        return self.expand_alert_rules(bound, revision=revision, context=context)

    def _batched(self, bound: list[BoundMetric]) -> list[BoundMetric]:
        """With batching, a preset metric's first measurement waits for the batch of the
        second after its run started (``BATCH_FIRST_DELAY``)."""
        if self.batches is None:
            return bound
        return [
            replace(
                item,
                metric=item.metric.model_copy(
                    update={"initial_delay": item.metric.initial_delay_seconds + BATCH_FIRST_DELAY}
                ),
            )
            if grouped_query(item.metric) is not None
            else item
            for item in bound
        ]

    def expand_alert_rules(
        self, bound: Sequence[BoundMetric], *, revision: str, context: QueryContext
    ) -> list[BoundMetric]:
        """Each ``alertRules`` metric as one metric per rule, scoped to ``revision``."""
        out: list[BoundMetric] = []
        namespace = str(context.rollout_namespace)
        for item in bound:
            source = item.metric.alert_rules
            if source is None:
                out.append(item)
                continue
            try:
                if self.rules is None:
                    raise RulesError("this controller cannot read alert rules")
                rules = select_rules(
                    self.rules.rules(namespace, source.config_map, source.key), source.rules
                )
                if not rules:
                    raise RulesError(f"ConfigMap {source.config_map} has no alerting rule")
                if len(rules) > RULES_PER_METRIC.value:
                    raise RulesError(
                        f"ConfigMap {source.config_map} has {len(rules)} alerting rules "
                        f"({RULES_PER_METRIC}); name the ones to judge with alertRules.rules"
                    )
                matchers = {source.namespace_label: namespace, source.revision_label: revision}
                expanded = []
                for rule in rules:
                    queries = scoped(rule, matchers)
                    expanded.append(
                        replace(
                            item,
                            metric=item.metric.model_copy(
                                update={"name": f"{item.metric.name}/{rule.name}"}
                            ),
                            alert=rule,
                            query=queries.query,
                            presence=queries.presence,
                        )
                    )
            except RulesError as exc:
                out.append(replace(item, problem=f"{item.metric.name}: {exc}"))
                continue
            out.extend(expanded)
        return out

    def advance_bound(
        self,
        run: AnalysisRunStatus,
        bound: Sequence[BoundMetric],
        *,
        context: QueryContext,
        now: datetime,
        stop_by: float | None = None,
    ) -> AnalysisRunStatus:
        """``advance`` for metrics already resolved (a hook's Jobs have no template).

        ``stop_by`` (a ``monotonic`` instant): start no measurement after it; the metrics
        still due stay due for the next pass. The longest-waiting are measured first.
        """
        if run.phase in TERMINAL:
            return run
        metrics = [b.metric for b in bound]
        missing = [MetricResult(name=m.name) for m in metrics if _result(run, m.name) is None]
        if missing:
            run = run.model_copy(update={"metrics": [*run.metrics, *missing]})
        due = set(due_metrics(run, metrics, now=now, align=self._align))
        waiting = sorted(
            (item for item in bound if item.metric.name in due),
            key=lambda item: _due_at(run, item.metric) or now,
        )
        for item in waiting:
            if stop_by is not None and self.monotonic() >= stop_by:
                log.info(
                    "measurement budget of this pass spent; the rest wait for the next pass",
                    run=run.key,
                    waiting=len(due),
                )
                break
            due.discard(item.metric.name)
            why_not = item.problem or self._lacking(item.metric)
            if why_not:
                log.warning("analysis metric cannot run", run=run.key, error=why_not)
                run = cannot_run(run, item.metric, why_not, now=now)
                continue
            try:
                run = self._measure_one(run, item, context=context, now=now)
            except Exception as exc:  # noqa: BLE001 - providers return measurements
                run = record(run, item.metric, _crashed(item.metric, exc), now=now)
        return apply_scores(run, score_groups(bound))

    def _measure_one(
        self, run: AnalysisRunStatus, item: BoundMetric, *, context: QueryContext, now: datetime
    ) -> AnalysisRunStatus:
        if item.alert is not None:
            return self._check_alert(run, item, item.alert, now=now)
        if item.metric.job is not None:
            return self._check_job(run, item, context=context, now=now)
        if item.metric.web is not None:
            return self._check_web(run, item, context=context, now=now)
        return self._measure(run, item, context=context, now=now)

    def _lacking(self, metric: Metric) -> str:
        """Why this engine cannot measure ``metric`` at all (no provider for it), or ""."""
        if metric.job is not None and self.jobs is None:
            return f"{metric.name}: this controller cannot run Jobs"
        if metric.web is not None and self.web is None:
            return f"{metric.name}: this controller cannot send HTTP checks"
        return ""

    def _check_alert(
        self, run: AnalysisRunStatus, item: BoundMetric, rule: AlertRule, *, now: datetime
    ) -> AnalysisRunStatus:
        metric = item.metric
        breach_since = _breach_since(run, metric.name)
        deadline = self._deadline(metric)
        outcome = self.measurer.measure(
            item.query, address=None, timeout=10.0, budget=self._left(deadline)
        )
        if isinstance(outcome, QueryFailure):
            judgement = judge_failure(metric.name, outcome, breach_since=breach_since)
        else:
            has_data = bool(outcome.samples) or self._any_series(item.presence, deadline=deadline)
            judgement = judge_alert(
                metric.name, rule, outcome, breach_since=breach_since, now=now, has_data=has_data
            )
        return _logged(run, metric, judgement, now=now, query=item.query)

    def _any_series(self, queries: Sequence[str], *, deadline: float) -> bool:
        """Whether any of ``queries`` returns a series (a failed query counts as none)."""
        for query in queries:
            if self._left(deadline) <= 0:
                return False  # the measurement's deadline passed: no evidence of data
            answer = self.measurer.measure(
                query, address=None, timeout=10.0, budget=self._left(deadline)
            )
            if isinstance(answer, QueryResult) and answer.samples:
                return True
        return False

    def _check_web(
        self, run: AnalysisRunStatus, item: BoundMetric, *, context: QueryContext, now: datetime
    ) -> AnalysisRunStatus:
        metric = item.metric
        written = metric.web
        assert written is not None and self.web is not None
        breach_since = _breach_since(run, metric.name)
        try:
            ctx, hidden = self._context(item, context)
            web = render_web(written, ctx)
        except TemplateError as exc:
            return self._template_problem(run, item, exc, now=now, source=written.url or "")
        reply = self.web.fetch(
            web,
            namespace=str(context.rollout_namespace),
            budget=self._left(self._deadline(metric)),
        )
        if isinstance(reply, QueryFailure):
            judgement = judge_failure(metric.name, reply, breach_since=breach_since)
            target = reply.query
        else:
            judgement = judge_reply(metric, web, reply, breach_since=breach_since, now=now)
            target = f"{reply.method} {reply.url}"
        return _logged(run, metric, _hidden(judgement, hidden), now=now, query=hide(target, hidden))

    def _context(
        self, item: BoundMetric, context: QueryContext
    ) -> tuple[QueryContext, tuple[str, ...]]:
        """The context with every argument (Secrets read now) and the values to hide."""
        values, hidden = with_secrets(
            ArgValues(item.args, item.secrets),
            namespace=str(context.rollout_namespace),
            reader=self.secrets,
        )
        return context.with_args(values), hidden

    def _template_problem(
        self,
        run: AnalysisRunStatus,
        item: BoundMetric,
        exc: TemplateError,
        *,
        now: datetime,
        source: str,
    ) -> AnalysisRunStatus:
        """A placeholder that cannot be filled: a permanent Error naming it."""
        metric = item.metric
        failure = QueryFailure(kind="rejected", query=source, message=str(exc))
        judgement = judge_failure(
            metric.name, failure, breach_since=_breach_since(run, metric.name)
        )
        log.warning("analysis metric cannot run", run=run.key, error=str(exc))
        return record(run, metric, judgement, now=now, query=source)

    def _check_job(
        self, run: AnalysisRunStatus, item: BoundMetric, *, context: QueryContext, now: datetime
    ) -> AnalysisRunStatus:
        metric = item.metric
        provider = metric.job
        assert provider is not None and self.jobs is not None
        result = _result(run, metric.name) or MetricResult(name=metric.name)
        attempt = result.successful + result.failed + result.inconclusive + result.error
        try:
            ctx, hidden = self._context(item, context)
            rendered = render_job_provider(provider, ctx)
        except TemplateError as exc:
            return self._template_problem(run, item, exc, now=now, source="job")
        check = JobCheck(
            namespace=str(context.rollout_namespace),
            rollout=str(context.rollout_name),
            revision=run.revision,
            run_key=run.key,
            run_started_at=run.started_at,
            metric=metric.name,
            attempt=attempt,
            provider=rendered,
            now=now,
        )
        judgement = self.jobs.check(check)
        if judgement is not None:
            judgement = _hidden(judgement, hidden)
        if judgement is None:
            if result.job == check.name:
                return run
            running = result.model_copy(update={"job": check.name})
            results = [running if r.name == metric.name else r for r in run.metrics]
            return run.model_copy(update={"metrics": results})
        # A Job finished: the only moment the rollout's finished Jobs can exceed the limit.
        self.jobs.tidy(check.namespace, check.rollout)
        return _logged(run, metric, judgement, now=now)

    def expect(
        self,
        run: AnalysisRunStatus,
        bound: Sequence[BoundMetric],
        *,
        context: QueryContext,
        now: datetime,
    ) -> None:
        """With batching: registers each preset metric's next measurement of ``run`` for
        the batch of its moment (the pass calls this when it computes its requeue time)."""
        if self.batches is None or run.phase in TERMINAL:
            return
        for item in bound:
            key = self._batch_key(item.metric)
            due = metric_next_due(run, item.metric, now=now)
            if key is None or due is None:
                continue
            for scope in _scopes(item.metric, context):
                self.batches.expect(key, scope, due=max(self.batches.on_grid(due), now))

    def next_due(
        self, run: AnalysisRunStatus, bound: Sequence[BoundMetric], *, now: datetime
    ) -> datetime | None:
        """``next_due`` with the batched metrics' moments on the batch grid."""
        return next_due(run, [b.metric for b in bound], now=now, align=self._align)

    def _align(self, metric: Metric, at: datetime) -> datetime:
        """A batched metric's due moment rounded up to the batch grid, so the runs due
        within one tick are measured together (``controller.analysis.batch``)."""
        if self.batches is None or self._batch_key(metric) is None:
            return at
        return self.batches.on_grid(at)

    def _batch_key(self, metric: Metric) -> BatchKey | None:
        grouped = grouped_query(metric) if self.batches is not None else None
        if grouped is None:
            return None
        address, timeout = _where(metric)
        return BatchKey(grouped, address, timeout)

    def _measure(
        self, run: AnalysisRunStatus, item: BoundMetric, *, context: QueryContext, now: datetime
    ) -> AnalysisRunStatus:
        metric = item.metric
        breach_since = _breach_since(run, metric.name)
        template = metric_query(metric)
        try:
            ctx, hidden = self._context(item, context)
            promql = render(template, ctx)
            compared = metric.relative_to is not None or metric.compare is not None
            stable_promql = render(template, _against(metric, ctx)) if compared else None
        except TemplateError as exc:
            failure = QueryFailure(kind="rejected", query=template, message=str(exc))
            return record(
                run,
                metric,
                judge_failure(metric.name, failure, breach_since=breach_since),
                now=now,
                query=template,
            )
        if metric.compare is not None:
            assert stable_promql is not None
            judgement = self._judge_compared(
                run, metric, promql, stable_promql, breach_since=breach_since, now=now
            )
        else:
            judgement = self._judge(
                metric,
                promql,
                stable_promql,
                scopes=_scopes(metric, ctx),
                breach_since=breach_since,
                now=now,
            )
        if judgement.phase == "Inconclusive" and waiting_for_first_data(run, metric, now=now):
            return run  # no data yet: asked again soon, nothing recorded (module docstring)
        if judgement.phase == "Inconclusive":
            judgement = self._explain_no_data(metric, judgement, context=ctx)
        return _logged(run, metric, _hidden(judgement, hidden), now=now, query=hide(promql, hidden))

    def _judge_compared(
        self,
        run: AnalysisRunStatus,
        metric: Metric,
        promql: str,
        stable_promql: str,
        *,
        breach_since: datetime | None,
        now: datetime,
    ) -> Judgement:
        """A ``compare`` metric: the rank test on the canary's and stable's samples since
        the run started (``judge_samples``), and the threshold too when one is given (the
        worse verdict decides; both are in the message). A provider failure is judged as
        any other Prometheus metric's (``onProviderError``)."""
        compare = metric.compare
        assert compare is not None
        if not isinstance(self.measurer, SampleMeasurer):
            return Judgement(
                "Error",
                None,
                f"{metric.name}: this controller cannot fetch samples for compare",
                permanent=True,
            )
        address, timeout = _where(metric)
        deadline = self._deadline(metric)
        start = parse_timestamp(run.started_at)
        window = max((now - start).total_seconds(), 0.0)
        step = max(self.scrape_interval, window / MAX_RANGE_POINTS)
        samples = self.measurer.measure_samples(
            promql,
            stable_promql,
            address=address,
            start=start,
            end=now,
            step=step,
            timeout=max(0.1, min(timeout, self._left(deadline))),
        )
        if isinstance(samples, QueryFailure):
            return judge_failure(metric.name, samples, breach_since=breach_since)
        result = judge_samples(metric.name, samples.canary, samples.comparison, compare)
        evidence = result.evidence
        verdict = Judgement(
            result.verdict,
            fmt(evidence.canary_median) if evidence.canary_median is not None else None,
            f"{result.message}; samples since the run started "
            f"({format_duration(round(window))}, every {format_duration(round(step, 3))})",
            comparison=_evidence(evidence, compare),
        )
        if metric.threshold is None:
            return verdict
        threshold = self._judge(metric, promql, None, scopes=(), breach_since=breach_since, now=now)
        if threshold.phase == "Error":
            return threshold
        worse = max(verdict, threshold, key=lambda j: _WORSE.get(j.phase, 1))
        return Judgement(
            worse.phase,
            threshold.value,
            f"{verdict.message}; threshold: {threshold.message}",
            breach_since=threshold.breach_since,
            comparison=verdict.comparison,
        )

    def _explain_no_data(
        self, metric: Metric, judgement: Judgement, *, context: QueryContext
    ) -> Judgement:
        """Add how much traffic the revision had to a no-data verdict (presets only)."""
        traffic = traffic_query(metric)
        if traffic is None:
            return judgement
        query, window = traffic
        try:
            promql = render(query, context)
        except TemplateError:
            return judgement
        budget = min(metric.interval_seconds, self.retry_budget)
        answer = self.measurer.measure(promql, address=None, timeout=10.0, budget=budget)
        if not isinstance(answer, QueryResult):
            return judgement
        finite = [s.value for s in answer.samples if math.isfinite(s.value)]
        revision = context.canary_hash
        if not finite:
            why = (
                f"no requests recorded for revision {revision} (no series: no traffic yet, "
                "or its pods are not scraped)"
            )
        else:
            why = f"revision {revision} served {sum(finite):.0f} requests in the last {window}"
        return replace(judgement, message=f"{judgement.message}; {why}")

    def _judge(
        self,
        metric: Metric,
        promql: str,
        stable_promql: str | None,
        *,
        scopes: Sequence[tuple[str, str]],
        breach_since: datetime | None,
        now: datetime,
    ) -> Judgement:
        address, timeout = _where(metric)
        deadline = self._deadline(metric)
        key = self._batch_key(metric)

        def ask(query: str, scope: int) -> QueryOutcome:
            def send(text: str) -> QueryOutcome:
                return self.measurer.measure(
                    text, address=address, timeout=timeout, budget=self._left(deadline)
                )

            if self.batches is None or key is None or scope >= len(scopes):
                return send(query)
            outcome = self.batches.measure(key, scopes[scope], now=now, send=send)
            if isinstance(outcome, QueryFailure) and outcome.permanent:
                # Prometheus refused or garbled the grouped query, not necessarily this
                # run's: the run asks alone, so its verdict is the one it would get alone.
                return send(query)
            # The evidence names the run's own query, not the grouped one it was part of.
            return replace(outcome, query=query)

        canary = ask(promql, 0)
        if isinstance(canary, QueryFailure):
            return judge_failure(metric.name, canary, breach_since=breach_since)
        stable: QueryResult | None = None
        if stable_promql is not None:
            answer = ask(stable_promql, 1)
            if isinstance(answer, QueryFailure):
                return judge_failure(metric.name, answer, breach_since=breach_since)
            stable = answer
        return evaluate(
            metric.name,
            canary,
            metric_threshold(metric),
            for_=metric_for(metric),
            breach_since=breach_since,
            now=now,
            relative=metric.relative_to == "stable",
            stable=stable,
        )


def _evidence(evidence: Evidence, compare: Compare) -> CompareEvidence:
    """The comparison's evidence as status numbers (non-finite ones left out)."""

    def finite(value: float | None) -> float | None:
        return value if value is not None and math.isfinite(value) else None

    return CompareEvidence(
        against=compare.against,
        canary_samples=evidence.canary_count,
        comparison_samples=evidence.comparison_count,
        canary_median=finite(evidence.canary_median),
        comparison_median=finite(evidence.comparison_median),
        effect=finite(evidence.effect),
        p_value=finite(evidence.p_value),
        shift=finite(evidence.shift),
        shift_low=finite(evidence.shift_low),
        shift_high=finite(evidence.shift_high),
        confidence=compare.confidence,
    )


def _against(metric: Metric, context: QueryContext) -> QueryContext:
    """The context a comparison's second query is asked in: the baseline's pods for
    ``compare.against: baseline``, otherwise the stable revision's."""
    if metric.compare is not None and metric.compare.against == "baseline":
        return context.for_baseline()
    return context.for_stable()


def _where(metric: Metric) -> tuple[str | None, float]:
    """The Prometheus address (None: the controller's default) and timeout of a metric."""
    provider = metric.provider.prometheus if metric.provider is not None else None
    if provider is None:
        return None, 10.0
    return provider.address, provider.timeout


def _scopes(metric: Metric, context: QueryContext) -> tuple[tuple[str, str], ...]:
    """The (namespace, revision) a preset's query is about: the canary, then stable for
    ``relativeTo: stable``; () when they are not known (the query then goes alone)."""
    namespace, canary = context.rollout_namespace, context.canary_hash
    if not namespace or not canary:
        return ()
    if metric.relative_to == "stable":
        if not context.stable_hash:
            return ((namespace, canary),)
        return ((namespace, canary), (namespace, context.stable_hash))
    return ((namespace, canary),)
