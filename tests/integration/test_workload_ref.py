"""A Rollout taking over a running Deployment (``spec.workloadRef``), as users feel it.

On the sandbox (the real Deployment and ReplicaSet controllers of kube-controller-manager,
the controller process, the demo app behind a Service selecting both the Deployment's
pods and the Rollout's), with 20 requests/s going through the Service and every pod
change recorded from the apiserver and replayed in order (``tests.integration.podwatch``):

- take-over of a 6-replica Deployment, ``onsuccess`` and ``progressively``: no failed
  request, never fewer than 6 Ready pods of the application on any recorded state, the
  Deployment at 0 at the end;
- a template change of the Deployment at 0 rolls out as a canary with analysis; a
  broken one is rolled back, and the Deployment stays at 0 throughout;
- hand-back (the ``deployctl.io/hand-back`` annotation, and ``deployctl hand-back
  --wait`` which sets it): the Deployment is back at 6 Ready pods before the Rollout's
  go, again never fewer than 6 Ready, no failed request;
- an HPA left on the Deployment (the real HPA controller): disabled while the
  Deployment is at 0, never scaling it up behind the Rollout, and sizing it again after
  the hand-back.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from controller.names import HAND_BACK_ANNOTATION
from sandbox.node_agent import NodeAgent
from tests.integration.harness import Cluster, demo_rollout, error_rate_template, settled
from tests.integration.podwatch import Recorder, View, is_ready, is_terminating
from tests.waiting import wait_until

NAME = "web"
REPLICAS = 6
STEPS: list[dict[str, Any]] = [
    {"setWeight": 50},
    {"analysis": {"templates": [{"name": "errors"}]}},
]


@pytest.fixture
def graceful_node(
    control_plane: Any, cluster: Cluster, file_sd_dir: Path, tmp_path: Path
) -> Iterator[str]:
    """A node whose deleted pods keep serving for 2 s while Terminating, as a kubelet
    stopping an application gracefully (a preStop pause) would: longer than the traffic
    generator takes to see the pod go, so a request is never sent to a stopped pod."""
    node = f"graceful-{cluster.namespace}"
    agent = NodeAgent(
        control_plane.api_client(),
        node_name=node,
        termination_delay=2.0,
        run_processes=True,
        file_sd_dir=file_sd_dir,
        log_dir=tmp_path,
        bind_unscheduled=False,
    )
    agent.start()
    try:
        yield node
    finally:
        agent.stop()
        try:
            k8s.CoreV1Api(control_plane.api_client()).delete_node(node)
        except k8s.ApiException:
            pass


def deployment_body(version: str, node: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """The demo app as a plain Deployment (the pod template a Rollout of it would have)."""
    template = demo_rollout(NAME, version=version, env=env, strategy={})["spec"]["template"]
    template["spec"]["nodeName"] = node
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": NAME},
        "spec": {
            "replicas": REPLICAS,
            "selector": {"matchLabels": {"app": NAME}},
            "template": template,
        },
    }


def workload_rollout(scale_down: str) -> dict[str, Any]:
    body = demo_rollout(
        NAME,
        version="unused",
        replicas=REPLICAS,
        strategy={"canary": {"steps": STEPS, "maxSurge": 1, "maxUnavailable": 0}},
        progress_deadline=600,
    )
    del body["spec"]["template"], body["spec"]["selector"]
    body["spec"]["workloadRef"] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": NAME,
        "scaleDown": scale_down,
    }
    return body


def ready_pods(view: View) -> int:
    """The application's Ready pods, the Deployment's and the Rollout's alike."""
    return sum(
        1
        for pod in view.pods.values()
        if ((pod.get("metadata") or {}).get("labels") or {}).get("app") == NAME
        and is_ready(pod)
        and not is_terminating(pod)
    )


def deployment(cluster: Cluster) -> Any:
    return cluster.apps.read_namespaced_deployment(NAME, cluster.namespace)


def deployment_ready(cluster: Cluster) -> None:
    wait_until(
        lambda: deployment(cluster),
        ok=lambda d: (
            (d.status.available_replicas or 0) == REPLICAS
            and (d.status.observed_generation or 0) >= d.metadata.generation
        ),
        timeout=120,
        what=f"Deployment {NAME} at {REPLICAS} available pods",
    )


