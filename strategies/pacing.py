"""Steps paced by traffic: is a ``pause: {untilRequests: N}`` step done?

Pure decision, called by ``strategies.canary`` for a pause step with ``untilRequests``.
The counting is done by the analysis layer (``controller.analysis.pacing``) before the
strategy runs and handed over in ``Observed.canary_requests``; the clock (seconds since
the step began) is passed in.

The rule, in order:

* the canary served ``untilRequests`` since the step began: done;
* ``maxDuration`` passed: pause for a person (``deployctl promote`` to go on anyway,
  ``deployctl abort`` to roll back); never promoted by the clock;
* no request in the last ``noTrafficAfter`` (and the step is at least that old): wait,
  saying "no traffic to the canary for 5m"; the step goes on by itself when traffic
  comes;
* otherwise wait, showing progress ("1,240 of 2,000 requests").

A count Prometheus could not give (no answer, no series yet) is never taken as enough.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from controller.api.duration import format_duration

PaceState = Literal["done", "waiting", "noTraffic", "timedOut", "unmeasured"]


@dataclass(frozen=True)
class RequestCount:
    """What Prometheus said about the canary's requests for the current step.

    ``served``: requests since the step began; ``recent``: requests in the last
    ``noTrafficAfter``; None where there was no answer or no series. ``problem`` says
    why a count is missing when the provider failed.
    """

    step: int
    served: float | None
    recent: float | None
    problem: str | None = None


@dataclass(frozen=True)
class PaceDecision:
    state: PaceState
    message: str

    @property
    def done(self) -> bool:
        return self.state == "done"


def decide_pace(
    count: RequestCount | None,
    *,
    until_requests: int,
    elapsed: float,
    max_duration: float | None,
    no_traffic_after: float,
) -> PaceDecision:
    """Apply the rule above. ``elapsed``: seconds since the step began."""
    served = count.served if count is not None else None
    progress = f"{_count(served or 0)} of {_count(until_requests)} requests"
    if served is not None and served >= until_requests:
        return PaceDecision("done", f"the canary served {progress}")
    if max_duration is not None and elapsed >= max_duration:
        return PaceDecision(
            "timedOut",
            f"the canary served only {progress} in {format_duration(max_duration)} "
            "(maxDuration); `deployctl promote` to go on anyway or `deployctl abort`",
        )
    left = (
        f", {format_duration(float(round(max(max_duration - elapsed, 0))))} left"
        if max_duration
        else ""
    )
    if count is None or count.served is None:
        why = f": {count.problem}" if count is not None and count.problem else ""
        return PaceDecision(
            "unmeasured",
            f"waiting for a count of the canary's requests{why} (0 of "
            f"{_count(until_requests)}{left})",
        )
    if elapsed >= no_traffic_after and not count.recent:
        return PaceDecision(
            "noTraffic",
            f"no traffic to the canary for {format_duration(no_traffic_after)} "
            f"({progress}{left}); is traffic routed to it?",
        )
    return PaceDecision("waiting", f"{progress} served by the canary{left}")


def _count(value: float) -> str:
    """Requests as people read them: 1,240."""
    return f"{int(value):,}"
