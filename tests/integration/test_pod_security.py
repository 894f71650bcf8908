"""Hooks and Job checks in a namespace enforcing the ``restricted`` Pod Security level.

Pod Security admission (Kubernetes 1.25 and later) rejects any pod that does not run as
non-root with the RuntimeDefault seccomp profile, no privilege escalation and every
capability dropped. A rollout's own pods and its check Jobs' pods are both pods:

- with the securityContext that docs/release-workflow.md tells users to put in a Job template, a
  preRollout hook, a canary's Job analysis and the demo app's pods all run, and the
  canary is promoted;
- a hook whose Job template lacks it cannot get a single pod: the Job controller only
  records ``FailedCreate`` Events and retries until ``activeDeadlineSeconds``. The
  Rollout must say so at once instead, in its status and in an Event, with the
  apiserver's own reason.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from kubernetes import client as k8s

from tests.integration.harness import Cluster, settled
from tests.integration.release_helpers import canary, jobs_of, shell_job, with_hooks
from tests.waiting import wait_until

ENFORCE = "pod-security.kubernetes.io/enforce"
# What `restricted` requires of a pod, as docs/release-workflow.md gives it.
RESTRICTED_POD = {
    "runAsNonRoot": True,
    "runAsUser": 65532,
    "seccompProfile": {"type": "RuntimeDefault"},
}
RESTRICTED_CONTAINER = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
DEADLINE = 600  # the Job's activeDeadlineSeconds: the silent wait this must never be


@pytest.fixture
def restricted(control_plane: Any, cluster: Cluster) -> Cluster:
    if control_plane.minor < (1, 25):
        pytest.skip(f"Pod Security admission arrived in 1.25; this is {control_plane.minor}")
    cluster.core.patch_namespace(
        cluster.namespace, {"metadata": {"labels": {ENFORCE: "restricted"}}}
    )
    return cluster


def compliant(pod_spec: dict[str, Any]) -> dict[str, Any]:
    pod_spec["securityContext"] = dict(RESTRICTED_POD)
    for container in pod_spec["containers"]:
        container["securityContext"] = dict(RESTRICTED_CONTAINER)
    return pod_spec


def compliant_job(script: str) -> dict[str, Any]:
    job = shell_job(script)
    compliant(job["spec"]["template"]["spec"])
    return job


def compliant_canary(name: str, version: str, steps: list[dict[str, Any]]) -> dict[str, Any]:
    rollout = canary(name, version, steps)
    compliant(rollout["spec"]["template"]["spec"])
    return rollout


def test_the_namespace_really_rejects_a_pod_without_security_context(restricted: Cluster) -> None:
    bare = {
        "metadata": {"name": "bare"},
        "spec": {"containers": [{"name": "c", "image": "deployctl/demo-app:v1"}]},
    }
    with pytest.raises(k8s.ApiException) as rejected:
        restricted.core.create_namespaced_pod(restricted.namespace, bare)
    assert rejected.value.status == 403
    assert "violates PodSecurity" in str(rejected.value.body)


def test_compliant_hooks_job_analysis_and_pods_run_under_restricted(
    restricted: Cluster, start_controller: Any
) -> None:
    cluster = restricted
    for service in ("shop", "shop-canary"):
        cluster.create_service(service, {"app": "shop"}, rollout="shop")
    cluster.create_template(
        {
            "apiVersion": "deployctl.io/v1alpha1",
            "kind": "AnalysisTemplate",
            "metadata": {"name": "smoke"},
            "spec": {"metrics": [{"name": "smoke", "provider": {"job": compliant_job("echo ok")}}]},
        }
    )
    start_controller()
    migrate = {"name": "migrate", "job": compliant_job("echo migrating")}
    steps: list[dict[str, Any]] = [
        {"setWeight": 50},
        {"analysis": {"templates": [{"name": "smoke"}]}},
    ]
    cluster.apply_rollout(with_hooks(compliant_canary("shop", "v1", steps), preRollout=[migrate]))
    v1 = settled(cluster, "shop", timeout=120)
    assert v1["phase"] == "Healthy", v1
    cluster.apply_rollout(with_hooks(compliant_canary("shop", "v2", steps), preRollout=[migrate]))
    v2 = settled(cluster, "shop", timeout=120)
    assert v2["phase"] == "Healthy", v2
    assert v2["stableRevision"] != v1["stableRevision"]
    runs = {r["key"]: r["phase"] for r in v2["analysisRuns"]}
    assert runs.get("step-1") == "Successful", runs
    jobs = jobs_of(cluster, "shop")
    assert jobs and all((j.status.succeeded or 0) >= 1 for j in jobs), [j.status for j in jobs]


def test_a_hook_whose_pods_are_rejected_fails_at_once_with_the_reason(
    restricted: Cluster, start_controller: Any
) -> None:
    cluster = restricted
    for service in ("cart", "cart-canary"):
        cluster.create_service(service, {"app": "cart"}, rollout="cart")
    start_controller()
    cluster.apply_rollout(compliant_canary("cart", "v1", [{"setWeight": 50}]))
    v1 = settled(cluster, "cart", timeout=120)["stableRevision"]

    bare_hook: dict[str, Any] = {"name": "migrate", "job": shell_job("echo migrating")}
    bare_hook["job"]["spec"]["activeDeadlineSeconds"] = DEADLINE  # and no securityContext
    began = time.monotonic()
    cluster.apply_rollout(
        with_hooks(compliant_canary("cart", "v2", [{"setWeight": 50}]), preRollout=[bare_hook])
    )
    status = settled(cluster, "cart", timeout=90)
    took = time.monotonic() - began
    assert status["phase"] == "Degraded" and status["reason"] == "PreRolloutHookFailed", status
    assert "rejected by Pod Security admission" in status["message"], status["message"]
    assert "violates PodSecurity" in status["message"]
    assert "runAsNonRoot" in status["message"]  # the apiserver's own list of what is wrong
    assert status["stableRevision"] == v1
    assert took < DEADLINE / 2, f"took {took:.0f} s: that is the silent wait"

    def rejection_events() -> list[str]:
        return [
            f"{e.reason}: {e.message}"
            for e in cluster.events()
            if e.involved_object.kind == "Rollout"
            and e.involved_object.name == "cart"
            and "violates PodSecurity" in (e.message or "")
        ]

    events = wait_until(rejection_events, timeout=30, what="an Event saying why")
    assert any(e.startswith(("HookFailed:", "PreRolloutHookFailed:")) for e in events), events
