"""A StatefulSet canary in numbers: weights to partitions, and the order of a rollback.

A StatefulSet is moved with its own ``updateStrategy.rollingUpdate.partition``: the real
StatefulSet controller updates the pods whose ordinal is at or above the partition and
leaves the others alone, so the canary is always the highest ordinals and deployctl
never deletes a pod the StatefulSet controller would not. Pure arithmetic on what the
reconciler observed (``OrdinalPod`` per ordinal); the reconciler applies the returned
``StatefulSetMove`` by patching the StatefulSet (``Kube.patch_statefulset_partition`` /
``patch_statefulset_template``).

* ``setWeight: w`` (percent) means ``ceil(w x N / 100)`` pods on the new revision,
  counted from ordinal N-1 down: the partition is ``N - ceil(w x N / 100)``. Weight 0
  is partition N (nothing moves), weight 100 is partition 0.
* A step is done once every ordinal at or above the partition runs the new revision and
  is Ready (``canary_move``).
* A rollback puts the previous template back, then lowers the partition one ordinal at
  a time from N-1 down to the lowest updated ordinal, each pod Ready on the old revision
  before the next one is released (``rollback_move``), and ends at partition N.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class OrdinalPod:
    """The pod of one ordinal as observed: its ``controller-revision-hash`` and state."""

    revision: str
    ready: bool
    terminating: bool = False


@dataclass(frozen=True)
class StatefulSetMove:
    """What to ask of the StatefulSet this pass.

    ``partition`` is the value ``updateStrategy.rollingUpdate.partition`` must have;
    ``done`` says the pods are where this move wants them (the step may advance);
    ``waiting_for`` names the ordinal the move waits on (None when done), for status and
    ``deployctl status``.
    """

    partition: int
    done: bool
    waiting_for: int | None = None


def canary_pods(replicas: int, weight: int) -> int:
    """How many pods run the new revision at ``weight`` percent: ``ceil(w x N / 100)``.

    >>> canary_pods(5, 20), canary_pods(5, 60), canary_pods(5, 100), canary_pods(5, 0)
    (1, 3, 5, 0)
    >>> canary_pods(3, 10)  # any weight above 0 moves at least one pod
    1
    """
    if replicas < 0 or not 0 <= weight <= 100:
        raise ValueError(f"replicas {replicas} and weight {weight} out of range")
    return -(-weight * replicas // 100)


def partition_for(replicas: int, weight: int) -> int:
    """The partition that puts ``canary_pods(replicas, weight)`` ordinals on the new revision.

    >>> [partition_for(5, w) for w in (0, 20, 60, 100)]
    [5, 4, 2, 0]
    """
    return replicas - canary_pods(replicas, weight)


def canary_ordinals(replicas: int, weight: int) -> tuple[int, ...]:
    """The ordinals on the new revision at ``weight``, highest first.

    >>> canary_ordinals(5, 60)
    (4, 3, 2)
    """
    return tuple(range(replicas - 1, partition_for(replicas, weight) - 1, -1))


def canary_move(
    replicas: int, weight: int, pods: Mapping[int, OrdinalPod], revision: str
) -> StatefulSetMove:
    """The partition for ``weight``, and whether its ordinals are Ready on ``revision``.

    The StatefulSet controller replaces the ordinals from N-1 down, each Ready before the
    next (OrderedReady), so the one waited on is the highest not there yet.
    """
    return pods_move(replicas, canary_pods(replicas, weight), pods, revision)


def pods_move(
    replicas: int, wanted: int, pods: Mapping[int, OrdinalPod], revision: str
) -> StatefulSetMove:
    """``canary_move`` for ``wanted`` pods on ``revision`` (a strategy's canary count)."""
    partition = replicas - max(0, min(wanted, replicas))
    for ordinal in range(replicas - 1, partition - 1, -1):
        pod = pods.get(ordinal)
        if pod is None or pod.revision != revision or not pod.ready or pod.terminating:
            return StatefulSetMove(partition=partition, done=False, waiting_for=ordinal)
    return StatefulSetMove(partition=partition, done=True)


def updated_ordinals(replicas: int, pods: Mapping[int, OrdinalPod], stable: str) -> list[int]:
    """The ordinals (below ``replicas``) whose pod is not on ``stable``, highest first."""
    return sorted(
        (o for o, p in pods.items() if o < replicas and p.revision != stable), reverse=True
    )


def rollback_move(
    replicas: int, pods: Mapping[int, OrdinalPod], stable: str, *, partition: int
) -> StatefulSetMove:
    """One pass of a rollback, once the previous template is back on the StatefulSet.

    ``partition`` is the StatefulSet's partition as observed. The ordinals at or above the
    lower of it and the lowest ordinal still off ``stable`` are the rollback's; they come
    back one at a time, from N-1 down, each Ready on the old revision before the next is
    released: the partition is lowered to the highest of them not yet back (the
    controller then replaces exactly that pod, as the template is ``stable`` again) and
    held there until its pod is Ready. Why this order and pace:

    * highest first is the order the canary went out in and the StatefulSet controller's
      own order, so the ordinals that were never updated are never restarted, and at
      every moment the pods on the new revision are a contiguous block of the highest
      ordinals (what ``status`` and the analysis expect);
    * one at a time, each Ready before the next, keeps at most one member down whatever
      the StatefulSet's own ``maxUnavailable`` says: a quorum system (etcd, ZooKeeper, a
      replicated database) of N members keeps its majority throughout, and a pod that
      cannot start even on the old revision stops the rollback there, one pod down.

    With every one of them Ready on ``stable`` the rollback is done and the partition
    goes back to N, so a later template change moves nothing until a step asks for it.
    Ordinals below that range are not the rollback's: never waited on, never touched.
    """
    updated = updated_ordinals(replicas, pods, stable)
    floor = min([partition, *updated[-1:]])
    for ordinal in range(replicas - 1, max(floor, 0) - 1, -1):
        pod = pods.get(ordinal)
        if pod is not None and pod.revision == stable and pod.ready and not pod.terminating:
            continue
        return StatefulSetMove(partition=ordinal, done=False, waiting_for=ordinal)
    return StatefulSetMove(partition=replicas, done=True)
