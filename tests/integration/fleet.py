"""Three sandbox clusters, each with its own operator, and a release controller driving them.

``Fleet`` holds three real control planes (the session's, which is also the management
cluster, and two started here), a node agent running demo-app pods in each, one
``deployctl controller`` process per cluster (all judged by the one real Prometheus),
and the ``deployctl release-controller`` process in the management cluster.

Credentials are what a real install has, so the RBAC is exercised too:

- the release controller runs as the sandbox user ``bob``, granted only the Role of
  ``manifests/release-controller/role.yaml`` in the Release namespace;
- each ClusterTarget's Secret holds a self-contained kubeconfig (inline CA, token) of the
  sandbox user ``alice`` in that member, bound to ``manifests/member/clusterrole.yaml`` in
  the application namespace only.
"""

from __future__ import annotations

import base64
import copy
import os
import secrets
import subprocess
import sys
import threading
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client as k8s

from sandbox.controlplane import ControlPlane
from sandbox.node_agent import NodeAgent
from sandbox.traffic import TrafficGenerator
from tests.integration.harness import (
    GROUP,
    VERSION,
    Cluster,
    ControllerProcess,
    demo_rollout,
)
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
# The canary's error rate, once its first pod has had a few seconds of traffic.
ERRORS = {
    "apiVersion": f"{GROUP}/{VERSION}",
    "kind": "AnalysisTemplate",
    "metadata": {"name": "errors"},
    "spec": {
        "metrics": [
            {
                "name": "error-rate",
                "interval": "2s",
                "initialDelay": "4s",
                "count": 3,
                "failureLimit": 0,
                "inconclusiveLimit": 20,
                "errorRate": {"max": 0.05, "window": "10s"},
                "for": "0s",
            }
        ]
    },
}
MEMBER_USER = "alice"
CONTROLLER_USER = "bob"


def inline_kubeconfig(plane: ControlPlane, user: str) -> str:
    """A self-contained kubeconfig (what a ClusterTarget's Secret must hold)."""
    ca = base64.b64encode(plane.ca_file.read_bytes()).decode()
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "member",
                    "cluster": {"server": plane.server, "certificate-authority-data": ca},
                }
            ],
            "users": [{"name": user, "user": {"token": plane.tokens[user]}}],
            "contexts": [{"name": "member", "context": {"cluster": "member", "user": user}}],
            "current-context": "member",
        }
    )


def core(api: k8s.ApiClient) -> Any:
    """The typed client APIs want models; these helpers send plain dicts, as tests do."""
    return k8s.CoreV1Api(api)


def rbac(api: k8s.ApiClient) -> Any:
    return k8s.RbacAuthorizationV1Api(api)


def manifest(relative: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((ROOT / relative).read_text()) if d]


@dataclass
class Member:
    """One member cluster: its control plane, admin client and operator."""

    name: str
    plane: ControlPlane
    api: k8s.ApiClient
    operator: ControllerProcess | None = None

    def cluster(self, namespace: str) -> Cluster:
        return Cluster(self.api, namespace)

    def generation(self, namespace: str, name: str = "shop") -> int:
        return int(self.cluster(namespace).rollout(name)["metadata"]["generation"])


