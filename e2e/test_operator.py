"""The operator pod is deleted mid-rollout; the standby takes the Lease and finishes it.

Status is the controller's only memory, so the new leader carries on from the step the
old one reached, without restarting the rollout.
"""

from __future__ import annotations

from typing import Any

from kubernetes import client as k8s

from e2e.kind import LEASE_NAME, OPERATOR_NAMESPACE
from e2e.scenarios import canary_strategy, prepare, rollout, wait_new_revision, wait_phase
from tests.integration.harness import Cluster
from tests.waiting import wait_until

# A long pause gives the test a wide window to kill the leader in the middle.
STEPS: list[dict[str, Any]] = [
    {"setWeight": 25},
    {"pause": {"duration": "45s"}},
    {"setWeight": 50},
    {"pause": {"duration": "5s"}},
]


def leader(api: k8s.ApiClient) -> str:
    coordination: Any = k8s.CoordinationV1Api(api)
    lease = coordination.read_namespaced_lease(LEASE_NAME, OPERATOR_NAMESPACE)
    return str(lease.spec.holder_identity or "")


def test_operator_pod_deleted_mid_rollout_and_the_rollout_finishes(cluster: Cluster) -> None:
    strategy = canary_strategy(STEPS)
    prepare(cluster, strategy=strategy)
    cluster.apply_rollout(rollout("v1", strategy=strategy))
    v1 = wait_phase(cluster, "Healthy")["stableRevision"]

    cluster.apply_rollout(rollout("v2", strategy=strategy))
    v2 = wait_new_revision(cluster, v1)["canaryRevision"]
    wait_until(
        lambda: cluster.status("demo"),
        ok=lambda s: s.get("currentStepIndex") == 1 and s.get("phase") == "Paused",
        timeout=120,
        what="the rollout paused at step 1",
    )
    old_leader = leader(cluster.api)
    assert old_leader, "no Lease holder: is leader election on?"
    # The Lease holder identity is the pod name (POD_NAME from the downward API).
    cluster.core.delete_namespaced_pod(old_leader, OPERATOR_NAMESPACE, grace_period_seconds=0)

    wait_until(
        lambda: leader(cluster.api),
        ok=lambda holder: holder not in ("", old_leader),
        timeout=90,
        what="another operator pod holding the Lease",
    )
    promoted = wait_phase(cluster, "Healthy", timeout=300)
    assert promoted["stableRevision"] == v2
    # Carried on from status: the history has one entry for v2, not a restarted rollout.
    entries = [h for h in promoted.get("history", []) if h.get("revision") == v2]
    assert len(entries) <= 1, entries