def set_template(
    cluster: Cluster, node: str, version: str, env: dict[str, str] | None = None
) -> None:
    """Replace the Deployment's pod template, as a GitOps sync would (a strategic merge
    patch would keep environment variables the new template leaves out)."""
    template = deployment_body(version, node, env)["spec"]["template"]
    for _attempt in range(10):
        current = cluster.apps.read_namespaced_deployment(NAME, cluster.namespace)
        api: Any = cluster.api
        body = api.sanitize_for_serialization(current)
        body["spec"]["template"] = template
        try:
            cluster.apps.replace_namespaced_deployment(NAME, cluster.namespace, body)
            return
        except k8s.ApiException as exc:
            if exc.status != 409:
                raise
    raise AssertionError("the Deployment kept conflicting on replace")


def taken_over(cluster: Cluster) -> None:
    wait_until(
        lambda: (cluster.status(NAME), deployment(cluster)),
        ok=lambda s: (
            (s[0].get("workload") or {}).get("phase") == "TakenOver"
            and s[1].spec.replicas == 0
            and (s[1].status.replicas or 0) == 0
        ),
        timeout=240,
        what="the Deployment taken over and at 0 pods",
    )


def caught_up(recorder: Recorder) -> None:
    """The recording has every change up to now (called while it still watches)."""
    wait_until(recorder.caught_up, timeout=60, what="the pod recording to catch up")
    assert not recorder.errors, recorder.errors


def lowest_ready(recorder: Recorder) -> int:
    return min(ready_pods(view) for view in recorder.replay())


def failures(stats: Any) -> dict[str, int]:
    return {code: n for code, n in stats.by_code().items() if code != "200"}


@pytest.mark.parametrize("scale_down", ["onsuccess", "progressively"])
def test_take_over_of_a_running_deployment_never_drops_a_pod_or_a_request(
    cluster: Cluster,
    start_controller: Any,
    traffic: Any,
    kube_api: Any,
    graceful_node: str,
    scale_down: str,
) -> None:
    cluster.create_service(NAME, {"app": NAME}, rollout=None)
    cluster.apps.create_namespaced_deployment(
        cluster.namespace, deployment_body("v1", graceful_node)
    )
    deployment_ready(cluster)
    cluster.create_template(error_rate_template("errors", interval="1s", count=3))
    start_controller()
    with Recorder(kube_api, cluster.namespace) as recorder:
        load = traffic(cluster.namespace, service=NAME, rate_per_second=20)
        cluster.apply_rollout(workload_rollout(scale_down))
        taken_over(cluster)
        status = settled(cluster, NAME, timeout=120)
        assert status["phase"] == "Healthy", status
        assert status["workload"] == {
            "deployment": NAME,
            "replicas": REPLICAS,
            "phase": "TakenOver",
        }
        stable = status["stableRevision"]
        assert cluster.replicas_by_revision() == {stable: REPLICAS}
        # Served by the Rollout's pods alone for a while (the Deployment's have gone).
        wait_until(
            lambda: load.stats().by_revision().get(stable, 0),
            ok=lambda n: n >= 40,
            timeout=60,
            what="requests served by the Rollout's pods",
        )
        caught_up(recorder)
        load.stop()
    stats = load.stats()
    assert stats.by_revision().get("", 0) > 0, stats  # the Deployment's pods served first
    assert failures(stats) == {}, stats
    assert lowest_ready(recorder) >= REPLICAS
    assert cluster.events("TakenOver")


