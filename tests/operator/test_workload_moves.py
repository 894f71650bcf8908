"""The canary planners and the adapter together, against the real StatefulSet and
DaemonSet controllers: each pass observes the pods, asks ``strategies.statefulset`` or
``strategies.daemonset`` for the move and applies it through ``Kube``, as the reconciler
will once ``workloadRef`` takes these kinds.

- a 5-replica StatefulSet: 20% then 60% walk the partition 4 -> 2; the rollback puts the
  previous template back and brings ordinals 4, 3, 2 back one at a time (partition
  4 -> 3 -> 2 -> 5); ordinals 0 and 1 are never restarted;
- a 10-Node DaemonSet: OnDelete while owned, 20% with a canaryNodeSelector of one zone
  replaces the pods of exactly its first two Nodes, at most one unavailable at a time;
  the rollback replaces only those two, and the user's updateStrategy comes back.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest

from controller.kube import DAEMONSETS, STATEFULSETS, Kube, RetryPolicy
from sandbox.node_agent import NodeAgent
from strategies import daemonset as ds
from strategies import statefulset as sts
from tests.sandbox.fleet import (
    PodSeen,
    all_ready,
    container,
    daemon_set,
    pods_of,
    running_fleet,
    stateful_set,
)
from tests.sandbox.workload_helpers import apps_api, core_api
from tests.waiting import wait_until

FAST_RETRY = RetryPolicy(attempts=4, initial=0.01, maximum=0.05, jitter=0.0)


@pytest.fixture
def kube(control_plane: Any) -> Iterator[Kube]:
    adapter = Kube(control_plane.api_client(), retry=FAST_RETRY)
    yield adapter
    adapter.close()


def ordinals(pods: dict[str, PodSeen], name: str) -> dict[int, sts.OrdinalPod]:
    return {
        int(pod.removeprefix(f"{name}-")): sts.OrdinalPod(
            seen.revision, seen.ready, seen.terminating
        )
        for pod, seen in pods.items()
    }


def test_statefulset_canary_and_rollback_by_partition(
    control_plane: Any, kube_api: Any, kube: Kube, namespace: str
) -> None:
    core, name, replicas = core_api(kube_api), "db", 5
    with running_fleet(control_plane, kube_api, nodes=5, zones=1, prefix="sts") as fleet:
        kube.create_object(
            STATEFULSETS,
            namespace,
            stateful_set(name, replicas=replicas, image="shop/db:v1", fleet=fleet.node_name),
        )
        before = wait_until(
            lambda: pods_of(core, namespace, name),
            ok=lambda pods: all_ready(pods, replicas),
            timeout=120,
            what="5 Ready pods",
        )
        (stable,) = {p.revision for p in before.values()}
        current = kube.get(STATEFULSETS, namespace, name)
        previous = copy.deepcopy(current["spec"]["template"])
        wanted = copy.deepcopy(previous)
        wanted["spec"]["containers"] = [container("shop/db:v2")]
        kube.patch_statefulset_template(current, wanted, partition=replicas)
        canary = wait_until(
            lambda: kube.get(STATEFULSETS, namespace, name)["status"].get("updateRevision"),
            ok=lambda revision: bool(revision) and revision != stable,
            timeout=60,
            what="the new updateRevision",
        )
        partitions: list[int] = []

        def one_pass(plan: Any) -> bool:
            """Observe, plan, apply: one reconcile pass; True when the move is done."""
            pods = pods_of(core, namespace, name)
            assert sum(1 for p in pods.values() if not p.ready or p.terminating) <= 1, pods
            observed = kube.get(STATEFULSETS, namespace, name)
            partition = observed["spec"]["updateStrategy"]["rollingUpdate"]["partition"]
            move: sts.StatefulSetMove = plan(ordinals(pods, name), partition)
            if move.partition != partition:
                kube.patch_statefulset_partition(namespace, name, move.partition)
                partitions.append(move.partition)
                return False
            return move.done

        def step(weight: int) -> bool:
            return one_pass(lambda pods, _p: sts.canary_move(replicas, weight, pods, canary))

        for weight in (20, 60):
            wait_until(
                lambda: step(weight),  # noqa: B023 - called before the loop moves on
                timeout=120,
                interval=0.2,
                what=f"the {weight}% step",
            )
        assert partitions == [4, 2]
        at_60 = pods_of(core, namespace, name)
        assert {o for o, p in ordinals(at_60, name).items() if p.revision == canary} == {2, 3, 4}

        # Analysis failed: the previous template back, with the rollback's first partition.
        first = sts.rollback_move(replicas, ordinals(at_60, name), stable, partition=2)
        assert first.partition == 4
        kube.patch_statefulset_template(
            kube.get(STATEFULSETS, namespace, name), previous, partition=first.partition
        )
        partitions.clear()
        wait_until(
            lambda: one_pass(
                lambda pods, p: sts.rollback_move(replicas, pods, stable, partition=p)
            ),
            timeout=180,
            interval=0.2,
            what="the rollback",
        )
        assert partitions == [3, 2, 5]
        after = pods_of(core, namespace, name)
        assert all(p.revision == stable and p.ready for p in after.values())
        for ordinal in (0, 1):
            assert after[f"{name}-{ordinal}"].uid == before[f"{name}-{ordinal}"].uid


def controller_revision(apps: Any, namespace: str, app: str, *, not_: str) -> str | None:
    """The newest ControllerRevision's hash of the DaemonSet ``app``, if not ``not_``."""
    revisions = apps.list_namespaced_controller_revision(namespace, label_selector=f"app={app}")
    newest = max(revisions.items, key=lambda r: r.revision, default=None)
    value = newest.metadata.labels.get("controller-revision-hash") if newest else None
    return value if value and value != not_ else None


