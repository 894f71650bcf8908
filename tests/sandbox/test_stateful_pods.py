"""StatefulSet and DaemonSet pods on the sandbox: the real controllers, the agent's Nodes.

kube-controller-manager's own StatefulSet and DaemonSet controllers create the pods; the
node agent (one agent playing several Nodes) binds and runs them. What a progressive
delivery of these workloads relies on is proved here against the real controllers:

- a StatefulSet's ``rollingUpdate.partition`` moves exactly the ordinals N-1 down to the
  partition onto the new revision (their ``controller-revision-hash`` changes, the other
  pods keep their UIDs), and the previous template put back returns them, highest first;
- a DaemonSet with ``OnDelete`` replaces only the pods we delete, each on its own Node
  and on the new revision; the others keep their UIDs.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from sandbox.node_agent import AGENT_LABEL, ZONE_LABEL, NodeAgent
from tests.fixtures_cluster import Watch
from tests.sandbox.fleet import (
    PodSeen,
    all_ready,
    container,
    daemon_set,
    pods_of,
    running_fleet,
    stateful_set,
)
from tests.sandbox.workload_helpers import apps_api, core_api, get
from tests.waiting import wait_until


@pytest.fixture
def fleet(control_plane: Any, kube_api: Any) -> Iterator[NodeAgent]:
    with running_fleet(control_plane, kube_api) as agent:
        yield agent


def test_the_agent_plays_ten_nodes_in_two_zones(fleet: NodeAgent, kube_api: Any) -> None:
    core = core_api(kube_api)
    nodes = core.list_node(label_selector=f"{AGENT_LABEL}={fleet.node_name}").items
    assert sorted(n.metadata.name for n in nodes) == sorted(fleet.node_names)
    assert len(set(fleet.node_names)) == 10
    zones = [n.metadata.labels[ZONE_LABEL] for n in nodes]
    assert sorted(set(zones)) == ["zone-a", "zone-b"] and zones.count("zone-a") == 5
    for node in nodes:
        ready = {c.type: c.status for c in node.status.conditions}["Ready"]
        assert ready == "True", node.metadata.name
        assert node.metadata.labels["kubernetes.io/hostname"] == node.metadata.name


def test_statefulset_partition_moves_only_the_highest_ordinals(
    fleet: NodeAgent, kube_api: Any, namespace: str
) -> None:
    apps, core = apps_api(kube_api), core_api(kube_api)
    name = "db"
    apps.create_namespaced_stateful_set(
        namespace, stateful_set(name, replicas=5, image="shop/db:v1", fleet=fleet.node_name)
    )
    before = wait_until(
        lambda: pods_of(core, namespace, name),
        ok=lambda pods: all_ready(pods, 5),
        timeout=90,
        what="5 Ready StatefulSet pods",
    )
    # Stable names and hostnames, each pod on one of the fleet's Nodes.
    assert sorted(before) == [f"{name}-{i}" for i in range(5)]
    assert all(p.hostname == n and p.node in fleet.node_names for n, p in before.items())
    (old_revision,) = {p.revision for p in before.values()}

    # A new template held at partition 5 moves nothing; partition 2 moves ordinals 4, 3, 2.
    apps.patch_namespaced_stateful_set(
        name,
        namespace,
        {
            "spec": {
                "updateStrategy": {"rollingUpdate": {"partition": 5}},
                "template": {"spec": {"containers": [container("shop/db:v2")]}},
            }
        },
    )
    # A StatefulSet pod's controller-revision-hash is its ControllerRevision's name
    # (``db-<hash>``), what status.updateRevision names.
    assert old_revision.startswith(f"{name}-")
    new_revision = wait_until(
        lambda: apps.read_namespaced_stateful_set_status(name, namespace).status.update_revision,
        ok=lambda revision: revision and revision != old_revision,
        timeout=60,
        what="the StatefulSet's new updateRevision",
    )
    assert pods_of(core, namespace, name) == before, "partition 5 must move no pod"

    apps.patch_namespaced_stateful_set(
        name, namespace, {"spec": {"updateStrategy": {"rollingUpdate": {"partition": 2}}}}
    )
    moved = wait_until(
        lambda: pods_of(core, namespace, name),
        ok=lambda pods: (
            all_ready(pods, 5)
            and all(pods[f"{name}-{i}"].revision == new_revision for i in (2, 3, 4))
        ),
        timeout=120,
        what="ordinals 4, 3, 2 Ready on the new revision",
    )
    for ordinal in (0, 1):
        assert moved[f"{name}-{ordinal}"] == before[f"{name}-{ordinal}"], ordinal
    for ordinal in (2, 3, 4):
        assert moved[f"{name}-{ordinal}"].uid != before[f"{name}-{ordinal}"].uid

    # Rollback: the previous template back; the controller returns ordinals 4, 3, 2 to
    # the old revision (the same hash), highest first, and never touches 0 and 1.
    deletions: list[str] = []
    stream = Watch()
    listing = core.list_namespaced_pod(namespace, label_selector=f"app={name}")

    stopping = threading.Event()

    def record() -> None:
        try:
            for event in stream.stream(
                core.list_namespaced_pod,
                namespace,
                label_selector=f"app={name}",
                resource_version=listing.metadata.resource_version,
                timeout_seconds=180,
            ):
                if event["type"] == "DELETED":
                    deletions.append(event["object"].metadata.name)
        except Exception:
            if not stopping.is_set():  # a stream cut by stop() is the expected end
                raise

    recorder = threading.Thread(target=record, daemon=True)
    recorder.start()
    try:
        apps.patch_namespaced_stateful_set(
            name,
            namespace,
            {"spec": {"template": {"spec": {"containers": [container("shop/db:v1")]}}}},
        )
        back = wait_until(
            lambda: pods_of(core, namespace, name),
            ok=lambda pods: (
                all_ready(pods, 5) and all(p.revision == old_revision for p in pods.values())
            ),
            timeout=120,
            what="every ordinal Ready on the old revision",
        )
        wait_until(lambda: len(deletions) >= 3, timeout=30, what="the three deletions seen")
    finally:
        stopping.set()
        stream.stop()
    assert deletions[:3] == [f"{name}-4", f"{name}-3", f"{name}-2"]
    for ordinal in (0, 1):
        assert back[f"{name}-{ordinal}"] == before[f"{name}-{ordinal}"], ordinal


def test_daemonset_on_delete_replaces_only_the_deleted_pods(
    fleet: NodeAgent, kube_api: Any, namespace: str
) -> None:
    apps, core = apps_api(kube_api), core_api(kube_api)
    name = "agent"
    apps.create_namespaced_daemon_set(
        namespace, daemon_set(name, image="shop/agent:v1", fleet=fleet.node_name)
    )
    before = wait_until(
        lambda: pods_of(core, namespace, name),
        ok=lambda pods: all_ready(pods, 10),
        timeout=120,
        what="one Ready DaemonSet pod on each of the 10 Nodes",
    )
    # One pod per Node: the agent honoured each pod's node affinity.
    assert sorted(p.node for p in before.values()) == sorted(fleet.node_names)
    (old_revision,) = {p.revision for p in before.values()}

    apps.patch_namespaced_daemon_set(
        name,
        namespace,
        {"spec": {"template": {"spec": {"containers": [container("shop/agent:v2")]}}}},
    )
    wait_until(
        lambda: apps.read_namespaced_daemon_set_status(name, namespace).status,
        ok=lambda status: status.observed_generation == 2,
        timeout=60,
        what="the DaemonSet controller to see the new template",
    )
    assert pods_of(core, namespace, name) == before, "OnDelete must replace nothing by itself"

    by_node = {p.node: (pod, p) for pod, p in before.items()}
    canary_nodes = sorted(fleet.node_names)[:2]
    for node in canary_nodes:
        pod, seen = by_node[node]
        core.delete_namespaced_pod(pod, namespace, body={"preconditions": {"uid": seen.uid}})

    def on_node(pods: dict[str, PodSeen]) -> dict[str, PodSeen]:
        return {p.node: p for p in pods.values()}

    after = wait_until(
        lambda: pods_of(core, namespace, name),
        ok=lambda pods: (
            all_ready(pods, 10)
            and all(on_node(pods)[n].revision != old_revision for n in canary_nodes)
        ),
        timeout=120,
        what="the two deleted pods replaced on the new revision",
    )
    nodes_after = on_node(after)
    assert sorted(nodes_after) == sorted(fleet.node_names)
    new_revisions = {nodes_after[n].revision for n in canary_nodes}
    assert len(new_revisions) == 1 and old_revision not in new_revisions
    for node in fleet.node_names:
        if node in canary_nodes:
            assert nodes_after[node].uid != by_node[node][1].uid
        else:
            assert nodes_after[node] == by_node[node][1], node


def test_statefulset_pods_run_as_processes_with_their_revision_in_file_sd(
    control_plane: Any, kube_api: Any, namespace: str, tmp_path: Any
) -> None:
    """With processes, a StatefulSet pod's scrape target carries controller_revision_hash
    (what analysis of a StatefulSet or DaemonSet canary selects by) and its hostname."""
    apps, core = apps_api(kube_api), core_api(kube_api)
    agent = NodeAgent(
        control_plane.api_client(),
        node_name=f"proc-{secrets.token_hex(3)}",
        nodes=2,
        run_processes=True,
        file_sd_dir=tmp_path / "sd",
        log_dir=tmp_path / "logs",
    )
    try:
        agent.start()
        apps.create_namespaced_stateful_set(
            namespace,
            stateful_set("cache", replicas=2, image="shop/cache:v1", fleet=agent.node_name),
        )
        pods = wait_until(
            lambda: pods_of(core, namespace, "cache"),
            ok=lambda pods: all_ready(pods, 2),
            timeout=90,
            what="2 Ready StatefulSet pods running as processes",
        )
        assert all(p.node in agent.node_names for p in pods.values())
        path = tmp_path / "sd" / f"{namespace}_cache-1.json"
        entry = wait_until(
            lambda: path.exists() and json.loads(path.read_text()), timeout=30, what="file_sd"
        )[0]
        assert entry["labels"]["controller_revision_hash"] == pods["cache-1"].revision
        assert entry["labels"]["pod"] == "cache-1" and entry["labels"]["app"] == "cache"
        (target,) = entry["targets"]
        assert get(f"http://{target}/healthz").status == 200
    finally:
        apps.delete_namespaced_stateful_set("cache", namespace)
        wait_until(
            lambda: not pods_of(core, namespace, "cache"), timeout=60, what="the pods deleted"
        )
        agent.stop()
        for name in agent.node_names:
            core.delete_node(name)
