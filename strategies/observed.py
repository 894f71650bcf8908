"""The world as the reconciler observed it, handed to a strategy in one snapshot.

The reconciler builds an ``Observed`` once per pass from its informer caches (ReplicaSets
labelled with their revision, the Services, the HTTPRoute, the request annotation) and
passes it to ``strategies.decide``. Nothing here talks to Kubernetes; tests build these
values by hand.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from controller.requests import Request
from strategies.pacing import RequestCount

__all__ = ["Observed", "Request", "RevisionState"]


@dataclass(frozen=True)
class RevisionState:
    """One ReplicaSet, by its revision hash: what it was asked for and what it has.

    Counted as the Deployment controller counts (``controller.observe`` builds it from
    the pods): ``current`` and ``ready`` are the revision's pods that are not
    terminating (and Ready); ``available`` those Ready for minReadySeconds, **at most
    ``desired``**: pods of a ReplicaSet being scaled down are going away whatever their
    state. ``synced`` is False while the ReplicaSet controller has not yet observed the
    ReplicaSet's current spec (``status.observedGeneration < metadata.generation``); a
    strategy makes no scale-down that spends availability until it has. ``settled`` is
    True once it is synced and has counted exactly ``desired`` pods that are not
    terminating (``status.replicas``): until then the Ready pods seen in the cache may
    be ones it is deleting for an earlier, smaller spec (a stable scaled down for a
    canary's weight and straight back up when that canary is aborted or superseded), so
    no traffic is moved onto them.
    """

    revision: str
    desired: int = 0
    current: int = 0
    ready: int = 0
    available: int = 0
    restarts: int = 0
    crash_looping: bool = False
    synced: bool = True
    settled: bool = True


@dataclass(frozen=True)
class Observed:
    """Everything a strategy may look at besides the Rollout itself."""

    revisions: Mapping[str, RevisionState] = field(default_factory=dict)
    service_selectors: Mapping[str, str | None] = field(default_factory=dict)
    """Service name -> the revision hash its selector names (None: no revision label)."""
    route_weights: Mapping[str, int] | None = None
    """Revision -> backendRef weight on the HTTPRoute; None without traffic routing."""
    request: Request | None = None
    """The pending manual request (``controller.requests.parse_request``), if any."""
    next_available_in: float | None = None
    """Seconds until a Ready pod passes minReadySeconds and becomes available (a timer)."""
    canary_requests: RequestCount | None = None
    """The canary's requests for a step paced by traffic (``strategies.pacing``), counted
    by the reconciler only while such a step is current."""

    def state(self, revision: str | None) -> RevisionState:
        """The revision's ReplicaSet, or an empty one when it does not exist (yet)."""
        if revision is None:
            return RevisionState(revision="")
        return self.revisions.get(revision) or RevisionState(revision=revision)
