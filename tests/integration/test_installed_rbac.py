"""The operator runs with only the RBAC that ``manifests/`` grants, on a real apiserver.

The static checks in ``tests/manifests/`` compare lists; this one proves them: the whole
cluster install is applied as a user would, ``kubectl apply --server-side -k manifests/``
with the kubectl built with the sandbox (the admission policy left out where the API
server does not serve it, as on a cluster older than 1.30; before 1.25 a client-side
apply without kubectl's schema check, as docs/install.md says), to its kube-apiserver
(RBAC authorizer on); the
operator runs with a token of the installed ServiceAccount from the TokenRequest API
(``kubectl create token``: current clusters create no token Secrets) and leader election
on, and a canary goes from a first deploy through a second revision to Healthy. Any
missing verb would show as a 403 in its log and a rollout that never finishes.
"""

from __future__ import annotations

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
# CRD schemas with x-kubernetes-validations (CEL): 1.25 and later.
CEL_IN_SCHEMA = (1, 25)


def kubectl(control_plane: Any, *args: str) -> str:
    return kubectl_input(control_plane, None, *args)


def kubectl_input(control_plane: Any, stdin: str | None, *args: str) -> str:
    done = subprocess.run(
        [str(control_plane.kubectl), "--kubeconfig", str(control_plane.kubeconfig), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def operator_kubeconfig(control_plane: Any, path: Path) -> tuple[Path, list[str]]:
    """Install everything ``manifests/`` holds, server-side, and get a token of its SA;
    with the admission policy documents applied, for the test to take away again."""
    rendered = kubectl(control_plane, "kustomize", str(ROOT / "manifests"))
    # The admission policy needs Kubernetes 1.30+ (the oldest supported release does not
    # serve it, as a user's older cluster would not); its reader ClusterRole applies anywhere.
    served = kubectl(control_plane, "api-resources", "--api-group=admissionregistration.k8s.io")
    wanted = [
        doc
        for doc in rendered.split("\n---\n")
        if "validatingadmissionpolicies" in served or "kind: ValidatingAdmission" not in doc
    ]
    how = ["--server-side", "--field-manager=deployctl-install"]
    if control_plane.minor < CEL_IN_SCHEMA:
        # What docs/install.md tells users of such clusters: their API server's CRD schema
        # predates x-kubernetes-validations, so a server-side apply fails ("field not
        # declared in schema") and kubectl's own check refuses it too; a client-side apply
        # without that check is stored with the rules dropped.
        how = ["--validate=false"]
    applied = kubectl_input(control_plane, "\n---\n".join(wanted), "apply", *how, "-f", "-")
    assert "serverside-applied" in applied or "configured" in applied, applied
    # The in-cluster Deployment's pods would only be stand-ins here (no kubelet, no
    # image): the operator under test is the process started with the SA's token.
    kubectl(
        control_plane,
        "-n",
        SA_NAMESPACE,
        "scale",
        "deployment/deployctl-controller",
        "--replicas=0",
    )
    token = kubectl(
        control_plane, "-n", SA_NAMESPACE, "create", "token", SA_NAME, "--duration=1h"
    ).strip()
    kubeconfig = write_kubeconfig(
        path, server=control_plane.server, token=token, ca_file=control_plane.ca_file, user=SA_NAME
    )
    return kubeconfig, [doc for doc in wanted if "kind: ValidatingAdmissionPolicy" in doc]


def test_operator_needs_no_more_than_the_manifests_grant(
    control_plane: Any,
    cluster: Cluster,
    start_controller: Callable[..., ControllerProcess],
    tmp_path: Path,
) -> None:
    if control_plane.kubectl is None:
        pytest.skip("no kubectl: build the current release (`make cluster`), which includes it")
    kubeconfig, policies = operator_kubeconfig(control_plane, tmp_path / "operator.kubeconfig")
    try:
        run_under_installed_rbac(cluster, start_controller, kubeconfig)
    finally:
        # Cluster-wide: left in force, the policy would judge every later test's requests
        # on this control plane (they write request annotations under other names).
        if policies:
            kubectl_input(
                control_plane,
                "\n---\n".join(policies),
                "delete",
                "--ignore-not-found",
                "-f",
                "-",
            )


def run_under_installed_rbac(
    cluster: Cluster, start_controller: Callable[..., ControllerProcess], kubeconfig: Path
) -> None:
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
    cluster.events_when(bool, what="an Event recorded under the installed RBAC")
    log = controller.log_text()
    assert "forbidden" not in log.lower(), log[-3000:]
    assert controller.process.poll() is None, log[-3000:]
