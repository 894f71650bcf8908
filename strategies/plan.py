"""What a strategy wants: the desired world, the new status and when to look again.

``strategies.decide`` returns a ``Plan``; the reconciler applies it (scale ReplicaSets,
patch Service selectors and HTTPRoute weights, emit the events, write the status once,
requeue after ``requeue_after``). A Plan is a value: two equal inputs give equal Plans.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from controller.api.status import RolloutStatus


@dataclass(frozen=True)
class PlanEvent:
    """A Kubernetes Event to emit on the Rollout; the message carries the evidence."""

    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass(frozen=True)
class Plan:
    replicas: Mapping[str, int]
    """Revision -> desired replicas. A revision not listed scales to 0 and may be deleted."""
    service_selectors: Mapping[str, str]
    """Service name -> revision hash its selector must name."""
    route_weights: Mapping[str, int] | None
    """Revision -> HTTPRoute backendRef weight (sums to 100); None without traffic routing."""
    status: RolloutStatus
    """The whole new status, to be written as is (diffed by the reconciler)."""
    requeue_after: float | None
    """Seconds until the earliest timer fires (pause, deadline, scale-down, promotion)."""
    events: tuple[PlanEvent, ...] = ()
