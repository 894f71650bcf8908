"""A sandbox for availability tests: a namespace, two nodes of our own and a controller.

Pods of these tests are pinned (``spec.nodeName``) to a fast node (Ready after 0.2 s) or
a slow one (Ready after 1-2 s; a deleted pod stays Terminating for 1 s), both node
agents without processes: the pods are API objects, so a test can run hundreds. The
controller runs as a real process whose every request goes through a fault proxy, so a
test can add latency. One per test file (module-scoped fixtures).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client as k8s

from controller.names import REQUEST_ANNOTATION
from controller.requests import new_request
from sandbox.faultproxy import FaultProxy
from sandbox.node_agent import NodeAgent
from tests.integration.harness import Cluster, ControllerProcess, running_controller


@dataclass
class Pinned:
    api: k8s.ApiClient
    cluster: Cluster
    proxy: FaultProxy
    controller: ControllerProcess
    fast: str
    slow: str

    @property
    def namespace(self) -> str:
        return self.cluster.namespace

    def request(self, rollout: str, action: str) -> None:
        """What ``deployctl <action>`` writes: a request annotation with a fresh id."""
        request = new_request(action, by="availability-test")  # type: ignore[arg-type]
        self.cluster.patch_rollout(
            rollout, {"metadata": {"annotations": {REQUEST_ANNOTATION: request.to_annotation()}}}
        )


def pin(body: dict[str, Any], node: str) -> dict[str, Any]:
    body["spec"]["template"]["spec"]["nodeName"] = node
    return body


@contextmanager
def pinned_sandbox(
    control_plane: Any, api: k8s.ApiClient, workdir: Path, *, prometheus_url: str
) -> Iterator[Pinned]:
    core = k8s.CoreV1Api(api)
    namespace = f"avail-{secrets.token_hex(3)}"
    core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=namespace)))
    fast, slow = f"fast-{namespace}", f"slow-{namespace}"
    agents = [
        NodeAgent(control_plane.api_client(), node_name=fast, bind_unscheduled=False),
        NodeAgent(
            control_plane.api_client(),
            node_name=slow,
            bind_unscheduled=False,
            ready_delay=1.0,
            ready_jitter=1.0,
            termination_delay=1.0,
        ),
    ]
    proxy = FaultProxy(
        upstream=control_plane.server, ca_file=control_plane.ca_file, token=control_plane.token
    )
    try:
        for agent in agents:
            agent.start()
        proxy.start()
        kubeconfig = proxy.kubeconfig(workdir / "kubeconfig")
        with running_controller(
            kubeconfig=str(kubeconfig), prometheus_url=prometheus_url, log_dir=workdir
        ) as controller:
            yield Pinned(api, Cluster(api, namespace), proxy, controller, fast, slow)
    finally:
        proxy.stop()
        for agent in agents:
            agent.stop()
        core.delete_namespace(namespace)
        for node in (fast, slow):
            try:
                core.delete_node(node)
            except k8s.ApiException:
                pass
