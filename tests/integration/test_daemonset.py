"""A Rollout delivering a DaemonSet (``workloadRef: {kind: DaemonSet}``), end to end.

On the sandbox (the real DaemonSet and garbage-collector controllers, the controller
process, a node agent playing 10 Nodes in two zones and running the demo app on each,
traffic at 20 requests/s through a Service that selects every Node's pod, the real
Prometheus scraping each pod with its ``controller_revision_hash``), every change of the
DaemonSet and its pods recorded from the apiserver (``tests.integration.podwatch``):

- a canary on the 2 Nodes of ``canaryNodeSelector`` (zone b) -> analysis -> every
  Node, one pod unavailable at a time; the user's ``updateStrategy`` (RollingUpdate,
  held at OnDelete meanwhile) comes back, and an ``UpdateStrategyRestored`` Event on the
  Rollout says so;
- a broken revision (30% 5xx) is rolled back by the analysis: only the 2 canary Nodes'
  pods were ever replaced (pod UIDs per Node), the user's strategy is restored;
- the controller SIGKILLed mid-step resumes from status: each Node's pod is replaced
  exactly once;
- ``deployctl rollout NAME --image ... --wait`` exits 0 (promoted) and 1 (rolled back).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from controller.daemon import STRATEGY_ANNOTATION, node_of
from sandbox.node_agent import AGENT_LABEL, ZONE_LABEL, NodeAgent
from tests.integration.harness import CiCli, Cluster, demo_rollout, error_rate_template
from tests.integration.podwatch import Recorder, is_ready, is_terminating
from tests.sandbox.fleet import running_fleet
from tests.waiting import wait_until

NAME = "agent"
NODES = 10
CANARY_NODES = 2  # setWeight 20 of 10 Nodes
REVISION = "controller-revision-hash"
USERS_STRATEGY = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 2}}
ANALYSIS: dict[str, Any] = {"analysis": {"templates": [{"name": "errors"}]}}
STEPS: list[dict[str, Any]] = [{"setWeight": 20}, ANALYSIS]


@pytest.fixture
def fleet(
    control_plane: Any, kube_api: Any, file_sd_dir: Path, tmp_path: Path
) -> Iterator[NodeAgent]:
    """10 Nodes in zones a and b, running the demo app, scraped by Prometheus."""
    with running_fleet(
        control_plane,
        kube_api,
        nodes=NODES,
        zones=2,
        prefix="ds",
        run_processes=True,
        file_sd_dir=file_sd_dir,
        log_dir=tmp_path / "pod-logs",
        ready_delay=0.2,
    ) as agent:
        yield agent


def template(fleet: NodeAgent, version: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    body = demo_rollout(NAME, version=version, env=env, strategy={})
    spec = dict(body["spec"]["template"])
    spec["spec"]["nodeSelector"] = {AGENT_LABEL: fleet.node_name}
    return spec


def daemonset_body(fleet: NodeAgent, version: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": NAME},
        "spec": {
            "selector": {"matchLabels": {"app": NAME}},
            "updateStrategy": USERS_STRATEGY,
            "template": template(fleet, version),
        },
    }


def daemonset_rollout(steps: list[dict[str, Any]]) -> dict[str, Any]:
    body = demo_rollout(
        NAME,
        version="unused",
        strategy={
            "canary": {"steps": steps, "canaryNodeSelector": {ZONE_LABEL: "zone-b"}},
        },
        progress_deadline=600,
    )
    del body["spec"]["template"], body["spec"]["selector"], body["spec"]["replicas"]
    body["spec"]["workloadRef"] = {"apiVersion": "apps/v1", "kind": "DaemonSet", "name": NAME}
    return body


def analysis_template() -> dict[str, Any]:
    """The error-rate preset, scoped by the pods' controller-revision-hash: the canary is
    2 pods of 10 (about 4 requests/s of the 20), measured from 10 s after it starts."""
    body = error_rate_template("errors", interval="2s", count=5, initial_delay="10s")
    preset = body["spec"]["metrics"][0]["errorRate"]
    preset.update(revisionLabel="controller_revision_hash", minRequests=10)
    return body


def zone_b(fleet: NodeAgent) -> list[str]:
    """The canary Nodes: zone b's, by name, the first two."""
    return sorted(n for n, labels in fleet.node_labels.items() if labels[ZONE_LABEL] == "zone-b")[
        :CANARY_NODES
    ]


