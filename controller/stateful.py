"""A Rollout that delivers a StatefulSet (``spec.workloadRef: {kind: StatefulSet}``): pure rules.

No I/O: the reconciler reads the StatefulSet and its pods from informer caches, calls
these functions, and applies the returned ``StatefulSetWrite`` through ``KubeWrites``.
The arithmetic is ``strategies.statefulset``'s; this module maps it onto the Rollout:

- ``resolve``: the Rollout as the canary strategy needs it, with the StatefulSet's pod
  template, selector and replicas, and ``stableScale: full`` (the canary's pods are
  counted on their own: the StatefulSet keeps N pods whatever the partition, so
  ``setWeight: w`` wants ``ceil(w x N / 100)`` canary pods, exactly the ordinals the
  partition ``N - ceil(w x N / 100)`` moves).
- ``revision_of``: the revision under delivery is the StatefulSet's
  ``status.updateRevision``, the value of its pods' ``controller-revision-hash``. After a
  rollback has put the stable template back, the StatefulSet names the stable revision
  again, yet the Rollout still delivers (and refuses) the failed one.
- ``revision_states``: the strategy's per-revision pod counts, from the pods'
  ``controller-revision-hash``.
- ``move``: the partition (and on a rollback the stable template) the pass asks for.
  Every value is computed from the StatefulSet and its pods as observed, so a controller
  killed mid-step computes the same move again: nothing is replaced twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from controller.api import Rollout, RolloutStatus
from controller.api.rollout import LabelSelector
from controller.api.status import StatefulSetStatus
from controller.api.workload_rules import STATEFULSET
from controller.names import REVISION_LABEL
from controller.observe import count_pods
from controller.validation import Problem
from controller.workload import pod_template_of
from strategies import RevisionState
from strategies.statefulset import OrdinalPod, pods_move, rollback_move

Obj = Mapping[str, Any]

CONTROLLER_REVISION_LABEL = "controller-revision-hash"


def resolve(rollout: Rollout, statefulset: Obj | None) -> tuple[Rollout | None, list[Problem]]:
    """``rollout`` with the StatefulSet's template, selector and size; or the problems."""
    ref = rollout.spec.workload_ref
    assert ref is not None
    found, problems = pod_template_of(rollout, "StatefulSet", statefulset)
    if found is None or statefulset is None:
        return None, problems
    template, match_labels = found
    strategy = (statefulset.get("spec") or {}).get("updateStrategy") or {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate":
        return None, [
            Problem(
                "spec.workloadRef",
                f"StatefulSet {ref.name!r} has updateStrategy {strategy.get('type')}; a "
                "Rollout moves a StatefulSet by its RollingUpdate partition: set "
                "updateStrategy.type RollingUpdate",
            )
        ]
    strategy_spec = rollout.spec.strategy
    canary = strategy_spec.canary
    if canary is not None:
        strategy_spec = strategy_spec.model_copy(
            update={"canary": canary.model_copy(update={"stable_scale": "full"})}
        )
    update: dict[str, Any] = {
        "template": template,
        "selector": LabelSelector(match_labels=match_labels),
        "replicas": replicas_of(statefulset),
        "strategy": strategy_spec,
    }
    return rollout.model_copy(update={"spec": rollout.spec.model_copy(update=update)}), []


def replicas_of(statefulset: Obj) -> int:
    return int((statefulset.get("spec") or {}).get("replicas", 1) or 0)


def partition_of(statefulset: Obj) -> int:
    strategy = (statefulset.get("spec") or {}).get("updateStrategy") or {}
    return int((strategy.get("rollingUpdate") or {}).get("partition", 0) or 0)


def synced(statefulset: Obj) -> bool:
    """The StatefulSet controller has seen the StatefulSet's current spec (its
    ``updateRevision`` is the current template's)."""
    meta, status = statefulset.get("metadata") or {}, statefulset.get("status") or {}
    return int(status.get("observedGeneration", 0) or 0) >= int(meta.get("generation", 0) or 0)


def revision_of(statefulset: Obj, status: RolloutStatus | None) -> str | None:
    """The revision the Rollout delivers; None until the StatefulSet controller has seen
    the StatefulSet's current template."""
    update = (statefulset.get("status") or {}).get("updateRevision")
    if not update or not synced(statefulset):
        return None
    if (
        status is not None
        and status.aborted
        and status.canary_revision
        and update == status.stable_revision
    ):
        # The rollback wrote the stable template back: still the refused revision.
        return status.canary_revision
    return str(update)


def owned_by(owner: Obj, objects: Iterable[Obj]) -> list[Obj]:
    """Those of ``objects`` (pods, ControllerRevisions) ``owner`` owns, by its UID: a
    selector alone also matches another workload's, with another application's template,
    whose labels happen to match."""
    uid = (owner.get("metadata") or {}).get("uid")
    return [
        found
        for found in objects
        if any(
            o.get("uid") == uid for o in (found.get("metadata") or {}).get("ownerReferences") or []
        )
    ]


def pods_of(statefulset: Obj, pods: Iterable[Obj]) -> list[Obj]:
    """The pods the StatefulSet owns (by its UID), among ``pods``."""
    return owned_by(statefulset, pods)


def owned_revision(workload: Obj, kind: str, revisions: Iterable[Obj], revision: str) -> str | None:
    """The name of the ControllerRevision of ``workload`` (a StatefulSet or a DaemonSet,
    ``kind``) that stores ``revision``, among ``revisions``; None if it owns none. A
    StatefulSet's revision is that ControllerRevision's name, a DaemonSet's the
    ControllerRevision's ``controller-revision-hash`` label (its pods' label)."""
    for found in owned_by(workload, revisions):
        meta = found.get("metadata") or {}
        key = (
            meta.get("name")
            if kind == STATEFULSET
            else (meta.get("labels") or {}).get(CONTROLLER_REVISION_LABEL)
        )
        if key == revision:
            return str(meta.get("name"))
    return None


def ordinal_of(pod: Obj, name: str) -> int | None:
    suffix = str((pod.get("metadata") or {}).get("name", "")).removeprefix(f"{name}-")
    return int(suffix) if suffix.isdigit() else None


def pod_ready(pod: Obj) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


def ordinal_pods(name: str, pods: Iterable[Obj]) -> dict[int, OrdinalPod]:
    """Each ordinal's pod as ``strategies.statefulset`` takes it."""
    found: dict[int, OrdinalPod] = {}
    for pod in pods:
        ordinal = ordinal_of(pod, name)
        meta = pod.get("metadata") or {}
        if ordinal is None:
            continue
        found[ordinal] = OrdinalPod(
            revision=str((meta.get("labels") or {}).get(CONTROLLER_REVISION_LABEL, "")),
            ready=pod_ready(pod),
            terminating=bool(meta.get("deletionTimestamp")),
        )
    return found


def revision_states(
    pods: Iterable[Obj], *, replicas: int, now: datetime, min_ready_seconds: int
) -> dict[str, RevisionState]:
    """Per revision, its pods counted as ``controller.observe`` counts a ReplicaSet's.
    Each revision may have all N pods (``desired``): which ordinals run it is the
    partition's business, not a ReplicaSet size."""
    relabelled = [
        {
            **pod,
            "metadata": {
                **(pod.get("metadata") or {}),
                "labels": {
                    REVISION_LABEL: ((pod.get("metadata") or {}).get("labels") or {}).get(
                        CONTROLLER_REVISION_LABEL, ""
                    )
                },
            },
        }
        for pod in pods
    ]
    counts = count_pods(relabelled, now=now, min_ready_seconds=min_ready_seconds)
    return {
        revision: RevisionState(
            revision=revision,
            desired=replicas,
            current=count.current,
            ready=count.ready,
            available=min(replicas, count.available),
            restarts=count.restarts,
            crash_looping=count.crashing,
        )
        for revision, count in counts.items()
    }


def _stuck(
    pods: Iterable[Obj], name: str, ordinal: int | None, stable: str, *, partition: int
) -> tuple[str, str] | None:
    """The pod of ``ordinal`` when the rollback waits on it and it is off ``stable`` and
    not Ready: under OrderedReady the StatefulSet controller waits for every pod to be
    Ready before it replaces any, so a canary that never became Ready (crash loop, bad
    image) would hold the rollback for ever. Deleting it is the replacement the
    controller would make itself (the ordinal is at or above the partition and the
    template is stable's): it comes back on the stable revision."""
    if ordinal is None or ordinal < partition:
        return None
    for pod in pods:
        meta = pod.get("metadata") or {}
        labels = meta.get("labels") or {}
        if ordinal_of(pod, name) != ordinal or meta.get("deletionTimestamp"):
            continue
        if labels.get(CONTROLLER_REVISION_LABEL) != stable and not pod_ready(pod):
            return str(meta.get("name")), str(meta.get("uid"))
    return None


@dataclass(frozen=True)
class StatefulSetWrite:
    """What the pass writes to the StatefulSet: nothing, a partition, or (a rollback's
    first write) the stable template with the partition in the same patch."""

    partition: int | None = None
    template_of: str | None = None
    """Put the template of this ControllerRevision (the stable one) back."""
    status: StatefulSetStatus | None = None
    delete: tuple[str, str] | None = None
    """(pod name, UID): a rolled-back ordinal's pod that never became Ready."""


def move(
    statefulset: Obj,
    pods: Iterable[Obj],
    status: RolloutStatus,
    *,
    canary_pods: int,
) -> StatefulSetWrite:
    """The write for this pass, from the plan's ``status`` and its canary pod count.

    * aborted: the stable template back (partition N-1 in the same write), then
      ``rollback_move`` walks the partition down one ordinal at a time, each Ready on
      the stable revision before the next, and ends at N;
    * a canary in flight: ``canary_move`` for ``canary_pods`` (the plan's count,
      ``ceil(w x N / 100)``) sets the partition;
    * nothing in flight: partition 0 until every pod runs the stable revision, then N,
      so that a later template change moves nothing until a step asks for it.
    """
    name = str((statefulset.get("metadata") or {}).get("name"))
    replicas, partition = replicas_of(statefulset), partition_of(statefulset)
    update = str((statefulset.get("status") or {}).get("updateRevision") or "")
    pods = list(pods)
    ordinals = ordinal_pods(name, pods)
    stable, canary = status.stable_revision, status.canary_revision
    by_revision: dict[str, list[int]] = {}
    for ordinal, pod in sorted(ordinals.items()):
        by_revision.setdefault(pod.revision, []).append(ordinal)

    def write(
        wanted: int | None, moving: str, waiting: int | None, template: str | None = None
    ) -> StatefulSetWrite:
        state = StatefulSetStatus(
            name=name,
            replicas=replicas,
            partition=partition if wanted is None else wanted,
            ordinals=by_revision,
            moving=moving,
            waiting_for=waiting,
        )
        changed = wanted if wanted is not None and wanted != partition else None
        return StatefulSetWrite(partition=changed, template_of=template, status=state)

    if stable is None or not synced(statefulset):
        return write(None, "AtRest", None)
    if status.aborted and canary and canary != stable:
        if update != stable:
            first = rollback_move(replicas, ordinals, stable, partition=partition)
            # The stable template back, with the rollback's first partition: never lower
            # than the current one, so no ordinal below moves onto the refused revision.
            wanted = max(first.partition, partition)
            return write(wanted, "RollingBack", first.waiting_for, stable)
        back = rollback_move(replicas, ordinals, stable, partition=partition)
        rolled = write(back.partition, "AtRest" if back.done else "RollingBack", back.waiting_for)
        stuck = _stuck(pods, name, back.waiting_for, stable, partition=back.partition)
        return replace(rolled, delete=stuck) if stuck else rolled
    if canary and canary != stable:
        if update != canary:
            return write(None, "Canary", None)  # the controller has not taken the template in
        step = pods_move(replicas, canary_pods, ordinals, canary)
        return write(step.partition, "Canary", step.waiting_for)
    if update != stable:
        return write(None, "AtRest", None)
    everything = len(ordinals) >= replicas
    if everything and all(p.revision == stable and p.ready for p in ordinals.values()):
        return write(replicas, "AtRest", None)
    return write(min(partition, 0), "Promoting", None)
