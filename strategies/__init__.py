"""Pure decision code: given a Rollout, what was observed and the time, return a Plan.

The reconciler calls ``decide`` once per pass; ``deployctl plan`` calls
``strategies.preview.preview``. Nothing in this package performs I/O or reads a clock
(an import-linter contract keeps the Kubernetes and Prometheus clients out), so every
behaviour is tested with plain values.

Contract with the reconciler:

* ``observed`` describes the ReplicaSets by revision, the Services' selected revision,
  the HTTPRoute weights and the pending manual request (``strategies.observed``).
* The returned ``Plan`` gives replicas per revision (revisions not listed go to 0),
  Service selectors, route weights, the whole new status, events and
  ``requeue_after`` (``strategies.plan``).
* Analysis is started and stopped by listing runs in ``status.analysisRuns``; the
  analysis engine measures the runs in phase Running and writes their verdicts.
"""

from __future__ import annotations

from datetime import datetime

from controller.api import Rollout
from strategies.bluegreen import plan_blue_green
from strategies.canary import plan_canary
from strategies.context import Context
from strategies.observed import Observed, Request, RevisionState
from strategies.plan import Plan, PlanEvent
from strategies.rolling import plan_rolling

__all__ = ["Observed", "Plan", "PlanEvent", "Request", "RevisionState", "decide"]


def decide(rollout: Rollout, observed: Observed, *, now: datetime, revision: str) -> Plan:
    """One pass of ``rollout``'s strategy. ``revision`` is ``template_hash(spec.template)``."""
    ctx = Context.start(rollout, observed, now=now, revision=revision)
    strategy = rollout.spec.strategy
    if strategy.canary is not None:
        return plan_canary(ctx)
    if strategy.blue_green is not None:
        return plan_blue_green(ctx)
    return plan_rolling(ctx)