@dataclass
class Fleet:
    members: dict[str, Member]
    management: Member
    releases_ns: str
    prometheus_url: str
    log_dir: Path
    stack: ExitStack
    release_controller: ControllerProcess | None = None
    traffic: list[TrafficGenerator] = field(default_factory=list)
    apps: list[str] = field(default_factory=list)

    # ------------------------------------------------------------------ processes

    def start_release_controller(self, *extra: str) -> ControllerProcess:
        kubeconfig = self.management.plane.user_kubeconfig(
            CONTROLLER_USER, self.log_dir / "release-controller.kubeconfig"
        )
        process = ReleaseControllerProcess(
            kubeconfig=str(kubeconfig),
            log_path=self.log_dir / f"release-controller-{secrets.token_hex(3)}.log",
            args=[
                "--namespace", self.releases_ns,
                "--lease-namespace", self.releases_ns,
                "--poll-interval", "1",
                "--read-timeout", "2",
                "--lease-duration", "4", "--renew-deadline", "3", "--retry-period", "1",
                *extra,
            ],
        )  # fmt: skip
        self.stack.callback(process.close)
        self.release_controller = process
        return process

    def release_controller_log(self) -> str:
        return self.release_controller.log_text()[-4000:] if self.release_controller else ""

    def cli(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        """``deployctl`` against the management cluster, as an admin would run it."""
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "controller.cli",
                *args,
                "--kubeconfig",
                str(self.management.plane.kubeconfig),
                "-n",
                self.releases_ns,
            ],  # fmt: skip
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.cli_env(),
            check=False,
        )

    def cli_env(self) -> dict[str, str]:
        return {
            **os.environ,
            "DEPLOYCTL_RELEASE_CONTROLLER_NAMESPACE": self.releases_ns,
            "DEPLOYCTL_USER": "ci",
        }

    # ------------------------------------------------------------------ apps

    def new_app(self, *, analysed: tuple[str, ...] = ()) -> str:
        """A fresh namespace with the same Rollout ``shop`` (v1, Healthy) in every member.

        Clusters in ``analysed`` judge new revisions by the error rate (and get traffic);
        the others walk two steps without analysis, as a staging cluster would.
        """
        namespace = f"app-{secrets.token_hex(3)}"
        self.apps.append(namespace)
        for member in self.members.values():
            cluster = member.cluster(namespace)
            cluster.core.create_namespace({"metadata": {"name": namespace}})
            for service in ("shop", "shop-stable", "shop-canary"):
                cluster.create_service(service, {"app": "shop"}, rollout="shop")
            cluster.create_template(ERRORS)
            steps: list[dict[str, Any]] = [{"setWeight": 50}, {"pause": {"duration": "1s"}}]
            if member.name in analysed:
                steps = [{"setWeight": 50}, {"analysis": {"templates": [{"name": "errors"}]}}]
            cluster.apply_rollout(shop("v1", steps=steps))
            _member_role_binding(member, namespace)
        for member in self.members.values():
            healthy(member.cluster(namespace))
            if member.name in analysed:
                generator = TrafficGenerator(
                    member.api, namespace=namespace, service="shop", rate_per_second=30
                )
                self.traffic.append(generator.start())
        return namespace

    def clear_apps(self) -> None:
        """After a scenario: its traffic stops and its pods go (the clusters are shared,
        the next scenario should not pay for this one's processes)."""
        for generator in self.traffic:
            generator.stop()
        self.traffic.clear()
        for namespace in self.apps:
            for member in self.members.values():
                try:
                    core(member.api).delete_namespace(namespace)
                except k8s.ApiException as exc:
                    if exc.status != 404:
                        raise
        self.apps.clear()

    def stable_revisions(self, namespace: str) -> dict[str, str]:
        return {
            name: str(member.cluster(namespace).status("shop")["stableRevision"])
            for name, member in self.members.items()
        }

    def release(self, name: str, namespace: str, **spec: Any) -> dict[str, Any]:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Release",
            "metadata": {"name": name, "namespace": self.releases_ns},
            "spec": {"rollout": {"namespace": namespace, "name": "shop"}, **spec},
        }
        return body

    def create_release(self, body: Mapping[str, Any]) -> None:
        self.management.cluster(self.releases_ns).custom.create_namespaced_custom_object(
            GROUP, VERSION, self.releases_ns, "releases", dict(body)
        )

    def release_status(self, name: str) -> dict[str, Any]:
        obj = self.management.cluster(self.releases_ns).custom.get_namespaced_custom_object(
            GROUP, VERSION, self.releases_ns, "releases", name
        )
        return dict(obj.get("status") or {})

    def wait_release(self, name: str, ok: Any, *, timeout: float, what: str) -> dict[str, Any]:
        return dict(
            wait_until(lambda: self.release_status(name), ok=ok, timeout=timeout, what=what)
        )

    def release_events(self, name: str) -> list[Any]:
        items = (
            self.management.cluster(self.releases_ns)
            .core.list_namespaced_event(self.releases_ns)
            .items
        )
        return [e for e in items if e.involved_object.name == name]


class ReleaseControllerProcess(ControllerProcess):
    """``deployctl release-controller``: the harness's process wrapper, another command."""

    def __init__(self, *, kubeconfig: str, log_path: Path, args: list[str]) -> None:
        self.log_path = log_path
        self._log = log_path.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "controller.cli",
                "release-controller",
                "--kubeconfig",
                kubeconfig,
                "--probe-address",
                "127.0.0.1:0",
                "--log-format",
                "json",
                *args,
            ],  # fmt: skip
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ},
        )


