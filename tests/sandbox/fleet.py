"""StatefulSets and DaemonSets on a node agent playing several Nodes: shared test helpers.

``running_fleet`` starts one ``NodeAgent`` for N Nodes and deletes its Nodes afterwards
(Nodes outlive their agent); ``pods_of`` reads a workload's pods as the canary planners
see them; ``stateful_set`` and ``daemon_set`` build bodies whose pods only the fleet's
Nodes may run (a nodeSelector on the agent's label), so a session agent of the same
cluster never takes them.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from kubernetes import client as k8s

from sandbox.node_agent import AGENT_LABEL, NodeAgent
from tests.sandbox.workload_helpers import core_api

REVISION = "controller-revision-hash"


@dataclass(frozen=True)
class PodSeen:
    uid: str
    revision: str
    ready: bool
    node: str
    hostname: str
    terminating: bool


def pods_of(core: Any, namespace: str, app: str) -> dict[str, PodSeen]:
    seen: dict[str, PodSeen] = {}
    for pod in core.list_namespaced_pod(namespace, label_selector=f"app={app}").items:
        conditions = {c.type: c.status for c in (pod.status.conditions or [])}
        seen[pod.metadata.name] = PodSeen(
            uid=pod.metadata.uid,
            revision=(pod.metadata.labels or {}).get(REVISION, ""),
            ready=conditions.get("Ready") == "True",
            node=pod.spec.node_name or "",
            hostname=pod.spec.hostname or "",
            terminating=pod.metadata.deletion_timestamp is not None,
        )
    return seen


def all_ready(pods: dict[str, PodSeen], count: int) -> bool:
    return len(pods) == count and all(p.ready and not p.terminating for p in pods.values())


@contextlib.contextmanager
def running_fleet(
    control_plane: Any,
    kube_api: Any,
    *,
    nodes: int = 10,
    zones: int = 2,
    prefix: str = "fleet",
    **options: Any,
) -> Iterator[NodeAgent]:
    """One agent playing ``nodes`` Nodes in ``zones`` zones; its Nodes deleted afterwards.
    ``options`` go to ``NodeAgent`` (e.g. ``run_processes`` and ``file_sd_dir`` for pods
    that serve and are scraped)."""
    agent = NodeAgent(
        control_plane.api_client(),
        node_name=f"{prefix}-{secrets.token_hex(3)}",
        nodes=nodes,
        zones=zones,
        **{"ready_delay": 0.1, **options},
    )
    agent.start()
    try:
        assert agent.wait_synced(30), "the fleet's agent did not list pods within 30 s"
        yield agent
    finally:
        agent.stop()
        core = core_api(kube_api)
        for name in agent.node_names:
            try:
                core.delete_node(name)
            except k8s.ApiException as error:
                if error.status != 404:
                    raise


def container(image: str) -> dict[str, Any]:
    return {"name": "app", "image": image}


def stateful_set(name: str, *, replicas: int, image: str, fleet: str) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "serviceName": name,
            "selector": {"matchLabels": labels},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"nodeSelector": {AGENT_LABEL: fleet}, "containers": [container(image)]},
            },
        },
    }


def daemon_set(name: str, *, image: str, fleet: str) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": labels},
            "updateStrategy": {"type": "OnDelete"},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"nodeSelector": {AGENT_LABEL: fleet}, "containers": [container(image)]},
            },
        },
    }
