"""A Rollout delivering a StatefulSet (``workloadRef: {kind: StatefulSet}``), end to end.

On the sandbox (the real StatefulSet and garbage-collector controllers, the controller
process, the demo app serving 20 requests/s through a Service that selects every
ordinal, the real Prometheus scraping each pod with its ``controller_revision_hash``),
every change of the StatefulSet and its pods recorded from the apiserver
(``tests.integration.podwatch``):

- a 5-replica canary 20% -> analysis -> 60% -> 100%: the partition moves 4 -> 2 -> 0,
  then back to 5 at rest;
- a broken revision (30% 5xx) is rolled back by the analysis: ordinal 4 comes back on
  the old revision, ordinals 0-3 are never restarted (their pod UIDs do not change);
- the controller SIGKILLed mid-step resumes from status and the StatefulSet: each
  ordinal is replaced exactly once;
- ``deployctl rollout NAME --image ... --wait`` ends with the exit codes of any Rollout.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from kubernetes import client as k8s

from tests.integration.harness import CiCli, Cluster, demo_rollout, error_rate_template
from tests.integration.podwatch import Recorder, is_ready, is_terminating
from tests.waiting import wait_until

NAME = "db"
REPLICAS = 5
REVISION = "controller-revision-hash"
ANALYSIS: dict[str, Any] = {"analysis": {"templates": [{"name": "errors"}]}}
STEPS: list[dict[str, Any]] = [{"setWeight": 20}, ANALYSIS, {"setWeight": 60}]


def template(version: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    body = demo_rollout(NAME, version=version, env=env, strategy={})
    return dict(body["spec"]["template"])


def statefulset_body(version: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": NAME},
        "spec": {
            "replicas": REPLICAS,
            "serviceName": NAME,
            "selector": {"matchLabels": {"app": NAME}},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
            "template": template(version),
        },
    }


def statefulset_rollout(steps: list[dict[str, Any]]) -> dict[str, Any]:
    body = demo_rollout(
        NAME, version="unused", strategy={"canary": {"steps": steps}}, progress_deadline=600
    )
    del body["spec"]["template"], body["spec"]["selector"], body["spec"]["replicas"]
    body["spec"]["workloadRef"] = {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": NAME}
    return body


def analysis_template() -> dict[str, Any]:
    """The error-rate preset, scoped by the pods' controller-revision-hash. The canary
    is one pod of five (about 4 requests/s of the 20): measured from 10 s after it
    starts, every 2 s, five times, on 10 requests at least, so that a pod just Ready
    has served enough for a verdict."""
    body = error_rate_template("errors", interval="2s", count=5, initial_delay="10s")
    preset = body["spec"]["metrics"][0]["errorRate"]
    preset.update(revisionLabel="controller_revision_hash", minRequests=10)
    return body


def statefulset(cluster: Cluster) -> Any:
    return cluster.apps.read_namespaced_stateful_set(NAME, cluster.namespace)


def pods(cluster: Cluster) -> dict[str, Any]:
    found = cluster.core.list_namespaced_pod(cluster.namespace, label_selector=f"app={NAME}")
    return {p.metadata.name: p for p in found.items}


def all_on(cluster: Cluster, revision: str) -> dict[str, Any]:
    """The 5 pods once each runs ``revision``, Ready, with the partition back at 5."""

    def ok(found: dict[str, Any]) -> bool:
        sts = statefulset(cluster)
        return (
            len(found) == REPLICAS
            and sts.spec.update_strategy.rolling_update.partition == REPLICAS
            and all(
                p.metadata.labels.get(REVISION) == revision
                and not p.metadata.deletion_timestamp
                and any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
                for p in found.values()
            )
        )

    return dict(
        wait_until(lambda: pods(cluster), ok=ok, timeout=180, what=f"5 Ready pods on {revision}")
    )


def set_template(cluster: Cluster, body: dict[str, Any]) -> None:
    """Replace the StatefulSet's pod template, as a GitOps sync would."""
    for _attempt in range(10):
        current = statefulset(cluster)
        api: Any = cluster.api
        replaced = api.sanitize_for_serialization(current)
        replaced["spec"]["template"] = body
        try:
            cluster.apps.replace_namespaced_stateful_set(NAME, cluster.namespace, replaced)
            return
        except k8s.ApiException as exc:
            if exc.status != 409:
                raise
    raise AssertionError("the StatefulSet kept conflicting on replace")


