"""Build the strategy's snapshot of the world from the informer caches (no I/O).

The reconciler calls ``observe`` once per pass. It reads only cached objects: the
ReplicaSets and pods labelled with the rollout, the Services the strategy names, and the
stable and canary weights the traffic router reads back (``controller.routers``). The
result is a ``strategies.Observed``, whose pod counts follow the Deployment controller's
rules (``revision_states``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from controller.api import Rollout
from controller.api.status import RolloutStatus
from controller.names import REVISION_LABEL
from controller.requests import parse_request
from controller.times import parse_timestamp
from strategies import Observed, RevisionState

# Waiting reasons after which a container will not come up by itself.
CRASH_REASONS = frozenset(
    {"CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull", "CreateContainerConfigError"}
)
# Restarts of one pod beyond which a revision counts as crashing even between back-offs.
CRASH_RESTARTS = 3

Obj = Mapping[str, Any]


@dataclass
class _PodCounts:
    current: int = 0
    ready: int = 0
    available: int = 0
    restarts: int = 0
    crashing: bool = False
    next_available_in: float | None = None


def _ready_since(pod: Obj) -> datetime | None:
    """When the pod last became Ready, or None when it is not Ready."""
    for condition in pod.get("status", {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            if condition.get("status") != "True":
                return None
            stamp = condition.get("lastTransitionTime")
            return parse_timestamp(stamp) if stamp else datetime.min.replace(tzinfo=UTC)
    return None


def count_pods(
    pods: Iterable[Obj], *, now: datetime, min_ready_seconds: int
) -> dict[str, _PodCounts]:
    """Per revision: pods not terminating, Ready, available (Ready minReadySeconds)."""
    counts: dict[str, _PodCounts] = {}
    for pod in pods:
        meta = pod.get("metadata", {})
        revision = meta.get("labels", {}).get(REVISION_LABEL)
        # A terminating pod never counts: it is going away whatever its conditions say.
        if not revision or meta.get("deletionTimestamp"):
            continue
        if pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
            continue
        count = counts.setdefault(revision, _PodCounts())
        count.current += 1
        for container in pod.get("status", {}).get("containerStatuses") or []:
            restarts = int(container.get("restartCount", 0))
            count.restarts += restarts
            waiting = (container.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") in CRASH_REASONS or restarts >= CRASH_RESTARTS:
                count.crashing = True
        ready_since = _ready_since(pod)
        if ready_since is None:
            continue
        count.ready += 1
        # As the Deployment controller's IsPodAvailable: Ready for minReadySeconds.
        left = min_ready_seconds - (now - ready_since).total_seconds()
        if min_ready_seconds == 0 or left < 0:
            count.available += 1
        elif count.next_available_in is None or left < count.next_available_in:
            count.next_available_in = left
    return counts


def revision_states(
    replicasets: Iterable[Obj],
    pods: Iterable[Obj],
    *,
    now: datetime,
    min_ready_seconds: int = 0,
) -> dict[str, RevisionState]:
    """Each revision's ReplicaSet, with its pods counted as the Deployment controller
    counts them (see ``strategies.observed.RevisionState``).

    Availability comes from the pods, not from ReplicaSet status: status is written by
    the ReplicaSet controller after it acts, so right after a scale-down it still counts
    pods it has just been told to delete. A pod cache that lags only undercounts Ready
    pods, and capping each revision at its ``spec.replicas`` discounts the pods of a
    ReplicaSet that is shrinking.
    """
    return _states(replicasets, count_pods(pods, now=now, min_ready_seconds=min_ready_seconds))


def _states(
    replicasets: Iterable[Obj], counts: Mapping[str, _PodCounts]
) -> dict[str, RevisionState]:
    states: dict[str, RevisionState] = {}
    for rs in replicasets:
        meta = rs.get("metadata", {})
        revision = meta.get("labels", {}).get(REVISION_LABEL)
        if not revision:
            continue
        desired = int(rs.get("spec", {}).get("replicas", 0))
        rs_status = rs.get("status") or {}
        observed = rs_status.get("observedGeneration")
        generation = meta.get("generation")
        count = counts.get(revision, _PodCounts())
        synced = generation is None or (observed is not None and observed >= generation)
        states[revision] = RevisionState(
            revision=revision,
            desired=desired,
            current=count.current,
            ready=count.ready,
            available=min(desired, count.available),
            restarts=count.restarts,
            crash_looping=count.crashing,
            synced=synced,
            settled=synced and int(rs_status.get("replicas") or 0) == desired,
        )
    return states


def observe(
    rollout: Rollout,
    *,
    status: RolloutStatus,
    replicasets: Iterable[Obj],
    pods: Iterable[Obj],
    services: Mapping[str, Obj],
    router_weights: Mapping[str, int] | None,
    now: datetime,
) -> Observed:
    """The snapshot a strategy decides on. ``services`` maps name -> cached Service;
    ``router_weights`` is ``{"stable": w, "canary": w}`` as the router reads them."""
    selectors: dict[str, str | None] = {}
    for name in rollout.spec.strategy.service_names:
        service = services.get(name)
        if service is not None:
            selectors[name] = (service.get("spec", {}).get("selector") or {}).get(REVISION_LABEL)
    route_weights: dict[str, int] | None = None
    if router_weights is not None:
        route_weights = {}
        for role, revision in (
            ("stable", status.stable_revision),
            ("canary", status.canary_revision),
        ):
            if revision and role in router_weights:
                route_weights[revision] = route_weights.get(revision, 0) + router_weights[role]
    counts = count_pods(pods, now=now, min_ready_seconds=rollout.spec.min_ready_seconds)
    waits = [c.next_available_in for c in counts.values() if c.next_available_in is not None]
    return Observed(
        revisions=_states(replicasets, counts),
        service_selectors=selectors,
        route_weights=route_weights,
        request=parse_request(rollout.metadata.annotations),
        next_available_in=min(waits) if waits else None,
    )