def node_pods(pods: dict[str, PodSeen], fleet: NodeAgent) -> dict[str, ds.NodePod | None]:
    found: dict[str, ds.NodePod | None] = dict.fromkeys(fleet.node_names)
    for name, seen in pods.items():
        # A replacement not bound yet is its Node's pod still missing (the reconciler will
        # read the Node from the pod's affinity; here the Node stays None meanwhile).
        if seen.node:
            found[seen.node] = ds.NodePod(
                name, seen.uid, seen.revision, seen.ready, seen.terminating
            )
    return found


def test_daemonset_canary_on_one_zone_and_rollback(
    control_plane: Any, kube_api: Any, kube: Kube, namespace: str
) -> None:
    apps, core, name = apps_api(kube_api), core_api(kube_api), "shipper"
    users = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}
    with running_fleet(control_plane, kube_api, nodes=10, zones=2, prefix="ds") as fleet:
        body = daemon_set(name, image="shop/shipper:v1", fleet=fleet.node_name)
        body["spec"]["updateStrategy"] = users
        kube.create_object(DAEMONSETS, namespace, body)
        before = wait_until(
            lambda: pods_of(core, namespace, name),
            ok=lambda pods: all_ready(pods, 10),
            timeout=120,
            what="10 Ready pods, one per Node",
        )
        (stable,) = {p.revision for p in before.values()}
        uid_before = {p.node: p.uid for p in before.values()}
        nodes = [ds.NodeInfo(n, fleet.node_labels[n]) for n in fleet.node_names]
        selector = {"topology.kubernetes.io/zone": "zone-b"}

        owned = kube.patch_daemonset_update_strategy(namespace, name, {"type": "OnDelete"})
        previous = copy.deepcopy(owned["spec"]["template"])
        wanted = copy.deepcopy(previous)
        wanted["spec"]["containers"] = [container("shop/shipper:v2")]
        kube.patch_daemonset_template(owned, wanted)
        canary = wait_until(
            lambda: controller_revision(apps, namespace, name, not_=stable),
            timeout=60,
            what="the new ControllerRevision",
        )
        deleted: list[str] = []

        def one_pass(plan: Any) -> bool:
            pods = node_pods(pods_of(core, namespace, name), fleet)
            unavailable = sum(1 for p in pods.values() if p is None or not p.available)
            # maxUnavailable 1, counted over every Node
            assert unavailable <= 1, [(n, p) for n, p in pods.items() if not (p and p.available)]
            move: ds.DaemonSetMove = plan(pods)
            for deletion in move.deletions:
                if kube.delete_pod(namespace, deletion.pod, uid=deletion.uid):
                    deleted.append(deletion.node)
            return move.done and not move.deletions

        wait_until(
            lambda: one_pass(lambda pods: ds.canary_move(nodes, pods, 20, canary, 1, selector)),
            timeout=120,
            interval=0.2,
            what="the 20% step on zone-b",
        )
        chosen = ds.canary_nodes(nodes, 20, selector)
        assert len(chosen) == 2 and all(
            fleet.node_labels[n]["topology.kubernetes.io/zone"] == "zone-b" for n in chosen
        )
        assert sorted(deleted) == sorted(chosen)

        # Rollback: the previous template back, only the updated Nodes replaced.
        kube.patch_daemonset_template(kube.get(DAEMONSETS, namespace, name), previous)
        deleted.clear()
        wait_until(
            lambda: one_pass(lambda pods: ds.rollback_move(pods, stable, 1, rolling_back=chosen)),
            timeout=120,
            interval=0.2,
            what="the rollback",
        )
        assert sorted(deleted) == sorted(chosen)
        restored = kube.patch_daemonset_update_strategy(namespace, name, users)
        assert restored["spec"]["updateStrategy"] == users
        after = pods_of(core, namespace, name)
        assert all(p.revision == stable and p.ready for p in after.values())
        for seen in after.values():
            if seen.node not in chosen:
                assert seen.uid == uid_before[seen.node], seen.node
