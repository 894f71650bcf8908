"""Helpers for tests that run the real operator against the sandbox.

The operator runs as a real ``deployctl controller`` process (so a test can SIGKILL it)
pointed at the sandbox's kubeconfig and real Prometheus. Objects are created through the
official client; waits poll the apiserver with a deadline, never sleep blindly.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kubernetes import client as k8s

from tests.waiting import wait_until

GROUP, VERSION = "deployctl.io", "v1alpha1"
SANDBOX_WEB = ["--web-allow-cidrs", "127.0.0.0/8"]
"""The sandbox's pods live on 127.x.y.z, which web checks may not reach by default
(loopback): a controller whose checks reach them is started with this allowance. The API
server on 127.0.0.1 stays refused (a /32 rule is more specific than 127.0.0.0/8)."""


class ControllerProcess:
    """A ``deployctl controller`` subprocess with its log captured to a file."""

    def __init__(
        self, *, kubeconfig: str, prometheus_url: str, log_path: Path, args: list[str]
    ) -> None:
        self.log_path = log_path
        self._log = log_path.open("ab")
        command = [
            sys.executable,
            "-m",
            "controller.cli",
            "controller",
            "--kubeconfig",
            kubeconfig,
            "--prometheus-url",
            prometheus_url,
            "--probe-address",
            "127.0.0.1:0",
            "--log-format",
            "json",
            *args,
        ]
        self.process = subprocess.Popen(
            command, stdout=self._log, stderr=subprocess.STDOUT, env={**os.environ}
        )

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def terminate(self, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            return self.process.wait(timeout)
        return self.process.returncode

    def metrics_url(self, timeout: float = 20) -> str:
        """The base URL of /metrics, /healthz, /readyz, from the controller's own log line."""

        def find() -> str | None:
            for line in self.log_text().splitlines():
                if "serving /metrics" in line and line.startswith("{"):
                    return str(json.loads(line)["url"])
            return None

        return str(
            wait_until(find, ok=lambda url: url is not None, timeout=timeout, what="probe URL")
        )

    def log_text(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def close(self) -> None:
        self.kill()
        self._log.close()


@contextmanager
def running_controller(
    *, kubeconfig: str, prometheus_url: str, log_dir: Path, args: list[str] | None = None
) -> Iterator[ControllerProcess]:
    proc = ControllerProcess(
        kubeconfig=kubeconfig,
        prometheus_url=prometheus_url,
        log_path=log_dir / f"controller-{time.monotonic_ns()}.log",
        args=args if args is not None else ["--no-leader-elect"],
    )
    try:
        yield proc
    finally:
        proc.close()


def deployctl(
    *args: str, env: Mapping[str, str], timeout: float = 420
) -> subprocess.CompletedProcess[str]:
    """``deployctl`` as CI runs it: a subprocess, stdout and stderr pipes (no terminal)."""
    return subprocess.run(
        [sys.executable, "-m", "controller.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(env),
    )


LEADER_TIMING = ["--lease-duration", "15", "--renew-deadline", "10", "--retry-period", "0.5"]
"""Generous: a loaded machine must not cost the leader its Lease mid-test."""


class CiCli:
    """``deployctl`` as a CI job runs it against the sandbox, with the controller it
    drives: the environment names the sandbox's kubeconfig and the controller's Lease
    (which the CLI checks before it sends a request), and the controller is started as
    the leader of that Lease."""

    def __init__(
        self,
        cluster: Cluster,
        kubeconfig: Path,
        lease: str,
        start_controller: Callable[..., ControllerProcess],
        extra_env: Mapping[str, str],
    ) -> None:
        self.namespace = cluster.namespace
        self.lease = lease
        self._cluster = cluster
        self._start_controller = start_controller
        self.env = {
            **os.environ,
            "KUBECONFIG": str(kubeconfig),
            "DEPLOYCTL_CONTROLLER_NAMESPACE": cluster.namespace,
            "DEPLOYCTL_CONTROLLER_LEASE": lease,
            "COLUMNS": "200",
            **extra_env,
        }

    def __call__(
        self, *args: str, timeout: float = 420, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return deployctl(*args, env=self.env if env is None else env, timeout=timeout)

    def start_controller(self) -> ControllerProcess:
        return self._start_controller(
            ["--lease-namespace", self.namespace, "--lease-name", self.lease, *LEADER_TIMING]
        )

    def wait_for_controller(self, timeout: float = 60) -> None:
        """Until the controller holds the Lease and the CLI answers: the CLI refuses
        requests until the Lease is held, so waiting for the API alone is not enough."""
        leases = k8s.CoordinationV1Api(self._cluster.api)
        wait_until(
            lambda: leases.list_namespaced_lease(self.namespace).items,
            ok=lambda items: any(
                lease.metadata.name == self.lease and lease.spec.holder_identity for lease in items
            ),
            timeout=timeout,
            what=f"the controller to hold Lease {self.namespace}/{self.lease}",
        )
        wait_until(
            lambda: self("list", "-n", self.namespace, timeout=60),
            ok=lambda r: r.returncode == 0,
            timeout=timeout,
            what="the CLI to find the controller",
        )


class Cluster:
    """Thin conveniences over the official client for one test namespace."""

    def __init__(self, api: k8s.ApiClient, namespace: str) -> None:
        self.api = api
        self.namespace = namespace
        # The client's generated annotations fight plain dict bodies; tests use dicts.
        self.custom: Any = k8s.CustomObjectsApi(api)
        self.core: Any = k8s.CoreV1Api(api)
        self.apps: Any = k8s.AppsV1Api(api)

    def apply_rollout(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Create or replace, re-reading on 409: the controller writes status meanwhile."""
        name = body["metadata"]["name"]
        for _attempt in range(10):
            try:
                current = self.custom.get_namespaced_custom_object(
                    GROUP, VERSION, self.namespace, "rollouts", name
                )
            except k8s.ApiException as exc:
                if exc.status != 404:
                    raise
                return dict(
                    self.custom.create_namespaced_custom_object(
                        GROUP, VERSION, self.namespace, "rollouts", dict(body)
                    )
                )
            patched = {**dict(body), "metadata": {**current["metadata"], **body["metadata"]}}
            try:
                return dict(
                    self.custom.replace_namespaced_custom_object(
                        GROUP, VERSION, self.namespace, "rollouts", name, patched
                    )
                )
            except k8s.ApiException as exc:
                if exc.status != 409:
                    raise
        raise AssertionError(f"rollout {name} kept conflicting on replace")

    def patch_rollout(self, name: str, patch: Mapping[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, "rollouts", name, dict(patch)
        )

    def create_template(self, body: Mapping[str, Any]) -> None:
        self.custom.create_namespaced_custom_object(
            GROUP, VERSION, self.namespace, "analysistemplates", dict(body)
        )

    def rollout(self, name: str) -> dict[str, Any]:
        return dict(
            self.custom.get_namespaced_custom_object(
                GROUP, VERSION, self.namespace, "rollouts", name
            )
        )

    def status(self, name: str) -> dict[str, Any]:
        return dict(self.rollout(name).get("status") or {})

    def create_service(
        self, name: str, selector: Mapping[str, str], *, rollout: str | None
    ) -> None:
        """A Service; ``rollout`` names the Rollout that may manage it (the consent
        annotation), None: no Rollout may."""
        annotations = {"deployctl.io/rollout": rollout} if rollout else {}
        self.core.create_namespaced_service(
            self.namespace,
            {
                "metadata": {"name": name, "annotations": annotations},
                "spec": {"selector": dict(selector), "ports": [{"port": 8080}]},
            },
        )

    def service_selector(self, name: str) -> dict[str, str]:
        return dict(self.core.read_namespaced_service(name, self.namespace).spec.selector or {})

    def replicas_by_revision(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for rs in self.apps.list_namespaced_replica_set(self.namespace).items:
            revision = (rs.metadata.labels or {}).get("deployctl.io/revision")
            if revision:
                out[revision] = rs.spec.replicas or 0
        return out

    def events(self, reason: str | None = None) -> list[Any]:
        items = self.core.list_namespaced_event(self.namespace).items
        return [e for e in items if reason is None or e.reason == reason]

    def events_when(
        self,
        ok: Callable[[list[Any]], object],
        *,
        what: str,
        reason: str | None = None,
        timeout: float = 30,
    ) -> list[Any]:
        """The Events (of ``reason``) once ``ok`` holds for them. The controller writes an
        Event after the status a test waits on, so a check of Events waits too."""
        return list(wait_until(lambda: self.events(reason), ok=ok, timeout=timeout, what=what))


def demo_rollout(
    name: str,
    *,
    version: str,
    env: Mapping[str, str] | None = None,
    replicas: int = 4,
    strategy: Mapping[str, Any],
    analysis: Mapping[str, Any] | None = None,
    progress_deadline: int = 120,
) -> dict[str, Any]:
    """A Rollout of the sandbox's demo app; ``env`` makes a version good or bad."""
    container_env = [{"name": "DEMO_VERSION", "value": version}] + [
        {"name": k, "value": v} for k, v in (env or {}).items()
    ]
    spec: dict[str, Any] = {
        "replicas": replicas,
        "selector": {"matchLabels": {"app": name}},
        "template": {
            "metadata": {"labels": {"app": name}},
            "spec": {
                "containers": [
                    {"name": "app", "image": f"deployctl/demo-app:{version}", "env": container_env}
                ]
            },
        },
        "strategy": dict(strategy),
        "progressDeadlineSeconds": progress_deadline,
    }
    if analysis is not None:
        spec["analysis"] = dict(analysis)
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Rollout",
        "metadata": {"name": name},
        "spec": spec,
    }


def error_rate_template(
    name: str,
    *,
    interval: str = "2s",
    count: int | None = 3,
    max_ratio: float = 0.05,
    initial_delay: str = "6s",
) -> dict[str, Any]:
    # initialDelay: a revision whose pod has just become Ready has no rate in Prometheus
    # for 4-5 s (file_sd pick-up, two 1 s scrapes; measured on 1.20 and 1.37 alike), and
    # measuring before that is "no data", which with a small count ends Inconclusive.
    metric: dict[str, Any] = {
        "name": "error-rate",
        "initialDelay": initial_delay,
        "interval": interval,
        "failureLimit": 0,
        "inconclusiveLimit": 20,
        "errorRate": {"max": max_ratio, "window": "20s"},
        "for": "0s",
    }
    if count is not None:
        metric["count"] = count
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "AnalysisTemplate",
        "metadata": {"name": name},
        "spec": {"metrics": [metric]},
    }


def settled(cluster: Cluster, name: str, *, timeout: float = 60) -> dict[str, Any]:
    """The rollout's status once it has seen its spec and come to rest (or failed)."""
    return dict(
        wait_until(
            lambda: cluster.rollout(name),
            ok=lambda r: (
                (r.get("status") or {}).get("observedGeneration") == r["metadata"]["generation"]
                and (r.get("status") or {}).get("phase") in ("Healthy", "Degraded", "RolledBack")
            ),
            timeout=timeout,
            what=f"{name} to settle",
        )["status"]
    )
