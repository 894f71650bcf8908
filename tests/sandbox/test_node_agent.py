"""The node agent against the real control plane: what a kubelet would show.

Cluster tests (marked automatically through the ``node_agent`` fixture), plus a few pure
ones for the behaviour switch and the address allocator.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from kubernetes import client as k8s

from sandbox.node_agent import LoopbackIPs, NodeAgent
from sandbox.pod_lifecycle import Behaviour, behaviour_of
from tests.sandbox.workload_helpers import apps_api, coordination_api, core_api, get, replica_set
from tests.waiting import wait_until


def pod_with(image: str, env: dict[str, str] | None = None) -> dict[str, object]:
    return {
        "spec": {
            "containers": [
                {
                    "name": "app",
                    "image": image,
                    "env": [{"name": k, "value": v} for k, v in (env or {}).items()],
                }
            ]
        }
    }


@pytest.mark.parametrize(
    ("pod", "expected"),
    [
        (pod_with("shop/checkout:1.4.2"), Behaviour.NORMAL),
        (pod_with("shop/checkout:v2-crash"), Behaviour.CRASH),
        (pod_with("localhost:5000/checkout:v2-never-ready"), Behaviour.NEVER_READY),
        (pod_with("localhost:5000/checkout-crash"), Behaviour.NORMAL),  # a port, not a tag
        (pod_with("shop/checkout:1", {"SANDBOX_BEHAVIOUR": "crash"}), Behaviour.CRASH),
        (pod_with("shop/x:v1-crash", {"SANDBOX_BEHAVIOUR": "never-ready"}), Behaviour.NEVER_READY),
        (pod_with("shop/checkout:1", {"SANDBOX_BEHAVIOUR": "bogus"}), Behaviour.NORMAL),
        (pod_with("sandbox/shell"), Behaviour.SHELL),
        (pod_with("registry.local:5000/sandbox/shell:1"), Behaviour.SHELL),
        (pod_with("shop/sandbox-shell:1"), Behaviour.NORMAL),
    ],
)
def test_behaviour_comes_from_env_then_image_tag(pod, expected) -> None:
    assert behaviour_of(pod) is expected


def test_loopback_addresses_are_unique_and_not_reused_at_once() -> None:
    ips = LoopbackIPs(block=9, start=0)
    first = [ips.allocate() for _ in range(300)]
    assert len(set(first)) == 300
    assert first[0] == "127.9.0.1" and first[254] == "127.9.1.1"
    ips.release(first[0])
    assert ips.allocate() == "127.9.1.47"  # round-robin: the freed one waits its turn


def ready_replicas(apps: Any, namespace: str, name: str) -> int:
    status = apps.read_namespaced_replica_set(name, namespace).status
    return int(status.ready_replicas or 0) if (status.available_replicas or 0) else 0


def test_replicaset_gets_ready_pods_then_scales_down(node_agent, kube_api, namespace) -> None:
    apps, core = apps_api(kube_api), core_api(kube_api)
    start = time.monotonic()
    apps.create_namespaced_replica_set(
        namespace, replica_set("web", replicas=3, app="web", revision="r1")
    )
    wait_until(lambda: ready_replicas(apps, namespace, "web") == 3, timeout=30, what="3 ready")
    print(f"\n3 pods Ready and available {time.monotonic() - start:.2f}s after creation")

    pods = core.list_namespaced_pod(namespace).items
    assert len(pods) == 3
    ips = {pod.status.pod_ip for pod in pods}
    assert len(ips) == 3 and all(ip.startswith("127.1.") for ip in ips)
    for pod in pods:
        assert pod.spec.node_name == "sandbox-node"
        assert pod.status.phase == "Running" and pod.status.host_ip == "127.0.0.1"
        conditions = {c.type: c.status for c in pod.status.conditions}
        assert conditions == {
            "PodScheduled": "True",
            "Initialized": "True",
            "ContainersReady": "True",
            "Ready": "True",
        }
        (container,) = pod.status.container_statuses
        assert container.ready and container.started and container.restart_count == 0
        assert container.state.running.started_at is not None
        assert container.image == "shop/demo:v1" and container.container_id
        # Each pod is a real demo app on its own address.
        assert json.loads(get(f"http://{pod.status.pod_ip}:8080/version").body) == {"version": "v1"}

    apps.patch_namespaced_replica_set("web", namespace, {"spec": {"replicas": 1}})
    wait_until(
        lambda: len(core.list_namespaced_pod(namespace).items) == 1,
        timeout=30,
        what="scale down to 1 pod (the agent finishes each deletion)",
    )
    wait_until(
        lambda: len([p for p in node_agent.pods() if p.namespace == namespace]) == 1,
        timeout=10,
        what="the agent to stop the removed pods' processes",
    )


def test_deleting_the_replicaset_cascades_through_the_garbage_collector(
    node_agent, kube_api, namespace, file_sd_dir
) -> None:
    apps, core = apps_api(kube_api), core_api(kube_api)
    apps.create_namespaced_replica_set(
        namespace, replica_set("gc", replicas=2, app="gc", revision="r1")
    )
    wait_until(lambda: ready_replicas(apps, namespace, "gc") == 2, timeout=30, what="2 ready")
    assert len(list(file_sd_dir.glob(f"{namespace}_gc-*.json"))) == 2
    apps.delete_namespaced_replica_set("gc", namespace, propagation_policy="Background")
    wait_until(
        lambda: not core.list_namespaced_pod(namespace).items,
        timeout=60,
        what="the garbage collector to delete the pods",
    )
    wait_until(
        lambda: not list(file_sd_dir.glob(f"{namespace}_gc-*.json")),
        timeout=10,
        what="scrape targets to be removed",
    )


def test_file_sd_carries_namespace_pod_app_revision(node_agent, kube_api, namespace, file_sd_dir):
    apps = apps_api(kube_api)
    apps.create_namespaced_replica_set(
        namespace, replica_set("sd", replicas=1, app="shop", revision="abc123")
    )
    (path,) = wait_until(
        lambda: list(file_sd_dir.glob(f"{namespace}_sd-*.json")), timeout=30, what="file_sd"
    )
    (entry,) = json.loads(path.read_text())
    pod = path.name.removeprefix(f"{namespace}_").removesuffix(".json")
    assert entry["labels"] == {
        "namespace": namespace,
        "pod": pod,
        "app": "shop",
        "revision": "abc123",
    }
    (target,) = entry["targets"]
    # Published when the process starts, as Kubernetes discovery lists a pod with an IP:
    # it serves soon after, not necessarily yet.
    wait_until(lambda: serves(target), timeout=30, what="the target to serve")


def serves(target: str) -> bool:
    try:
        return bool(get(f"http://{target}/healthz").status == 200)
    except OSError:
        return False


def create_pod(
    core: Any,
    namespace: str,
    name: str,
    *,
    image: str,
    env: dict[str, str] | None = None,
    node: str | None = None,
) -> None:
    body: dict[str, Any] = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}}
    body.update(pod_with(image, env))
    if node is not None:
        body["spec"]["nodeName"] = node

    def created() -> bool:
        try:
            core.create_namespaced_pod(namespace, body)
        except k8s.ApiException as error:
            # A fresh namespace's default ServiceAccount token comes a moment later; a
            # bare pod (unlike a ReplicaSet's) is not retried by anyone else.
            if error.status == 500 and "service account" in str(error.body):
                return False
            raise
        return True

    wait_until(created, timeout=30, interval=0.2, what=f"pod {name} to be accepted")


def test_crash_looping_image_shows_restarts(node_agent, kube_api, namespace) -> None:
    core = core_api(kube_api)
    create_pod(core, namespace, "crasher", image="shop/demo:v2-crash")
    seen_backoff: list[bool] = []

    def restarted() -> bool:
        pod = core.read_namespaced_pod("crasher", namespace)
        statuses = pod.status.container_statuses or []
        if not statuses:
            return False
        assert not statuses[0].ready
        if statuses[0].state.waiting is not None:
            assert statuses[0].state.waiting.reason == "CrashLoopBackOff"
            seen_backoff.append(True)
        return bool(statuses[0].restart_count >= 2)

    wait_until(restarted, timeout=30, what="restartCount >= 2")
    assert seen_backoff
    pod = core.read_namespaced_pod("crasher", namespace)
    assert pod.status.phase == "Running"
    assert {c.type: c.status for c in pod.status.conditions}["Ready"] == "False"
    assert pod.status.container_statuses[0].last_state.terminated.exit_code == 1


def test_never_ready_pod_runs_but_stays_unready(node_agent, kube_api, namespace) -> None:
    core = core_api(kube_api)
    create_pod(
        core, namespace, "sulky", image="shop/demo:v1", env={"SANDBOX_BEHAVIOUR": "never-ready"}
    )
    wait_until(
        lambda: core.read_namespaced_pod("sulky", namespace).status.phase == "Running",
        timeout=30,
        what="Running",
    )
    # An observation window, not a synchronisation sleep: Ready must never appear in it.
    window_end = time.monotonic() + 3 * node_agent.ready_delay + 1.0
    while time.monotonic() < window_end:
        pod = core.read_namespaced_pod("sulky", namespace)
        assert {c.type: c.status for c in pod.status.conditions}["Ready"] == "False"
        assert not pod.status.container_statuses[0].ready
        time.sleep(0.1)


def test_node_is_ready_and_its_lease_is_renewed(node_agent, kube_api) -> None:
    node = core_api(kube_api).read_node("sandbox-node")
    assert {c.type: c.status for c in node.status.conditions}["Ready"] == "True"
    assert node.status.capacity["pods"] in ("5000", "5k")  # the API canonicalises
    assert not [t for t in node.spec.taints or [] if t.effect in ("NoSchedule", "NoExecute")]
    lease = coordination_api(kube_api).read_namespaced_lease("sandbox-node", "kube-node-lease")
    assert lease.spec.holder_identity == "sandbox-node"
    assert lease.spec.renew_time is not None


def test_agent_rides_out_api_faults(control_plane, fault_proxy, kube_api, namespace) -> None:
    """Through the fault proxy: a 410 on the watch, cut watches and 500s; pods still go Ready."""
    core = core_api(kube_api)
    agent = NodeAgent(
        fault_proxy.api_client(), node_name="flaky-node", bind_unscheduled=False, ready_delay=0.05
    )

    def pod_ready(name: str) -> bool:
        try:
            pod = core.read_namespaced_pod(name, namespace)
        except k8s.ApiException:
            return False
        return {c.type: c.status for c in pod.status.conditions or []}.get("Ready") == "True"

    def pinned(name: str) -> None:
        # spec.nodeName set up front: the session agent (another node) leaves it alone.
        create_pod(core, namespace, name, image="shop/demo:v1", node="flaky-node")

    try:
        # Watches cut every second from the start: the agent must resume from its
        # resourceVersion each time, and a pending 410 is met within a second.
        fault_proxy.cut_watches_every = 1.0
        agent.start()
        pinned("before")
        wait_until(lambda: pod_ready("before"), timeout=30, what="pod before faults Ready")

        fault_proxy.gone_next_watch()
        wait_until(
            lambda: fault_proxy.stats().count(verb="watch", injected=True) >= 1,
            timeout=30,
            what="the 410 to be served",
        )
        pinned("after-410")
        wait_until(lambda: pod_ready("after-410"), timeout=30, what="pod after a 410 Ready")
        assert fault_proxy.stats().count(verb="list", path="/pods") >= 2  # it listed again

        fault_proxy.error_rate_500 = 0.3
        pinned("during-500s")
        wait_until(lambda: pod_ready("during-500s"), timeout=30, what="pod during 500s Ready")
        fault_proxy.error_rate_500 = 0.0

        for name in ("before", "after-410", "during-500s"):
            core.delete_namespaced_pod(name, namespace)
        wait_until(
            lambda: not core.list_namespaced_pod(namespace).items,
            timeout=30,
            what="the agent to finish the deletions",
        )
    finally:
        fault_proxy.reset()
        agent.stop()
        core.delete_node("flaky-node")


def test_a_slow_node_keeps_deleted_pods_terminating_for_its_delay(
    control_plane, kube_api, namespace
) -> None:
    """termination_delay: a deleted pod stays Terminating (still Ready, as a kubelet shows
    it while the containers stop) for that long before the deletion finishes."""
    core = core_api(kube_api)
    agent = NodeAgent(
        control_plane.api_client(),
        node_name="slow-node",
        bind_unscheduled=False,
        ready_delay=0.3,
        ready_jitter=0.5,
        termination_delay=1.5,
    )

    def ready(pod: Any) -> bool:
        return {c.type: c.status for c in pod.status.conditions or []}.get("Ready") == "True"

    def exists() -> bool:
        return any(p.metadata.name == "slow" for p in core.list_namespaced_pod(namespace).items)

    try:
        agent.start()
        create_pod(core, namespace, "slow", image="shop/demo:v1", node="slow-node")
        wait_until(
            lambda: ready(core.read_namespaced_pod("slow", namespace)), timeout=30, what="Ready"
        )
        # Timed from before the request: the agent may see the deletion before the
        # apiserver's answer reaches us, so a clock started after it runs short.
        deleted_at = time.monotonic()
        core.delete_namespaced_pod("slow", namespace)
        terminating = core.read_namespaced_pod("slow", namespace)
        assert terminating.metadata.deletion_timestamp is not None and ready(terminating)
        wait_until(lambda: not exists(), timeout=30, what="the deletion to finish")
        assert time.monotonic() - deleted_at >= agent.termination_delay
    finally:
        agent.stop()
        core.delete_node("slow-node")


def test_a_pods_scrape_target_is_published_before_it_is_ready(
    control_plane, kube_api, namespace, tmp_path
) -> None:
    """As Prometheus's Kubernetes discovery lists a pod once it has an IP: the file_sd
    target (with its revision) is there while the pod is still starting, not Ready."""
    core = core_api(kube_api)
    agent = NodeAgent(
        control_plane.api_client(),
        node_name="early-node",
        bind_unscheduled=False,
        ready_delay=300.0,  # far longer than the test: the pod stays starting throughout
        run_processes=True,
        file_sd_dir=tmp_path / "sd",
    )
    path = tmp_path / "sd" / f"{namespace}_early.json"
    try:
        agent.start()
        create_pod(core, namespace, "early", image="shop/demo:v1", node="early-node")
        wait_until(path.exists, timeout=30, what="the pod's scrape target")
        (entry,) = json.loads(path.read_text())
        assert entry["labels"]["pod"] == "early" and entry["labels"]["namespace"] == namespace
        pod = core.read_namespaced_pod("early", namespace)
        assert {c.type: c.status for c in pod.status.conditions or []}.get("Ready") != "True"
        (target,) = entry["targets"]
        wait_until(lambda: serves(target), timeout=30, what="the process to serve")
    finally:
        core.delete_namespaced_pod("early", namespace, grace_period_seconds=0)
        agent.stop()
        core.delete_node("early-node")
    assert not path.exists()  # the target goes with the pod


def shell_job(name: str, script: str, *, backoff_limit: int = 0) -> dict[str, object]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": backoff_limit,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "run",
                            "image": "sandbox/shell",
                            "command": ["sh", "-c", script],
                            "env": [{"name": "GREETING", "value": "hello"}],
                            "terminationMessagePolicy": "FallbackToLogsOnError",
                        }
                    ],
                }
            },
        },
    }


def job_condition(batch: Any, namespace: str, name: str) -> str | None:
    job = batch.read_namespaced_job(name, namespace)
    for condition in job.status.conditions or []:
        if condition.status == "True" and condition.type in ("Complete", "Failed"):
            return str(condition.type)
    return None


def test_shell_job_runs_its_command_and_completes(node_agent, kube_api, namespace) -> None:
    batch: Any = k8s.BatchV1Api(kube_api)
    core = core_api(kube_api)
    batch.create_namespaced_job(namespace, shell_job("migrate", 'test "$GREETING" = hello'))
    wait_until(
        lambda: job_condition(batch, namespace, "migrate") is not None,
        timeout=60,
        what="the Job to finish",
    )
    assert job_condition(batch, namespace, "migrate") == "Complete"
    pods = core.list_namespaced_pod(namespace, label_selector="job-name=migrate").items
    assert [p.status.phase for p in pods] == ["Succeeded"]
    assert pods[0].status.container_statuses[0].state.terminated.exit_code == 0


def test_failing_shell_job_fails_with_the_tail_of_its_output(
    node_agent, kube_api, namespace
) -> None:
    batch: Any = k8s.BatchV1Api(kube_api)
    core = core_api(kube_api)
    script = "for i in $(seq 1 200); do echo line $i; done; echo 'relation users missing' >&2\n"
    script += "exit 3"
    batch.create_namespaced_job(namespace, shell_job("smoke", script))
    wait_until(
        lambda: job_condition(batch, namespace, "smoke") is not None,
        timeout=60,
        what="the Job to finish",
    )
    assert job_condition(batch, namespace, "smoke") == "Failed"
    pods = core.list_namespaced_pod(namespace, label_selector="job-name=smoke").items
    assert len(pods) == 1 and pods[0].status.phase == "Failed"
    terminated = pods[0].status.container_statuses[0].state.terminated
    assert terminated.exit_code == 3
    assert terminated.message.endswith("relation users missing")
    lines = terminated.message.splitlines()
    assert len(lines) <= 80 and "line 1" not in lines  # only the tail is kept