def healthy_on(cluster: Cluster, *, not_: str | None = None) -> dict[str, Any]:
    return dict(
        wait_until(
            lambda: cluster.status(NAME),
            ok=lambda s: (
                s.get("phase") == "Healthy"
                and s.get("stableRevision") not in (None, not_)
                and (s.get("statefulSet") or {}).get("moving", "AtRest") == "AtRest"
            ),
            timeout=240,
            what="the Rollout Healthy at rest",
        )
    )


@contextmanager
def recording(cluster: Cluster, kube_api: Any) -> Iterator[Recorder]:
    """Every change of the namespace's pods and StatefulSets, in the cluster's order."""
    recorder = Recorder(kube_api, cluster.namespace)
    apps: Any = k8s.AppsV1Api(kube_api)
    recorder.kinds["statefulset"] = lambda **kw: apps.list_namespaced_stateful_set(
        cluster.namespace, **kw
    )
    with recorder:
        yield recorder


def partitions(recorder: Recorder) -> list[int]:
    """The partitions the StatefulSet's spec went through, in order, repeats folded."""
    seen: list[int] = []
    for change in sorted(recorder.changes, key=lambda c: c.rv):
        if change.kind != "statefulset" or change.obj["metadata"]["name"] != NAME:
            continue
        strategy = change.obj["spec"].get("updateStrategy") or {}
        value = int((strategy.get("rollingUpdate") or {}).get("partition", 0))
        if not seen or seen[-1] != value:
            seen.append(value)
    return seen


def uids_per_pod(recorder: Recorder) -> dict[str, set[str]]:
    """Every UID each pod name had while recorded (a replaced pod has two)."""
    found: dict[str, set[str]] = {}
    for change in recorder.changes:
        if change.kind == "pod" and change.obj["metadata"]["name"].startswith(f"{NAME}-"):
            meta = change.obj["metadata"]
            found.setdefault(meta["name"], set()).add(meta["uid"])
    return found


def most_down(recorder: Recorder) -> int:
    """The most ordinals not Ready (or terminating, or missing) at any recorded moment
    after the first listing."""
    worst = 0
    for view in recorder.replay():
        up = sum(
            1
            for name, pod in view.pods.items()
            if name.startswith(f"{NAME}-") and is_ready(pod) and not is_terminating(pod)
        )
        worst = max(worst, REPLICAS - up)
    return worst


def caught_up(recorder: Recorder) -> None:
    wait_until(recorder.caught_up, timeout=60, what="the recording to catch up")
    assert not recorder.errors, recorder.errors


@dataclass
class Running:
    stable: str
    controller: Any


@pytest.fixture
def running(cluster: Cluster, start_controller: Any) -> Running:
    """The StatefulSet at v1 under a Rollout, Healthy at rest."""
    cluster.create_service(NAME, {"app": NAME}, rollout=None)
    cluster.apps.create_namespaced_stateful_set(cluster.namespace, statefulset_body("v1"))
    cluster.create_template(analysis_template())
    controller = start_controller()
    cluster.apply_rollout(statefulset_rollout(STEPS))
    status = healthy_on(cluster)
    all_on(cluster, status["stableRevision"])
    return Running(str(status["stableRevision"]), controller)


