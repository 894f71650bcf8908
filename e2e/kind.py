"""A kind cluster with deployctl installed: prerequisites, images, install, teardown.

Used by ``e2e.run`` (``make e2e``) and ``e2e.demo_kind`` (``make demo CLUSTER=kind``).
Everything goes through the real tools (``docker``, ``kind``, ``kubectl``) as
subprocesses, the way a person would run them, each command echoed before it runs.

Images: the operator image is built from ``Dockerfile`` with the tag the manifests name
(``ghcr.io/deployctl/deployctl:<version>``, pulled ``IfNotPresent``), so
``kubectl apply -k manifests/`` is used exactly as documented. The demo app runs from the
same image (``python -m sandbox.demo_app``); its "versions" are one-line derived images
that only set ``DEMO_VERSION`` (and ``DEMO_ERROR_RATE`` for the broken one), so a broken
release is a different *image*, as in real life, and no second Dockerfile is needed.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client as k8s
from kubernetes import config as k8s_config

REPO = Path(__file__).resolve().parents[1]
MANIFESTS = REPO / "manifests"
E2E_MANIFESTS = REPO / "e2e" / "manifests"
DEFAULT_CLUSTER = "deployctl-e2e"
OPERATOR_NAMESPACE = "deployctl-system"
OPERATOR_DEPLOYMENT = "deployctl-controller"
LEASE_NAME = "deployctl-controller"


def project_version() -> str:
    with (REPO / "pyproject.toml").open("rb") as handle:
        return str(tomllib.load(handle)["project"]["version"])


OPERATOR_IMAGE = f"ghcr.io/deployctl/deployctl:{project_version()}"

# Demo versions: tag -> environment baked into the derived image.
DEMO_VERSIONS: dict[str, dict[str, str]] = {
    "v1": {"DEMO_VERSION": "v1"},
    "v2": {"DEMO_VERSION": "v2"},
    "v3": {"DEMO_VERSION": "v3"},
    "broken": {"DEMO_VERSION": "broken", "DEMO_ERROR_RATE": "0.5"},
}


def demo_image(version: str) -> str:
    return f"deployctl-demo:{version}"


# The client's config helpers and ApiClient methods carry no annotations; the e2e code
# holds the client as Any (like tests/integration/harness.py) rather than cast per call.
_new_client_from_config: Callable[..., Any] = k8s_config.new_client_from_config


def api_client(kubeconfig: Path) -> Any:
    """An official-client ``ApiClient`` for the cluster behind ``kubeconfig``."""
    return _new_client_from_config(config_file=str(kubeconfig))


def core_api(api: Any) -> Any:
    """CoreV1Api, typed loosely: its generated annotations fight plain dict bodies."""
    return k8s.CoreV1Api(api)


class E2EError(RuntimeError):
    """A setup command failed; the message names it."""


def missing_prerequisites(*, which: Callable[[str], str | None] = shutil.which) -> str | None:
    """What is missing to run on kind, as one phrase; None when everything is there."""
    missing: list[str] = []
    if which("docker") is None:
        missing.append("the docker CLI")
    else:
        try:
            engine = subprocess.run(
                ["docker", "info", "--format", "{{.ServerVersion}}"],
                capture_output=True,
                timeout=30,
                check=False,
            )
            engine_ok = engine.returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            engine_ok = False
        if not engine_ok:
            missing.append("a Docker engine (`docker info` failed)")
    for tool in ("kind", "kubectl"):
        if which(tool) is None:
            missing.append(f"`{tool}` on PATH")
    return " and ".join(missing) if missing else None


def run(
    command: Sequence[str],
    *,
    input: str | None = None,
    env: Mapping[str, str] | None = None,
    capture: bool = False,
    timeout: float = 600,
) -> str:
    """Run one command, echoed first; raise E2EError naming it when it fails."""
    print(f"+ {shlex.join(command)}", flush=True)
    try:
        done = subprocess.run(
            list(command),
            input=input,
            text=True,
            capture_output=capture,
            env={**os.environ, **(env or {})},
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise E2EError(f"timed out after {timeout:.0f} s: {shlex.join(command)}") from exc
    if done.returncode != 0:
        detail = (done.stderr or "").strip()[-2000:] if capture else ""
        raise E2EError(f"exit {done.returncode}: {shlex.join(command)}\n{detail}".rstrip())
    return done.stdout or ""


@dataclass(frozen=True)
class KindCluster:
    """One kind cluster and the kubeconfig file that reaches it."""

    name: str
    kubeconfig: Path

    def exists(self) -> bool:
        clusters = run(["kind", "get", "clusters"], capture=True).split()
        return self.name in clusters

    def create(self) -> None:
        if self.exists():
            print(f"reusing kind cluster {self.name!r}", flush=True)
            run(
                ["kind", "export", "kubeconfig", "--name", self.name],
                env={"KUBECONFIG": str(self.kubeconfig)},
            )
            return
        run(
            [
                "kind",
                "create",
                "cluster",
                "--name",
                self.name,
                "--kubeconfig",
                str(self.kubeconfig),
                "--wait",
                "180s",
            ],
            timeout=600,
        )

    def delete(self) -> None:
        run(["kind", "delete", "cluster", "--name", self.name], timeout=300)

    def load(self, images: Sequence[str]) -> None:
        run(["kind", "load", "docker-image", "--name", self.name, *images], timeout=900)

    def kubectl(self, *args: str, capture: bool = False, timeout: float = 600) -> str:
        return run(
            ["kubectl", "--kubeconfig", str(self.kubeconfig), *args],
            capture=capture,
            timeout=timeout,
        )


def build_images() -> list[str]:
    """Build the operator image and the demo versions; return every tag to load."""
    run(["docker", "build", "--tag", OPERATOR_IMAGE, str(REPO)], timeout=1800)
    tags = [OPERATOR_IMAGE]
    for version, env in DEMO_VERSIONS.items():
        settings = " ".join(f"{key}={value}" for key, value in env.items())
        # A derived image differing only by environment: built from stdin, no context.
        dockerfile = f"FROM {OPERATOR_IMAGE}\nENV {settings}\n"
        run(["docker", "build", "--tag", demo_image(version), "-"], input=dockerfile)
        tags.append(demo_image(version))
    return tags


def install(cluster: KindCluster) -> None:
    """Install deployctl as documented, then the e2e Prometheus; wait for both."""
    # --server-side: the Rollout CRD is too large for client-side apply's
    # last-applied-configuration annotation on some kubectl versions; docs/install.md
    # says the same.
    cluster.kubectl("apply", "--server-side", "-k", str(MANIFESTS))
    cluster.kubectl("apply", "--server-side", "-k", str(E2E_MANIFESTS))
    for crd in ("rollouts.deployctl.io", "analysistemplates.deployctl.io"):
        cluster.kubectl("wait", "--for=condition=Established", f"crd/{crd}", "--timeout=60s")
    cluster.kubectl(
        "-n",
        OPERATOR_NAMESPACE,
        "rollout",
        "status",
        f"deployment/{OPERATOR_DEPLOYMENT}",
        "--timeout=300s",
    )
    cluster.kubectl(
        "-n", "monitoring", "rollout", "status", "deployment/prometheus", "--timeout=300s"
    )


def dump_diagnostics(cluster: KindCluster) -> None:
    """What to look at when a scenario failed: operator logs and the objects' state."""
    for args in (
        ("get", "pods,rollouts,replicasets,services", "-A", "-o", "wide"),
        ("-n", OPERATOR_NAMESPACE, "logs", "-l", "app.kubernetes.io/name=deployctl", "--tail=200"),
        ("get", "events", "-A", "--sort-by=.lastTimestamp"),
    ):
        try:
            cluster.kubectl(*args, timeout=60)
        except E2EError as exc:
            print(exc, file=sys.stderr)