def daemonset(cluster: Cluster) -> Any:
    return cluster.apps.read_namespaced_daemon_set(NAME, cluster.namespace)


def pods_by_node(cluster: Cluster) -> dict[str, dict[str, Any]]:
    """Each Node's live pod (as a dict), terminating ones left out."""
    api: Any = cluster.api
    found = cluster.core.list_namespaced_pod(cluster.namespace, label_selector=f"app={NAME}")
    out: dict[str, dict[str, Any]] = {}
    for pod in found.items:
        body = api.sanitize_for_serialization(pod)
        node = node_of(body)
        if node is not None and not is_terminating(body):
            out[node] = body
    return out


def all_on(cluster: Cluster, revision: str) -> dict[str, dict[str, Any]]:
    """The 10 Nodes' pods once each runs ``revision``, Ready."""

    def ok(found: dict[str, dict[str, Any]]) -> bool:
        return len(found) == NODES and all(
            p["metadata"]["labels"].get(REVISION) == revision and is_ready(p)
            for p in found.values()
        )

    return dict(
        wait_until(lambda: pods_by_node(cluster), ok=ok, timeout=240, what=f"10 pods on {revision}")
    )


def deliver(cluster: Cluster, body: dict[str, Any]) -> None:
    """What ``deployctl rollout --image`` writes: the new template with OnDelete in the
    same write (the user's strategy kept in the annotation), so no pod moves before the
    Rollout's first step asks for it."""
    apps: Any = cluster.apps
    api: Any = cluster.api
    current = daemonset(cluster)
    kept = json.dumps(api.sanitize_for_serialization(current.spec.update_strategy))
    key = STRATEGY_ANNOTATION.replace("/", "~1")
    patch = [
        {"op": "test", "path": "/metadata/generation", "value": current.metadata.generation},
        {"op": "replace", "path": "/spec/template", "value": body},
        {"op": "replace", "path": "/spec/updateStrategy", "value": {"type": "OnDelete"}},
        {"op": "add", "path": f"/metadata/annotations/{key}", "value": kept},
    ]
    apps.patch_namespaced_daemon_set(NAME, cluster.namespace, patch)


def strategy_restored(cluster: Cluster) -> Any:
    """The DaemonSet once the user's strategy is back and our annotation gone."""
    return wait_until(
        lambda: daemonset(cluster),
        ok=lambda ds: (
            ds.spec.update_strategy.type == "RollingUpdate"
            and STRATEGY_ANNOTATION not in (ds.metadata.annotations or {})
        ),
        timeout=120,
        what="the user's updateStrategy restored",
    )


def healthy_on(cluster: Cluster, *, not_: str | None = None) -> dict[str, Any]:
    return dict(
        wait_until(
            lambda: cluster.status(NAME),
            ok=lambda s: (
                s.get("phase") == "Healthy"
                and s.get("stableRevision") not in (None, not_)
                and (s.get("daemonSet") or {}).get("moving", "AtRest") == "AtRest"
            ),
            # Generous: under a loaded machine each of the 10 pods' replacement (a process
            # started, Ready reported) and the analysis's scrapes take several times longer.
            timeout=600,
            what="the Rollout Healthy at rest",
        )
    )


@contextmanager
def recording(cluster: Cluster, kube_api: Any) -> Iterator[Recorder]:
    recorder = Recorder(kube_api, cluster.namespace)
    with recorder:
        yield recorder