def test_statefulset_canary_moves_the_partition_4_2_0(
    cluster: Cluster, running: Running, traffic: Any, kube_api: Any
) -> None:
    v1 = running.stable
    with recording(cluster, kube_api) as recorder:
        load = traffic(cluster.namespace, service=NAME, rate_per_second=20)
        set_template(cluster, template("v2"))
        done = healthy_on(cluster, not_=v1)
        v2 = done["stableRevision"]
        all_on(cluster, v2)
        caught_up(recorder)
        load.stop()
    assert v2.startswith(f"{NAME}-") and v2 != v1
    runs = [r for r in done["analysisRuns"] if r["revision"] == v2]
    assert runs and runs[-1]["phase"] == "Successful", done
    assert partitions(recorder) == [REPLICAS, 4, 2, 0, REPLICAS]
    # The StatefulSet controller replaced each ordinal once, highest first, one at a time.
    assert all(len(uids) == 2 for uids in uids_per_pod(recorder).values())
    assert most_down(recorder) <= 1
    assert done["statefulSet"]["ordinals"] == {v2: [0, 1, 2, 3, 4]}


def test_broken_statefulset_revision_is_rolled_back_by_analysis(
    cluster: Cluster, running: Running, traffic: Any, kube_api: Any
) -> None:
    v1 = running.stable
    before = {name: pod.metadata.uid for name, pod in pods(cluster).items()}
    with recording(cluster, kube_api) as recorder:
        load = traffic(cluster.namespace, service=NAME, rate_per_second=20)
        set_template(cluster, template("v3", {"DEMO_ERROR_RATE": "0.3"}))
        broken = wait_until(
            lambda: cluster.status(NAME),
            ok=lambda s: (
                s.get("phase") == "Degraded"
                and (s.get("statefulSet") or {}).get("moving", "AtRest") == "AtRest"
            ),
            timeout=240,
            what="the broken revision rolled back",
        )
        after = all_on(cluster, v1)
        caught_up(recorder)
        load.stop()
    assert broken["stableRevision"] == v1 and broken["reason"] == "AnalysisFailed", broken
    assert broken["canaryRevision"] not in (None, v1)
    # Ordinal 4 went to the broken revision and came back; 0-3 were never restarted.
    assert partitions(recorder) == [REPLICAS, 4, REPLICAS]
    for ordinal in range(4):
        assert after[f"{NAME}-{ordinal}"].metadata.uid == before[f"{NAME}-{ordinal}"]
    assert after[f"{NAME}-4"].metadata.uid != before[f"{NAME}-4"]
    assert len(uids_per_pod(recorder)[f"{NAME}-4"]) == 3  # v1, the broken one, v1 again
    spec = statefulset(cluster).spec.template.spec.containers[0]
    assert spec.image == "deployctl/demo-app:v1"
    assert cluster.events_when(
        ok=lambda events: bool(events), what="the AnalysisFailed Event", reason="AnalysisFailed"
    )


def test_killed_controller_resumes_the_statefulset_step_without_extra_replacements(
    cluster: Cluster, running: Running, start_controller: Any, traffic: Any, kube_api: Any
) -> None:
    v1 = running.stable
    with recording(cluster, kube_api) as recorder:
        load = traffic(cluster.namespace, service=NAME, rate_per_second=20)
        set_template(cluster, template("v2"))
        # Mid-step: the 60% step has lowered the partition to 2 and its ordinals move.
        wait_until(
            lambda: statefulset(cluster).spec.update_strategy.rolling_update.partition,
            ok=lambda partition: partition == 2,
            timeout=240,
            interval=0.05,
            what="the 60% step under way",
        )
        killed = cluster.rollout(NAME)["status"]
        running.controller.kill()
        start_controller()
        done = healthy_on(cluster, not_=v1)
        all_on(cluster, done["stableRevision"])
        caught_up(recorder)
        load.stop()
    assert killed["stableRevision"] == v1, killed  # killed before the promotion
    assert partitions(recorder) == [REPLICAS, 4, 2, 0, REPLICAS]
    assert {name: len(uids) for name, uids in uids_per_pod(recorder).items()} == {
        f"{NAME}-{o}": 2 for o in range(REPLICAS)
    }
    assert json.dumps(done["statefulSet"]["ordinals"]) == json.dumps(
        {done["stableRevision"]: list(range(REPLICAS))}
    )


