"""The one rule for what an analysis run's verdict does to a rollout, for every strategy.

``judge_run`` is called by ``canary.py`` (background and step analysis), ``bluegreen.py``
(pre- and post-promotion analysis) and ``rolling.py`` (gates). Each strategy supplies
only what differs: where it is (for the messages), how it aborts (``fail``) and how it
holds the world still while it waits (``hold``). The rule:

==============================  =============================================================
run                             the rollout
==============================  =============================================================
Failed or Error                 aborts with the failing metric's evidence (``fail``)
Inconclusive (no data)          pauses, AnalysisInconclusive; waits for ``deployctl retry``
                                (measure again) or ``deployctl promote`` (accept)
Running, a metric unreachable   pauses, AnalysisProviderUnreachable; the run stays Running,
                                so the engine measures again at the metric's interval by
                                itself, and the rollout goes on once the provider answers
Running or Successful           not decided here: the strategy goes on
==============================  =============================================================

A metric is *unreachable* when its provider did not answer (connection refused, timeout,
5xx after the provider's own retries) and its template says ``onProviderError: pause``
(the default): the analysis engine then sets ``unreachableSince`` instead of counting the
failure towards any limit. With ``onProviderError: abort`` the failures count towards
``consecutiveErrorLimit`` and end in Error, which aborts like a failed measurement.
"""

from __future__ import annotations

from collections.abc import Callable

from controller.api import reasons as r
from controller.api.status import AnalysisRunStatus, MetricResult, Phase
from strategies.context import Context

FAILED = ("Failed", "Error")
"""Verdicts that abort: an analysis that errored never promotes."""


def run_evidence(run: AnalysisRunStatus) -> str:
    """The failing metric's own message (the evidence), else the run's message."""
    for metric in run.metrics:
        if metric.phase in ("Failed", "Error", "Inconclusive") and metric.message:
            return metric.message
    for metric in run.metrics:
        if metric.phase in ("Failed", "Error", "Inconclusive"):
            return f"metric {metric.name} {metric.phase.lower()}"
    return run.message or f"analysis {run.key} {run.phase.lower()}"


def unreachable(run: AnalysisRunStatus) -> list[MetricResult]:
    """The run's metrics waiting for a provider that does not answer (still Running)."""
    if run.phase not in ("Running", "Pending"):
        return []
    return [m for m in run.metrics if m.unreachable_since and m.phase in ("Running", "Pending")]


def judge_run(
    ctx: Context,
    run: AnalysisRunStatus | None,
    *,
    where: str,
    fail: Callable[[str], None],
    hold: Callable[[], None],
) -> bool:
    """Apply the rule above to ``run``; True when it decided the pass (abort or pause)."""
    if run is None:
        return False
    tag = f"{where} [analysis {run.key}]"
    if run.phase in FAILED:
        fail(f"{run_evidence(run)} {tag}")
        return True
    if run.phase == "Inconclusive":
        ctx.set_phase(
            Phase.PAUSED,
            r.ANALYSIS_INCONCLUSIVE,
            f"{run_evidence(run)} {tag}; `deployctl retry` to measure again or "
            "`deployctl promote` to accept",
        )
        hold()
        return True
    waiting = unreachable(run)
    if waiting:
        first = min(waiting, key=lambda m: str(m.unreachable_since))
        evidence = first.message or f"metric {first.name}: the provider does not answer"
        ctx.set_phase(
            Phase.PAUSED,
            r.ANALYSIS_PROVIDER_UNREACHABLE,
            f"{evidence} {tag}; paused until the provider answers, then the rollout "
            "continues by itself",
        )
        hold()
        return True
    return False