def test_the_deployment_template_is_delivered_by_the_rollout_and_handed_back(
    cluster: Cluster, start_controller: Any, traffic: Any, kube_api: Any, graceful_node: str
) -> None:
    cluster.create_service(NAME, {"app": NAME}, rollout=None)
    cluster.apps.create_namespaced_deployment(
        cluster.namespace, deployment_body("v1", graceful_node)
    )
    deployment_ready(cluster)
    cluster.create_template(error_rate_template("errors", interval="1s", count=3))
    start_controller()
    cluster.apply_rollout(workload_rollout("onsuccess"))
    taken_over(cluster)
    v1 = settled(cluster, NAME, timeout=120)["stableRevision"]

    with Recorder(kube_api, cluster.namespace) as recorder:
        load = traffic(cluster.namespace, service=NAME, rate_per_second=20)
        # A new template in the Deployment (as Helm or GitOps would write it): a canary
        # with analysis, promoted; the Deployment controller only makes an empty
        # ReplicaSet for it.
        set_template(cluster, graceful_node, "v2")
        v2 = wait_until(
            lambda: cluster.status(NAME),
            ok=lambda s: s.get("stableRevision") not in (None, v1) and s.get("phase") == "Healthy",
            timeout=240,
            what="v2 promoted",
        )["stableRevision"]
        status = cluster.status(NAME)
        runs = [r for r in status["analysisRuns"] if r["revision"] == v2]
        assert runs and runs[-1]["phase"] == "Successful", status
        # A broken template: the analysis fails and v2 stays.
        set_template(cluster, graceful_node, "v3", {"DEMO_ERROR_RATE": "0.5"})
        broken = wait_until(
            lambda: cluster.status(NAME),
            ok=lambda s: s.get("phase") == "Degraded",
            timeout=240,
            what="v3 rolled back",
        )
        assert broken["stableRevision"] == v2 and broken["reason"] == "AnalysisFailed", broken
        wait_until(
            cluster.replicas_by_revision,
            ok=lambda r: r.get(v2) == REPLICAS and r.get(broken["canaryRevision"], 0) == 0,
            timeout=120,
            what="the canary of v3 scaled away",
        )
        assert deployment(cluster).spec.replicas == 0
        caught_up(recorder)
        load.stop()
    # The canaries kept the application's Ready pods at 6 (maxSurge 1, maxUnavailable 0).
    assert lowest_ready(recorder) >= REPLICAS
    # The Deployment made no pod of any template while the Rollout delivered them.
    deployment_pods = [
        change
        for change in recorder.changes
        if change.kind == "pod"
        and change.rv > recorder.listed_at
        and "pod-template-hash" in ((change.obj.get("metadata") or {}).get("labels") or {})
        and change.type == "ADDED"
    ]
    assert deployment_pods == []

    # GitOps reverts the template to v2, then the workload is handed back.
    set_template(cluster, graceful_node, "v2")
    wait_until(
        lambda: cluster.status(NAME),
        ok=lambda s: s.get("phase") == "Healthy" and s.get("stableRevision") == v2,
        timeout=120,
        what="the revert to v2 taken as the stable",
    )
    with Recorder(kube_api, cluster.namespace) as recorder:
        load = traffic(cluster.namespace, service=NAME, rate_per_second=20)
        rollout = cluster.rollout(NAME)
        annotations = copy.deepcopy(rollout["metadata"].get("annotations") or {})
        annotations[HAND_BACK_ANNOTATION] = "true"
        cluster.patch_rollout(NAME, {"metadata": {"annotations": annotations}})
        wait_until(
            lambda: (cluster.status(NAME), cluster.replicas_by_revision()),
            ok=lambda s: (
                (s[0].get("workload") or {}).get("phase") == "HandedBack" and s[1].get(v2) == 0
            ),
            timeout=240,
            what="handed back",
        )
        deployment_ready(cluster)
        wait_until(
            lambda: [
                p
                for p in cluster.core.list_namespaced_pod(cluster.namespace).items
                if (p.metadata.labels or {}).get("deployctl.io/rollout") == NAME
            ],
            ok=lambda pods: pods == [],
            timeout=120,
            what="the Rollout's pods gone",
        )
        wait_until(
            lambda: load.stats().by_revision().get("", 0),
            ok=lambda n: n >= 40,
            timeout=60,
            what="requests served by the Deployment's pods again",
        )
        caught_up(recorder)
        load.stop()
    stats = load.stats()
    assert stats.by_revision().get(v2, 0) > 0, stats  # the Rollout's pods served first
    assert failures(stats) == {}, stats
    assert lowest_ready(recorder) >= REPLICAS
    assert cluster.events("HandedBack")


LEASE = "deployctl-workload"


def deployment_hpa(min_replicas: int) -> dict[str, Any]:
    """An HPA as a team had it before the take-over: on the Deployment. Its CPU metric
    cannot be read in the sandbox (no metrics server), so it only ever sizes the
    Deployment up to ``minReplicas``, which is what this test needs of it."""
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": NAME},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": NAME},
            "minReplicas": min_replicas,
            "maxReplicas": 10,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 80},
                    },
                }
            ],
        },
    }


def scaling_active(hpa: Any) -> tuple[str, str] | None:
    """The HPA's ScalingActive condition (status, reason), once it has one."""
    for condition in (hpa.status.conditions if hpa.status else None) or []:
        if condition.type == "ScalingActive":
            return str(condition.status), str(condition.reason)
    return None