LEASE = "deployctl-sts"


def on_v1_driven_by(cluster: Cluster, cli: CiCli) -> str:
    """The StatefulSet at v1 under its Rollout, with the controller ``cli`` drives: v1's
    revision, once every ordinal runs it and the CLI finds the controller."""
    cluster.create_service(NAME, {"app": NAME}, rollout=None)
    cluster.apps.create_namespaced_stateful_set(cluster.namespace, statefulset_body("v1"))
    cluster.create_template(analysis_template())
    cli.start_controller()
    cluster.apply_rollout(statefulset_rollout(STEPS))
    v1 = str(healthy_on(cluster)["stableRevision"])
    all_on(cluster, v1)
    cli.wait_for_controller()
    return v1


def test_deployctl_rollout_image_wait_exits_as_for_any_rollout(
    cluster: Cluster, ci_cli: Callable[..., CiCli], traffic: Any
) -> None:
    ns = cluster.namespace
    cli = ci_cli(LEASE)
    v1 = on_v1_driven_by(cluster, cli)
    traffic(ns, service=NAME, rate_per_second=20)

    # 0: the image goes into the StatefulSet's template; the canary promotes it.
    result = cli(
        "rollout", NAME, "-n", ns, "--image", "app=deployctl/demo-app:v2", "--wait",
        "--timeout", "300s", "-o", "json", "--reason", "db v2",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout)
    v2 = outcome["revision"]
    assert outcome["outcome"] == "Promoted" and v2.startswith(f"{NAME}-") and v2 != v1, outcome
    shown = cli("status", NAME, "-n", ns, "-o", "json", timeout=60)
    assert shown.returncode == 0, shown.stderr
    workload = json.loads(shown.stdout)["workload"]
    assert workload["statefulSet"] == NAME and workload["partition"] == REPLICAS
    assert workload["ordinals"] == {v2: {"role": "stable", "ordinals": [0, 1, 2, 3, 4]}}
    text = cli("status", NAME, "-n", ns, timeout=60).stdout
    assert f"StatefulSet {NAME}: AtRest, partition {REPLICAS}; {v2} (stable) ordinals 0-4" in text
    before = {name: pod.metadata.uid for name, pod in all_on(cluster, v2).items()}

    # 1: a crash-looping canary is rolled back; only ordinal 4 was ever replaced.
    result = cli(
        "rollout", NAME, "-n", ns, "--image", "app=deployctl/demo-app:v3-crash", "--wait",
        "--timeout", "300s",
    )  # fmt: skip
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "rolled back" in result.stderr, result.stderr
    after = all_on(cluster, v2)
    for ordinal in range(4):
        assert after[f"{NAME}-{ordinal}"].metadata.uid == before[f"{NAME}-{ordinal}"]
    assert statefulset(cluster).spec.template.spec.containers[0].image.endswith(":v2")
    assert cluster.status(NAME)["stableRevision"] == v2

    # 2: undo names no revision the StatefulSet still keeps: refused, nothing written.
    generation = statefulset(cluster).metadata.generation
    result = cli("undo", NAME, "-n", ns, "--to-revision", f"{NAME}-0000000")
    assert result.returncode != 0 and "has no ControllerRevision" in result.stderr, result.stderr
    assert statefulset(cluster).metadata.generation == generation

    # 3: undo goes back to v1, the previous promoted revision, from the StatefulSet's
    # own ControllerRevision, fast-tracked to 100% like any undo.
    result = cli("undo", NAME, "-n", ns, "--wait", "--timeout", "300s", "-o", "json")
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert json.loads(result.stdout)["revision"] == v1, result.stdout
    all_on(cluster, v1)
    assert statefulset(cluster).spec.template.spec.containers[0].image.endswith(":v1")
    assert cluster.status(NAME)["stableRevision"] == v1
