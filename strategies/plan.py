"""What a strategy wants: the desired world, the new status and when to look again.

``strategies.decide`` returns a ``Plan``; the reconciler applies it (scale ReplicaSets,
patch Service selectors, set route weights and header/mirror routes through the
router, emit the events, write the status once, requeue after ``requeue_after``). A
Plan is a value: two equal inputs give equal Plans.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from controller.api.rollout import SetHeaderRoute, SetMirrorRoute
from controller.api.status import RolloutStatus


@dataclass(frozen=True)
class PlanEvent:
    """A Kubernetes Event to emit on the Rollout; the message carries the evidence."""

    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass(frozen=True)
class HeaderRoute:
    """Requests matching ``route.match`` go to ``revision`` (the canary), whatever the
    weights."""

    route: SetHeaderRoute
    revision: str


@dataclass(frozen=True)
class MirrorRoute:
    """A copy of ``route.percentage`` (default 100) percent of the requests matching
    ``route.match`` goes to ``revision`` (the canary); they are served as before."""

    route: SetMirrorRoute
    revision: str


@dataclass(frozen=True)
class Plan:
    replicas: Mapping[str, int]
    """Revision -> desired replicas. A revision not listed scales to 0 and may be deleted."""
    service_selectors: Mapping[str, str]
    """Service name -> revision hash its selector must name."""
    route_weights: Mapping[str, int] | None
    """Revision -> HTTPRoute backendRef weight (sums to 100; a baseline's revision is
    listed, with the canary's weight, once its pods can serve); None without traffic
    routing."""
    status: RolloutStatus
    """The whole new status, to be written as is (diffed by the reconciler)."""
    requeue_after: float | None
    """Seconds until the earliest timer fires (pause, deadline, scale-down, promotion)."""
    events: tuple[PlanEvent, ...] = ()
    header_routes: tuple[HeaderRoute, ...] = ()
    """Header routes in force, in the order of ``trafficRouting.managedRoutes``."""
    mirror_routes: tuple[MirrorRoute, ...] = ()
    """Mirror routes in force, in the order of ``trafficRouting.managedRoutes``."""
