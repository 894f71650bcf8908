"""Canary and blue-green as users feel them: Ready pods behind every Service that gets
traffic, watched through promotions, aborts, a newer revision and a switch back.

Six Rollouts at once under the real controller process, every change to their pods,
Services and HTTPRoutes recorded from the apiserver and replayed in order
(``tests.integration.podwatch``). On **every** state:

- canary by replica share: the stable Service selects ``replicas`` Ready pods (the
  canary is added on top; stable never shrinks);
- canary with Gateway API weights and dynamicStableScale: every backend Service with a
  weight ``w`` selects at least ``ceil(w% x replicas)`` Ready pods, through setWeight
  steps, a promotion, an **abort at 75%** (stable had shrunk to 2 of 8 pods and must
  come back before traffic does) and a **newer revision at 75%** (the same, before the
  newer one starts);
- blue-green: the active Service always selects a revision with all its pods Ready:
  the switch waits for them, and after a post-promotion abort the **switch back** waits
  for the old revision to replace a pod it lost.

Twice, with one sandbox for the file: on slow nodes (Ready after 1-2 s, Terminating 1 s)
and on fast nodes with every request of the controller delayed by the fault proxy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from controller.api.revision import template_hash
from controller.api.rollout import PodTemplateSpec
from strategies.traffic import share
from tests.integration.harness import GROUP, VERSION, demo_rollout
from tests.integration.pinned import Pinned, pin, pinned_sandbox
from tests.integration.podwatch import GATEWAY, Recorder, View
from tests.waiting import wait_until

ROUTED = {"cd": 8, "cp": 8, "cn": 8}  # dynamic stable scale: abort, promote, newer
REPLICA_SHARE = {"cs": 4}
BLUE_GREEN = {"bg": 3, "bb": 3}  # switch; switch back after a lost pod
TO_75 = [{"setWeight": 25}, {"pause": {"duration": "1s"}}, {"setWeight": 75}]


def strategy(name: str) -> dict[str, Any]:
    if name in ROUTED:
        steps = TO_75 + ([{"pause": {"duration": "1s"}}] if name == "cp" else [{"pause": {}}])
        return {
            "canary": {
                "stableService": name,
                "canaryService": f"{name}-canary",
                "trafficRouting": {"gatewayAPI": {"httpRoute": name}},
                "dynamicStableScale": True,
                "scaleDownDelaySeconds": 1,
                "steps": steps,
            }
        }
    if name in REPLICA_SHARE:
        steps = [{"setWeight": 25}, {"pause": {"duration": "1s"}}, {"setWeight": 50}]
        return {"canary": {"stableService": name, "steps": steps, "scaleDownDelaySeconds": 1}}
    bg: dict[str, Any] = {"activeService": name, "scaleDownDelaySeconds": 1}
    if name == "bb":
        bg["postPromotionAnalysis"] = {"templates": [{"name": "always"}]}
    return {"blueGreen": bg}


REPLICAS = {**ROUTED, **REPLICA_SHARE, **BLUE_GREEN}


@dataclass
class Fleet:
    box: Pinned
    version: int = 1
    revisions: dict[str, str] = field(default_factory=dict)

    def apply(self, name: str, node: str, *, version: int | None = None) -> str:
        body = pin(
            demo_rollout(
                name,
                version=f"v{version or self.version}",
                replicas=REPLICAS[name],
                strategy=strategy(name),
                progress_deadline=600,
            ),
            node,
        )
        self.box.cluster.apply_rollout(body)
        revision = template_hash(PodTemplateSpec.model_validate(body["spec"]["template"]))
        self.revisions[name] = revision
        return revision

    def wait(self, name: str, ok: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
        return dict(
            wait_until(
                lambda: self.box.cluster.status(name), ok=ok, timeout=300, what=f"{name}: {what}"
            )
        )


def create_route(custom: Any, namespace: str, name: str) -> None:
    refs = [
        {"name": name, "port": 8080, "weight": 100},
        {"name": f"{name}-canary", "port": 8080, "weight": 0},
    ]
    body = {
        "apiVersion": f"{GATEWAY[0]}/{GATEWAY[1]}",
        "kind": "HTTPRoute",
        # The consent annotation: the Rollout of that name may set this route's weights.
        "metadata": {"name": name, "annotations": {"deployctl.io/rollout": name}},
        "spec": {"parentRefs": [{"name": "sandbox-gateway"}], "rules": [{"backendRefs": refs}]},
    }
    custom.create_namespaced_custom_object(GATEWAY[0], GATEWAY[1], namespace, GATEWAY[2], body)


@pytest.fixture(scope="module")
def fleet(
    control_plane: Any, kube_api: Any, prometheus: Any, httproute_crd: str, tmp_path_factory: Any
) -> Iterator[Fleet]:
    workdir: Path = tmp_path_factory.mktemp("availability-canary-bluegreen")
    with pinned_sandbox(control_plane, kube_api, workdir, prometheus_url=prometheus.url) as box:
        cluster, custom = box.cluster, k8s.CustomObjectsApi(kube_api)
        for name in REPLICAS:
            cluster.create_service(name, {"app": name}, rollout=name)
        for name in ROUTED:
            cluster.create_service(f"{name}-canary", {"app": name}, rollout=name)
            create_route(custom, box.namespace, name)
        # A post-promotion check that passes and keeps running: the time to abort in.
        metric = {
            "name": "up",
            "interval": "1s",
            "count": 3600,
            "threshold": {"min": 0},
            "provider": {"prometheus": {"query": "vector(1)"}},
        }
        cluster.create_template(
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "AnalysisTemplate",
                "metadata": {"name": "always"},
                "spec": {"metrics": [metric]},
            }
        )
        fleet = Fleet(box)
        for name in REPLICAS:
            fleet.apply(name, box.fast)
        for name in REPLICAS:
            fleet.wait(name, lambda s: s.get("phase") == "Healthy", "v1 Healthy")
        yield fleet


def violations_of(view: View) -> Iterator[str]:
    for name, replicas in {**REPLICA_SHARE, **BLUE_GREEN}.items():
        revision = view.selected(name)
        if view.serving(name, revision) < replicas:
            yield f"{name}: Service selects {revision} with {view.serving(name, revision)} Ready"
    for name, replicas in ROUTED.items():
        for service, weight in view.weights(name).items():
            revision = view.selected(service)
            ready, needed = view.serving(name, revision), share(weight, replicas)
            if weight > 0 and ready < needed:
                yield f"{name}: {weight}% to {service} ({revision}), {ready} Ready of {needed}"


def scenario(fleet: Fleet, node: str) -> None:
    """Every Rollout through its story on ``node``; returns when all are at rest."""
    fleet.version += 1
    box, version = fleet.box, fleet.version
    new = {name: fleet.apply(name, node) for name in REPLICAS}

    def at_75(status: dict[str, Any]) -> bool:
        return status.get("weight") == 75 and status.get("reason") == "PauseStep"

    fleet.wait(
        "bb",
        lambda s: s.get("canaryRevision") == new["bb"] and s.get("currentStepIndex") == 3,
        "switched, post-promotion",
    )
    # The old revision loses a pod just before the abort: the switch back must wait.
    stable = box.cluster.status("bb")["stableRevision"]
    selector = f"deployctl.io/rollout=bb,deployctl.io/revision={stable}"

    def old_pods() -> list[Any]:
        return list(
            box.cluster.core.list_namespaced_pod(box.namespace, label_selector=selector).items
        )

    lost = old_pods()[0].metadata.name
    box.cluster.core.delete_namespaced_pod(lost, box.namespace)
    # Abort once the loss is old news (its replacement exists), not in the same
    # millisecond: a watch-fed cache cannot be asked to beat that race.
    wait_until(
        old_pods,
        ok=lambda pods: sum(1 for p in pods if not p.metadata.deletion_timestamp) >= 3,
        timeout=60,
        what="a replacement for bb's lost pod",
    )
    box.request("bb", "abort")

    fleet.wait("cd", at_75, "paused at 75%")
    box.request("cd", "abort")
    fleet.wait("cn", at_75, "paused at 75%")
    newer = fleet.apply("cn", node, version=version + 100)
    fleet.wait(
        "cn", lambda s: s.get("canaryRevision") == newer and at_75(s), "the newer one at 75%"
    )
    box.request("cn", "promoteFull")

    for name in ("cs", "cp", "bg"):
        fleet.wait(
            name,
            lambda s: s.get("phase") == "Healthy" and s.get("stableRevision") == new[name],  # noqa: B023
            "promoted",
        )
    fleet.wait(
        "cn",
        lambda s: s.get("phase") == "Healthy" and s.get("stableRevision") == newer,
        "newer promoted",
    )
    fleet.wait(
        "cd",
        lambda s: s.get("phase") == "Degraded" and s.get("weight", 0) == 0,
        "aborted, traffic back",
    )
    fleet.wait("bb", lambda s: bool(s.get("aborted")) and "promotedAt" not in s, "switched back")
    wait_until(
        lambda: box.cluster.service_selector("bb").get("deployctl.io/revision"),
        ok=lambda revision: revision == stable,
        timeout=60,
        what="bb's active Service back on the old revision",
    )
    # Everything at rest: no rollout still scaling down an old revision.
    wait_until(
        lambda: box.cluster.replicas_by_revision(),
        ok=lambda replicas: sum(replicas.values()) == sum(REPLICAS.values()),
        timeout=120,
        what="every old revision scaled down",
    )


def watched(fleet: Fleet, node: str) -> None:
    with Recorder(fleet.box.api, fleet.box.namespace, routes=True) as recorder:
        scenario(fleet, node)
        wait_until(recorder.caught_up, ok=bool, timeout=60, what="the recording to catch up")
    assert not recorder.errors, recorder.errors
    problems: list[str] = []
    weights_seen: set[int] = set()
    for view in recorder.replay():
        weights_seen.update(view.weights("cd").values())
        for problem in violations_of(view):
            if len(problems) < 20:
                problems.append(f"at resourceVersion {view.rv}: {problem}")
    print(f"\n{len(recorder.changes)} changes replayed; cd weights seen {sorted(weights_seen)}")
    assert not problems, "\n".join(problems)
    assert {25, 75} <= weights_seen  # the route did move (and came back)


def test_slow_nodes(fleet: Fleet) -> None:
    watched(fleet, fleet.box.slow)


def test_api_latency(fleet: Fleet) -> None:
    fleet.box.proxy.latency_seconds = 0.1
    try:
        watched(fleet, fleet.box.fast)
    finally:
        fleet.box.proxy.latency_seconds = 0.0