def uids_per_node(recorder: Recorder) -> dict[str, list[str]]:
    """Every pod UID each Node had while recorded, in order (a replaced pod: two)."""
    found: dict[str, list[str]] = {}
    for change in sorted(recorder.changes, key=lambda c: c.rv):
        if change.kind != "pod" or not change.obj["metadata"]["name"].startswith(f"{NAME}-"):
            continue
        node = node_of(change.obj)
        uid = change.obj["metadata"]["uid"]
        if node is not None and uid not in found.setdefault(node, []):
            found[node].append(uid)
    return found


def first_updated(recorder: Recorder, stable: str, count: int) -> list[str]:
    """The first ``count`` Nodes that had a pod off ``stable``, in the cluster's order."""
    order: list[str] = []
    for change in sorted(recorder.changes, key=lambda c: c.rv):
        if change.kind != "pod" or not change.obj["metadata"]["name"].startswith(f"{NAME}-"):
            continue
        node = node_of(change.obj)
        revision = change.obj["metadata"].get("labels", {}).get(REVISION)
        if node is not None and revision != stable and node not in order:
            order.append(node)
    return order[:count]


def node_history(recorder: Recorder, node: str) -> list[str]:
    """Every recorded change of ``node``'s pods, in the cluster's order: what a failed
    assertion on that Node shows."""
    return [
        f"rv {c.rv} {c.type} {c.obj['metadata']['name']} uid {c.obj['metadata']['uid'][:8]} "
        f"{c.obj['metadata'].get('labels', {}).get(REVISION)} ready={is_ready(c.obj)} "
        f"terminating={is_terminating(c.obj)}"
        for c in sorted(recorder.changes, key=lambda c: c.rv)
        if c.kind == "pod"
        and c.obj["metadata"]["name"].startswith(f"{NAME}-")
        and node_of(c.obj) == node
    ]


def most_down(recorder: Recorder) -> tuple[int, str]:
    """The most Nodes without a Ready pod at any recorded moment after the first listing,
    and that moment's pods, to say what happened when it is more than allowed."""
    worst, moment = 0, ""
    for view in recorder.replay():
        pods = {name: pod for name, pod in view.pods.items() if name.startswith(f"{NAME}-")}
        up = {node_of(pod) for pod in pods.values() if is_ready(pod) and not is_terminating(pod)}
        if NODES - len(up) > worst:
            worst = NODES - len(up)
            moment = f"at resourceVersion {view.rv}: " + "; ".join(
                f"{node_of(pod)} {name} {pod['metadata']['labels'].get(REVISION)}"
                f" ready={is_ready(pod)} terminating={is_terminating(pod)}"
                for name, pod in sorted(pods.items(), key=lambda kv: str(node_of(kv[1])))
            )
    return worst, moment


def caught_up(recorder: Recorder) -> None:
    wait_until(recorder.caught_up, timeout=60, what="the recording to catch up")
    assert not recorder.errors, recorder.errors


@dataclass
class Running:
    stable: str
    controller: Any
    fleet: NodeAgent


@pytest.fixture
def running(cluster: Cluster, start_controller: Any, fleet: NodeAgent) -> Running:
    """The DaemonSet at v1 on 10 Nodes under a Rollout, Healthy at rest."""
    cluster.create_service(NAME, {"app": NAME}, rollout=None)
    cluster.apps.create_namespaced_daemon_set(cluster.namespace, daemonset_body(fleet, "v1"))
    cluster.create_template(analysis_template())
    controller = start_controller()
    cluster.apply_rollout(daemonset_rollout(STEPS))
    status = healthy_on(cluster)
    all_on(cluster, status["stableRevision"])
    # A first deploy whose pods are not all Ready yet holds the strategy too: a test's
    # first write must find the user's own, not the hold (it keeps what it finds).
    strategy_restored(cluster)
    return Running(str(status["stableRevision"]), controller, fleet)


