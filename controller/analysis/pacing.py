"""Count the canary's requests for a step paced by traffic (``untilRequests`` on a pause
or analysis step).

Called by the reconciler before the strategy decides, only while the current canary
step is paced (a pause or an analysis with untilRequests); the decision itself is
``strategies.pacing``. Two instant queries on the request counter, scoped to the canary
revision like the presets (namespace and revision labels, values escaped by
``templating.render``)::

    served: sum(increase(http_requests_total{namespace="..",revision=".."}[<since the step began>]))
    recent: sum(increase(http_requests_total{namespace="..",revision=".."}[<noTrafficAfter>]))

``increase()`` extrapolates to the window's edges and cannot see requests served
before a new pod's first scrape, so the count is approximate by a scrape interval's
worth of requests at either end; ``untilRequests`` is a floor for a sample size, not
an exact tally.
"""

from __future__ import annotations

from dataclasses import dataclass

from controller.analysis.run import Measurer
from controller.analysis.templating import QueryContext, TemplateError, render
from controller.analysis.values import QueryFailure
from controller.api.duration import format_duration
from controller.api.rollout import Pacing

# A range shorter than two scrapes gives increase() nothing to work with. A step younger
# than this has served 0 so far (a longer range would count requests from before it
# began); the model keeps noTrafficAfter at least this long.
SHORTEST_RANGE = 30.0
TIMEOUT = 10.0


def requests_query(pause: Pacing, seconds: float) -> str:
    """The template counting the canary's requests over the last ``seconds``."""
    scope = (
        f'{pause.namespace_label}="{{{{rollout.namespace}}}}",'
        f'{pause.revision_label}="{{{{canary.hash}}}}"'
    )
    window = format_duration(float(round(seconds)))
    return f"sum(increase({pause.requests_metric}{{{scope}}}[{window}]))"


@dataclass(frozen=True)
class Counted:
    """``served`` since the step began and ``recent`` over noTrafficAfter (None: no
    answer, and ``problem`` says why; no series counts 0)."""

    served: float | None
    recent: float | None
    problem: str | None = None


def count_requests(
    measurer: Measurer,
    pause: Pacing,
    *,
    context: QueryContext,
    elapsed: float,
    address: str | None = None,
) -> Counted:
    """Ask Prometheus for the two counts; never raises."""
    values: list[float | None] = []
    # Traffic before the step is still traffic: only `served` may not look back past it.
    for seconds in (elapsed, pause.no_traffic_after):
        if seconds < SHORTEST_RANGE:
            values.append(0.0)
            continue
        try:
            promql = render(requests_query(pause, seconds), context)
        except TemplateError as exc:
            return Counted(None, None, str(exc))
        outcome = measurer.measure(promql, address=address, timeout=TIMEOUT, budget=TIMEOUT)
        if isinstance(outcome, QueryFailure):
            return Counted(None, None, outcome.message)
        # No series: the canary's pods never counted a request (the counter appears
        # with the first one), which is no traffic, not a missing answer.
        values.append(outcome.samples[0].value if outcome.samples else 0.0)
    served, recent = values
    return Counted(served=served, recent=recent)