def test_hand_back_command_and_an_hpa_left_on_the_deployment(
    cluster: Cluster,
    start_controller: Any,
    traffic: Any,
    kube_api: Any,
    control_plane: Any,
    graceful_node: str,
) -> None:
    """``deployctl hand-back --wait`` gives the pods back with no gap, and an HPA left on
    the Deployment (the real HPA controller of kube-controller-manager) neither fights
    the take-over (at 0 replicas it disables itself: ScalingActive=False,
    ScalingDisabled) nor the hand-back, and sizes the Deployment again afterwards."""
    autoscaling: Any = k8s.AutoscalingV2Api(kube_api)
    cluster.create_service(NAME, {"app": NAME}, rollout=None)
    cluster.apps.create_namespaced_deployment(
        cluster.namespace, deployment_body("v1", graceful_node)
    )
    deployment_ready(cluster)
    autoscaling.create_namespaced_horizontal_pod_autoscaler(
        cluster.namespace, deployment_hpa(min_replicas=REPLICAS)
    )
    cluster.create_template(error_rate_template("errors", interval="1s", count=3))
    start_controller(
        [
            "--lease-namespace",
            cluster.namespace,
            "--lease-name",
            LEASE,
            # Generous: a loaded machine must not cost the leader its Lease mid-test.
            "--lease-duration",
            "15",
            "--renew-deadline",
            "10",
            "--retry-period",
            "0.5",
        ]
    )
    cluster.apply_rollout(workload_rollout("onsuccess"))
    taken_over(cluster)
    stable = settled(cluster, NAME, timeout=120)["stableRevision"]

    def hpa() -> Any:
        return autoscaling.read_namespaced_horizontal_pod_autoscaler(NAME, cluster.namespace)

    # The HPA controller sees its target at 0 and stands down; it does not scale the
    # Deployment back up behind the Rollout.
    wait_until(
        hpa,
        ok=lambda h: scaling_active(h) == ("False", "ScalingDisabled"),
        timeout=120,
        what="the HPA on the Deployment disabled (ScalingDisabled)",
    )
    assert deployment(cluster).spec.replicas == 0
    assert cluster.replicas_by_revision() == {stable: REPLICAS}

    env = {
        **os.environ,
        "KUBECONFIG": str(control_plane.kubeconfig),
        "DEPLOYCTL_CONTROLLER_NAMESPACE": cluster.namespace,
        "DEPLOYCTL_CONTROLLER_LEASE": LEASE,
    }
    with Recorder(kube_api, cluster.namespace) as recorder:
        load = traffic(cluster.namespace, service=NAME, rate_per_second=20)
        wait_until(
            lambda: load.stats().by_revision().get(stable, 0),
            ok=lambda n: n >= 20,
            timeout=60,
            what="requests served by the Rollout's pods",
        )
        handed = subprocess.run(
            [sys.executable, "-m", "controller.cli", "hand-back", NAME, "-n", cluster.namespace]
            + ["--wait", "--timeout", "300s", "-o", "json"],
            capture_output=True,
            text=True,
            timeout=360,
            env=env,
        )
        assert handed.returncode == 0, handed.stderr
        # What the command promises on exit 0, read right after it returned.
        back = deployment(cluster)
        assert (back.status.available_replicas or 0) >= REPLICAS
        assert cluster.replicas_by_revision() == {stable: 0}
        rollout_pods = [
            p
            for p in cluster.core.list_namespaced_pod(cluster.namespace).items
            if (p.metadata.labels or {}).get("deployctl.io/rollout") == NAME
        ]
        assert rollout_pods == []
        wait_until(
            lambda: load.stats().by_revision().get("", 0),
            ok=lambda n: n >= 40,
            timeout=60,
            what="requests served by the Deployment's pods again",
        )
        caught_up(recorder)
        load.stop()
    document = json.loads(handed.stdout)
    assert document["rollout"] == f"{cluster.namespace}/{NAME}" and document["handedBack"]
    assert document["deployment"] == NAME and document["availableReplicas"] >= REPLICAS
    stats = load.stats()
    assert stats.by_revision().get(stable, 0) > 0, stats
    assert failures(stats) == {}, stats
    assert lowest_ready(recorder) >= REPLICAS
    assert cluster.status(NAME)["workload"]["phase"] == "HandedBack"

    # Back above 0, the HPA works on the Deployment again: it leaves ScalingDisabled (its
    # CPU metric is then what it lacks), and a higher minReplicas is applied to the
    # Deployment, which the handed-back Rollout leaves alone.
    wait_until(
        hpa,
        ok=lambda h: scaling_active(h) not in (None, ("False", "ScalingDisabled")),
        timeout=120,
        what="the HPA on the Deployment active again",
    )
    autoscaling.patch_namespaced_horizontal_pod_autoscaler(
        NAME, cluster.namespace, {"spec": {"minReplicas": REPLICAS + 1}}
    )
    wait_until(
        lambda: deployment(cluster),
        ok=lambda d: (
            d.spec.replicas == REPLICAS + 1 and (d.status.available_replicas or 0) == REPLICAS + 1
        ),
        timeout=120,
        what=f"the HPA sizing the Deployment to {REPLICAS + 1}",
    )
    assert cluster.replicas_by_revision() == {stable: 0}