def shop(version: str, *, steps: list[dict[str, Any]]) -> dict[str, Any]:
    return demo_rollout(
        "shop",
        version=version,
        replicas=1,
        strategy={
            "canary": {
                "stableService": "shop-stable",
                "canaryService": "shop-canary",
                "steps": steps,
                "scaleDownDelaySeconds": 2,
            }
        },
        progress_deadline=90,
    )


def healthy(cluster: Cluster, timeout: float = 90) -> dict[str, Any]:
    return dict(
        wait_until(
            lambda: cluster.rollout("shop"),
            ok=lambda r: (
                (r.get("status") or {}).get("phase") == "Healthy"
                and (r.get("status") or {}).get("observedGeneration") == r["metadata"]["generation"]
            ),
            timeout=timeout,
            what=f"shop Healthy in {cluster.namespace}",
        )["status"]
    )


def _member_role_binding(member: Member, namespace: str) -> None:
    """The member Role of manifests/member/, bound to the release controller's user."""
    (binding,) = manifest("manifests/member/rolebinding.yaml")
    body = copy.deepcopy(binding)
    body["metadata"]["namespace"] = namespace
    body["subjects"] = [
        {"kind": "User", "name": MEMBER_USER, "apiGroup": "rbac.authorization.k8s.io"}
    ]
    rbac(member.api).create_namespaced_role_binding(namespace, body)


def install_member_role(member: Member) -> None:
    (role,) = manifest("manifests/member/clusterrole.yaml")
    api = rbac(member.api)
    try:
        api.create_cluster_role(role)
    except k8s.ApiException as exc:
        if exc.status != 409:
            raise


def create_release_namespace(management: Member) -> str:
    """The Release namespace, with the controller's Role granted to ``bob``."""
    namespace = f"rel-{secrets.token_hex(3)}"
    core(management.api).create_namespace({"metadata": {"name": namespace}})
    api = rbac(management.api)
    for doc in manifest("manifests/release-controller/role.yaml"):
        body = copy.deepcopy(doc)
        body["metadata"]["namespace"] = namespace
        if doc["kind"] == "Role":
            api.create_namespaced_role(namespace, body)
        else:
            body["subjects"] = [
                {"kind": "User", "name": CONTROLLER_USER, "apiGroup": "rbac.authorization.k8s.io"}
            ]
            api.create_namespaced_role_binding(namespace, body)
    return namespace


def add_target(management: Member, namespace: str, member: Member) -> None:
    """A ClusterTarget for ``member`` and the Secret with its kubeconfig."""
    secret = f"{member.name}-kubeconfig"
    core(management.api).create_namespaced_secret(
        namespace,
        {
            "metadata": {"name": secret},
            "stringData": {"kubeconfig": inline_kubeconfig(member.plane, MEMBER_USER)},
        },
    )
    k8s.CustomObjectsApi(management.api).create_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        "clustertargets",
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "ClusterTarget",
            "metadata": {"name": member.name},
            "spec": {"kubeconfigSecretRef": {"name": secret}},
        },
    )


class BackgroundPlane:
    """A control plane started, and later stopped, by a thread of its own that lives as
    long as the plane: its components die with the thread that spawned them
    (PR_SET_PDEATHSIG), so several planes can start at once only from threads that stay."""

    def __init__(self, crd_dir: Path) -> None:
        # Generous: two planes start at once on a machine other work may be loading.
        self.plane = ControlPlane(start_timeout=240)
        self.crd_dir = crd_dir
        self.error: BaseException | None = None
        self._started = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="control-plane", daemon=True)

    def start(self) -> BackgroundPlane:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            self.plane.start()
            self.plane.install_crds(sorted(self.crd_dir.glob("*.yaml")))
        except BaseException as exc:  # handed to whoever waits in ready()
            self.error = exc
            self._started.set()
            return
        self._started.set()
        self._stop.wait()
        self.plane.stop()

    def ready(self, *, timeout: float) -> ControlPlane:
        if not self._started.wait(timeout):
            raise AssertionError(f"a control plane did not start within {timeout:g} s")
        if self.error is not None:
            raise AssertionError(f"a control plane did not start: {self.error}")
        return self.plane

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)


def start_member(
    name: str, plane: ControlPlane, *, file_sd_dir: Path, log_dir: Path, stack: ExitStack
) -> Member:
    api = plane.api_client()
    agent = NodeAgent(
        plane.api_client(), run_processes=True, file_sd_dir=file_sd_dir, log_dir=log_dir
    )
    agent.start()
    stack.callback(agent.stop)
    assert agent.wait_synced(30), f"node agent of {name} did not sync"
    return Member(name=name, plane=plane, api=api)