def test_daemonset_canary_on_two_zone_b_nodes_then_every_node(
    cluster: Cluster, running: Running, traffic: Any, kube_api: Any
) -> None:
    v1 = running.stable
    with recording(cluster, kube_api) as recorder:
        load = traffic(cluster.namespace, service=NAME, rate_per_second=20)
        deliver(cluster, template(running.fleet, "v2"))
        done = healthy_on(cluster, not_=v1)
        v2 = done["stableRevision"]
        all_on(cluster, v2)
        restored = strategy_restored(cluster)
        caught_up(recorder)
        load.stop()
    # The hand-back is told on the Rollout (after the status that shows it: waited for).
    told = cluster.events_when(
        lambda events: any(v2 in e.message for e in events),
        reason="UpdateStrategyRestored",
        what="an UpdateStrategyRestored Event naming the new revision",
        timeout=120,
    )
    assert all(e.involved_object.name == NAME for e in told), told
    runs = [r for r in done["analysisRuns"] if r["revision"] == v2]
    assert runs and runs[-1]["phase"] == "Successful", done
    # The canary was zone b's first two Nodes; then every Node, each replaced once.
    per_node = uids_per_node(recorder)
    assert first_updated(recorder, v1, CANARY_NODES) == zone_b(running.fleet), per_node
    assert sorted(per_node) == sorted(running.fleet.node_names)
    assert all(len(uids) == 2 for uids in per_node.values()), per_node
    down, moment = most_down(recorder)
    assert down <= 1, moment  # maxUnavailable 1 (the default)
    assert done["daemonSet"]["nodes"] == {v2: sorted(running.fleet.node_names)}
    assert restored.spec.update_strategy.rolling_update.max_unavailable == 2


def test_broken_daemonset_revision_is_rolled_back_on_the_canary_nodes_only(
    cluster: Cluster, running: Running, traffic: Any, kube_api: Any
) -> None:
    v1 = running.stable
    before = {node: pod["metadata"]["uid"] for node, pod in pods_by_node(cluster).items()}
    with recording(cluster, kube_api) as recorder:
        load = traffic(cluster.namespace, service=NAME, rate_per_second=20)
        deliver(cluster, template(running.fleet, "v3", {"DEMO_ERROR_RATE": "0.3"}))
        broken = wait_until(
            lambda: cluster.status(NAME),
            ok=lambda s: (
                s.get("phase") == "Degraded"
                and (s.get("daemonSet") or {}).get("moving", "AtRest") == "AtRest"
            ),
            timeout=300,
            what="the broken revision rolled back",
        )
        after = all_on(cluster, v1)
        restored = strategy_restored(cluster)
        caught_up(recorder)
        load.stop()
    assert broken["stableRevision"] == v1 and broken["reason"] == "AnalysisFailed", broken
    assert broken["canaryRevision"] not in (None, v1)
    canaries = zone_b(running.fleet)
    for node, uid in before.items():
        if node in canaries:
            assert after[node]["metadata"]["uid"] != uid, (node, node_history(recorder, node))
        else:
            # Never restarted.
            assert after[node]["metadata"]["uid"] == uid, (node, node_history(recorder, node))
    per_node = uids_per_node(recorder)
    assert {n: len(u) for n, u in per_node.items() if len(u) > 1} == {
        node: 3
        for node in canaries  # v1, the broken one, v1 again
    }
    assert restored.spec.update_strategy.rolling_update.max_unavailable == 2
    image = restored.spec.template.spec.containers[0].image
    assert image == "deployctl/demo-app:v1"


def test_killed_controller_resumes_the_daemonset_step_without_extra_replacements(
    cluster: Cluster, running: Running, start_controller: Any, traffic: Any, kube_api: Any
) -> None:
    v1 = running.stable
    with recording(cluster, kube_api) as recorder:
        load = traffic(cluster.namespace, service=NAME, rate_per_second=20)
        deliver(cluster, template(running.fleet, "v2"))
        # Mid-step: the promotion is replacing the other Nodes' pods, one at a time.
        wait_until(
            lambda: cluster.status(NAME),
            ok=lambda s: len((s.get("daemonSet") or {}).get("nodes", {}).get(v1, NODES)) <= 5,
            timeout=300,
            interval=0.05,
            what="half the Nodes replaced",
        )
        running.controller.kill()
        start_controller()
        done = healthy_on(cluster, not_=v1)
        all_on(cluster, done["stableRevision"])
        strategy_restored(cluster)
        caught_up(recorder)
        load.stop()
    per_node = uids_per_node(recorder)
    assert {n: len(u) for n, u in per_node.items()} == dict.fromkeys(running.fleet.node_names, 2)
    down, moment = most_down(recorder)
    assert down <= 1, moment


