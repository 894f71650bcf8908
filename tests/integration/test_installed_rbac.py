"""The operator runs with only the RBAC that ``manifests/`` grants, on a real apiserver.

The static checks in ``tests/manifests/`` compare lists; this one proves them: the
cluster install's ServiceAccount, ClusterRole and leader-election Role are applied with
``kubectl apply -k manifests/`` to the sandbox's kube-apiserver (RBAC authorizer on),
the operator runs with a token of that ServiceAccount and leader election on, and a
canary goes from a first deploy through a second revision to Healthy. Any missing verb
would show as a 403 in its log and a rollout that never finishes.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sandbox.controlplane import write_kubeconfig
from tests.integration.harness import Cluster, ControllerProcess, demo_rollout
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
SA_NAMESPACE, SA_NAME = "deployctl-system", "deployctl-controller"
STEPS = [{"setWeight": 50}, {"pause": {"duration": "1s"}}]


def kubectl(control_plane: Any, *args: str) -> str:
    done = subprocess.run(
        ["kubectl", "--kubeconfig", str(control_plane.kubeconfig), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def operator_kubeconfig(control_plane: Any, path: Path) -> Path:
    """Install the manifests' RBAC (not the Deployment: no kubelet here) and get a token."""
    rendered = kubectl(control_plane, "kustomize", str(ROOT / "manifests"))
    # The admission policy needs Kubernetes 1.30+; its reader ClusterRole applies anywhere.
    served = kubectl(control_plane, "api-resources", "--api-group=admissionregistration.k8s.io")
    wanted = [
        doc
        for doc in rendered.split("\n---\n")
        if "kind: CustomResourceDefinition" not in doc  # installed by the fixture already
        and "kind: Deployment" not in doc
        and ("validatingadmissionpolicies" in served or "kind: ValidatingAdmission" not in doc)
    ]
    subprocess.run(
        ["kubectl", "--kubeconfig", str(control_plane.kubeconfig), "apply", "-f", "-"],
        input="\n---\n".join(wanted),
        text=True,
        capture_output=True,
        timeout=120,
        check=True,
    )
    token = kubectl(
        control_plane, "-n", SA_NAMESPACE, "create", "token", SA_NAME, "--duration=1h"
    ).strip()
    return write_kubeconfig(
        path, server=control_plane.server, token=token, ca_file=control_plane.ca_file, user=SA_NAME
    )


def test_operator_needs_no_more_than_the_manifests_grant(
    control_plane: Any,
    cluster: Cluster,
    start_controller: Callable[..., ControllerProcess],
    tmp_path: Path,
) -> None:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl not installed: cannot apply manifests/ with kustomize")
    kubeconfig = operator_kubeconfig(control_plane, tmp_path / "operator.kubeconfig")
    for name in ("shop", "shop-stable", "shop-canary"):
        cluster.create_service(name, {"app": "shop"}, rollout="shop")
    strategy = {
        "canary": {"stableService": "shop-stable", "canaryService": "shop-canary", "steps": STEPS}
    }
    controller = start_controller(
        args=[
            "--leader-elect",
            "--lease-namespace",
            SA_NAMESPACE,
            "--lease-name",
            f"rbac-{cluster.namespace}",
            "--identity",
            "rbac-test",
        ],
        kubeconfig=str(kubeconfig),
    )

    def healthy() -> dict[str, Any]:
        generation = cluster.rollout("shop")["metadata"]["generation"]
        return dict(
            wait_until(
                lambda: cluster.status("shop"),
                ok=lambda s: (
                    s.get("phase") == "Healthy" and s.get("observedGeneration") == generation
                ),
                timeout=90,
                what=f"rollout Healthy under the operator's RBAC; log: {controller.log_path}",
            )
        )

    cluster.apply_rollout(demo_rollout("shop", version="v1", strategy=strategy))
    v1 = healthy()["stableRevision"]
    cluster.apply_rollout(demo_rollout("shop", version="v2", strategy=strategy))
    v2 = healthy()["stableRevision"]
    assert v2 != v1
    assert cluster.service_selector("shop-stable")["deployctl.io/revision"] == v2
    assert cluster.events(), "no Events recorded"
    log = controller.log_text()
    assert "forbidden" not in log.lower(), log[-3000:]
    assert controller.process.poll() is None, log[-3000:]
