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

import importlib
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from controller.api import Rollout
    from strategies.observed import Observed, Request, RevisionState
    from strategies.plan import Plan, PlanEvent

__all__ = ["Observed", "Plan", "PlanEvent", "Request", "RevisionState", "decide"]

# Imported on first use, so that a light module of this package (``runkeys`` for the
# CLI's status view) does not load the planners and the API models with it.
_LAZY = {
    "Observed": "strategies.observed",
    "Request": "strategies.observed",
    "RevisionState": "strategies.observed",
    "Plan": "strategies.plan",
    "PlanEvent": "strategies.plan",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'strategies' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def decide(rollout: Rollout, observed: Observed, *, now: datetime, revision: str) -> Plan:
    """One pass of ``rollout``'s strategy. ``revision`` is ``template_hash(spec.template)``."""
    from strategies.bluegreen import plan_blue_green
    from strategies.canary import plan_canary
    from strategies.context import Context
    from strategies.rolling import plan_rolling

    ctx = Context.start(rollout, observed, now=now, revision=revision)
    strategy = rollout.spec.strategy
    if strategy.canary is not None:
        return plan_canary(ctx)
    if strategy.blue_green is not None:
        return plan_blue_green(ctx)
    return plan_rolling(ctx)