LEASE = "deployctl-ds"


def test_deployctl_rollout_image_wait_exits_as_for_any_rollout(
    cluster: Cluster, ci_cli: Callable[..., CiCli], traffic: Any, fleet: NodeAgent
) -> None:
    ns = cluster.namespace
    cli = ci_cli(LEASE)
    cluster.create_service(NAME, {"app": NAME}, rollout=None)
    cluster.apps.create_namespaced_daemon_set(ns, daemonset_body(fleet, "v1"))
    cluster.create_template(analysis_template())
    cli.start_controller()
    cluster.apply_rollout(daemonset_rollout(STEPS))
    v1 = healthy_on(cluster)["stableRevision"]
    all_on(cluster, v1)
    cli.wait_for_controller()
    traffic(ns, service=NAME, rate_per_second=20)

    # 0: the image goes into the DaemonSet's template (held at OnDelete); promoted.
    result = cli(
        "rollout", NAME, "-n", ns, "--image", "app=deployctl/demo-app:v2", "--wait",
        "--timeout", "400s", "-o", "json", "--reason", "agent v2",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout)
    v2 = outcome["revision"]
    assert outcome["outcome"] == "Promoted" and v2 != v1, outcome
    before = {node: pod["metadata"]["uid"] for node, pod in all_on(cluster, v2).items()}
    strategy_restored(cluster)
    shown = cli("status", NAME, "-n", ns, "-o", "json", timeout=60)
    assert shown.returncode == 0, shown.stderr
    workload = json.loads(shown.stdout)["workload"]
    assert workload["daemonSet"] == NAME and workload["moving"] == "AtRest"
    assert workload["nodes"] == {v2: {"role": "stable", "nodes": sorted(fleet.node_names)}}
    text = cli("status", NAME, "-n", ns, timeout=60).stdout
    assert f"DaemonSet {NAME}: AtRest; {v2} (stable) {NODES} Nodes: " in text

    # 1: a crash-looping canary is rolled back; only canary Nodes were replaced (the
    # second waits on the first's pod, which never becomes Ready, so it may never go).
    result = cli(
        "rollout", NAME, "-n", ns, "--image", "app=deployctl/demo-app:v3-crash", "--wait",
        "--timeout", "300s",
    )  # fmt: skip
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "rolled back" in result.stderr, result.stderr
    after = all_on(cluster, v2)
    canaries = zone_b(fleet)
    replaced = {n for n in before if after[n]["metadata"]["uid"] != before[n]}
    assert replaced and replaced <= set(canaries), replaced
    assert strategy_restored(cluster).spec.template.spec.containers[0].image.endswith(":v2")
    assert cluster.status(NAME)["stableRevision"] == v2

    # 2: undo names no revision the DaemonSet still keeps: refused, nothing written.
    generation = daemonset(cluster).metadata.generation
    result = cli("undo", NAME, "-n", ns, "--to-revision", "bcdfbcdfb")
    assert result.returncode != 0 and "has no ControllerRevision" in result.stderr, result.stderr
    assert daemonset(cluster).metadata.generation == generation

    # 3: undo goes back to v1, the previous promoted revision, from the DaemonSet's own
    # ControllerRevision, fast-tracked to every Node like any undo; the user's strategy
    # is back at the end.
    result = cli("undo", NAME, "-n", ns, "--wait", "--timeout", "400s", "-o", "json")
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert json.loads(result.stdout)["revision"] == v1, result.stdout
    all_on(cluster, v1)
    assert strategy_restored(cluster).spec.template.spec.containers[0].image.endswith(":v1")
    assert cluster.status(NAME)["stableRevision"] == v1
