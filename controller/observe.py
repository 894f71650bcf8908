"""Build the strategy's snapshot of the world from the informer caches (no I/O).

The reconciler calls ``observe`` once per pass. It reads only cached objects: the
ReplicaSets and pods labelled with the rollout, the Services the strategy names, and the
HTTPRoute when traffic routing is used. The result is a ``strategies.Observed``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from controller.api import Rollout
from controller.api.status import RolloutStatus
from controller.kube.routes import backend_weights
from controller.names import REVISION_LABEL
from controller.requests import parse_request
from strategies import Observed, RevisionState

# Waiting reasons after which a container will not come up by itself.
CRASH_REASONS = frozenset(
    {"CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull", "CreateContainerConfigError"}
)
# Restarts of one pod beyond which a revision counts as crashing even between back-offs.
CRASH_RESTARTS = 3

Obj = Mapping[str, Any]


def revision_states(replicasets: Iterable[Obj], pods: Iterable[Obj]) -> dict[str, RevisionState]:
    restarts: dict[str, int] = {}
    crashing: dict[str, bool] = {}
    for pod in pods:
        revision = pod.get("metadata", {}).get("labels", {}).get(REVISION_LABEL)
        if not revision or pod.get("metadata", {}).get("deletionTimestamp"):
            continue
        for container in pod.get("status", {}).get("containerStatuses") or []:
            count = int(container.get("restartCount", 0))
            restarts[revision] = restarts.get(revision, 0) + count
            waiting = (container.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") in CRASH_REASONS or count >= CRASH_RESTARTS:
                crashing[revision] = True
    states: dict[str, RevisionState] = {}
    for rs in replicasets:
        revision = rs.get("metadata", {}).get("labels", {}).get(REVISION_LABEL)
        if not revision:
            continue
        status = rs.get("status") or {}
        states[revision] = RevisionState(
            revision=revision,
            desired=int(rs.get("spec", {}).get("replicas", 0)),
            current=int(status.get("replicas", 0)),
            ready=int(status.get("readyReplicas", 0)),
            available=int(status.get("availableReplicas", 0)),
            restarts=restarts.get(revision, 0),
            crash_looping=crashing.get(revision, False),
        )
    return states


def observe(
    rollout: Rollout,
    *,
    status: RolloutStatus,
    replicasets: Iterable[Obj],
    pods: Iterable[Obj],
    services: Mapping[str, Obj],
    route: Obj | None,
) -> Observed:
    """The snapshot a strategy decides on. ``services`` maps name -> cached Service."""
    selectors: dict[str, str | None] = {}
    for name in rollout.spec.strategy.service_names:
        service = services.get(name)
        if service is not None:
            selectors[name] = (service.get("spec", {}).get("selector") or {}).get(REVISION_LABEL)
    route_weights: dict[str, int] | None = None
    canary = rollout.spec.strategy.canary
    if route is not None and canary is not None and canary.stable_service:
        by_service = backend_weights(route)
        route_weights = {}
        for backend, revision in (
            (canary.stable_service, status.stable_revision),
            (canary.canary_service, status.canary_revision),
        ):
            if revision and backend and backend in by_service:
                route_weights[revision] = route_weights.get(revision, 0) + by_service[backend]
    return Observed(
        revisions=revision_states(replicasets, pods),
        service_selectors=selectors,
        route_weights=route_weights,
        request=parse_request(rollout.metadata.annotations),
    )
