"""The operator under the things that go wrong in real life.

One controller serves several rollouts at once: a revision replaced mid-rollout, a
crash-looping canary, a canary that never becomes ready (progress deadline), and an
invalid spec that must not disturb the others. Then the controller is SIGKILLed mid-step
and resumes with the same timers, and two controllers share one leader Lease.
"""

from __future__ import annotations

import time
import urllib.request
from typing import Any

from controller.names import REVISION_LABEL
from controller.times import parse_timestamp
from tests.integration.harness import Cluster, demo_rollout
from tests.waiting import wait_until


def canary(
    name: str,
    version: str,
    steps: list[dict[str, Any]],
    *,
    image_tag: str | None = None,
    deadline: int = 120,
    replicas: int = 2,
) -> dict[str, Any]:
    body = demo_rollout(
        name,
        version=version,
        replicas=replicas,
        progress_deadline=deadline,
        strategy={"canary": {"steps": steps, "scaleDownDelaySeconds": 0}},
    )
    if image_tag is not None:
        body["spec"]["template"]["spec"]["containers"][0]["image"] = (
            f"deployctl/demo-app:{image_tag}"
        )
    return body


def replicas_of(cluster: Cluster, rollout: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for rs in cluster.apps.list_namespaced_replica_set(cluster.namespace).items:
        labels = rs.metadata.labels or {}
        if labels.get("deployctl.io/rollout") == rollout:
            out[labels[REVISION_LABEL]] = rs.spec.replicas or 0
    return out


def status_when(cluster: Cluster, name: str, ok: Any, *, timeout: float, what: str) -> Any:
    return wait_until(lambda: cluster.status(name), ok=ok, timeout=timeout, what=what)


def healthy(cluster: Cluster, name: str) -> str:
    status = status_when(
        cluster,
        name,
        lambda s: s.get("phase") == "Healthy" and s.get("stableRevision"),
        timeout=60,
        what=f"{name} healthy",
    )
    return str(status["stableRevision"])


PAUSE_FOREVER: list[dict[str, Any]] = [{"setWeight": 25}, {"pause": {}}]
QUICK: list[dict[str, Any]] = [{"setWeight": 50}, {"pause": {"duration": "1s"}}]


def test_one_controller_handles_superseded_crashing_stuck_and_invalid_rollouts(
    cluster: Cluster, start_controller: Any
) -> None:
    controller = start_controller()
    cluster.apply_rollout(canary("sup", "v1", PAUSE_FOREVER, replicas=4))
    cluster.apply_rollout(canary("crash", "v1", QUICK))
    cluster.apply_rollout(canary("stuck", "v1", QUICK, deadline=5))
    stable = {name: healthy(cluster, name) for name in ("sup", "crash", "stuck")}

    # An invalid spec that only the model can tell (the CRD's schema and CEL rules let it
    # through): a selector that does not match the pod template's labels.
    invalid = demo_rollout("bad", version="v1", strategy={"canary": {"steps": QUICK}})
    invalid["spec"]["selector"] = {"matchLabels": {"app": "other"}}
    cluster.apply_rollout(invalid)

    cluster.apply_rollout(canary("sup", "v2", PAUSE_FOREVER, replicas=4))
    cluster.apply_rollout(canary("crash", "v2", QUICK, image_tag="v2-crash"))
    cluster.apply_rollout(canary("stuck", "v2", QUICK, image_tag="v2-never-ready", deadline=5))

    # The invalid one: condition with the field path, a Warning Event, nothing created.
    bad = status_when(
        cluster,
        "bad",
        lambda s: any(
            c["type"] == "InvalidSpec" and c["status"] == "True" for c in s.get("conditions", [])
        ),
        timeout=30,
        what="InvalidSpec on bad",
    )
    assert "selector.matchLabels must match template.metadata.labels" in bad["message"]
    assert "app=other" in bad["message"]
    assert replicas_of(cluster, "bad") == {}
    cluster.events_when(
        lambda events: any(e.involved_object.name == "bad" for e in events),
        reason="InvalidSpec",
        what="an InvalidSpec Event about bad",
    )

    # Superseded: v2 paused at 25% (1 of 4 pods), then v3 takes its share; stable stays.
    v2 = status_when(
        cluster,
        "sup",
        lambda s: s.get("phase") == "Paused" and s.get("weight") == 25,
        timeout=30,
        what="sup v2 paused at 25%",
    )["canaryRevision"]
    cluster.apply_rollout(canary("sup", "v3", PAUSE_FOREVER, replicas=4))
    v3 = status_when(
        cluster,
        "sup",
        lambda s: s.get("canaryRevision") not in (None, v2),
        timeout=30,
        what="sup v3 as the canary",
    )["canaryRevision"]
    wait_until(
        lambda: replicas_of(cluster, "sup"),
        ok=lambda r: r.get(v2, 0) == 0 and r.get(v3) == 1 and r.get(stable["sup"]) == 3,
        timeout=30,
        what="v2 scaled away, v3 at 25% of the pods, stable the other 3",
    )
    sup = cluster.status("sup")
    assert sup["stableRevision"] == stable["sup"]
    assert [h["outcome"] for h in sup["history"] if h["revision"] == v2] == ["Superseded"]

    # Crash-looping canary: aborted with the reason, stable untouched.
    crash = status_when(
        cluster,
        "crash",
        lambda s: s.get("phase") == "Degraded",
        timeout=60,
        what="crash-looping canary aborted",
    )
    assert crash["reason"] == "CanaryCrashLooping", crash
    assert crash["stableRevision"] == stable["crash"]
    wait_until(
        lambda: replicas_of(cluster, "crash"),
        ok=lambda r: r.get(crash["canaryRevision"], 0) == 0 and r.get(stable["crash"]) == 2,
        timeout=30,
        what="crashing canary scaled to 0",
    )

    # Never ready: the progress deadline (5 s) aborts it.
    stuck = status_when(
        cluster,
        "stuck",
        lambda s: s.get("phase") == "Degraded",
        timeout=60,
        what="stuck canary past its deadline",
    )
    assert stuck["reason"] == "ProgressDeadlineExceeded", stuck
    assert stuck["stableRevision"] == stable["stuck"]
    for reason in ("CanaryCrashLooping", "ProgressDeadlineExceeded"):
        cluster.events_when(
            lambda events: [e for e in events if e.type == "Warning"],
            reason=reason,
            what=f"a Warning Event {reason}",
        )

    # The controller's own metrics saw all of it, and its probes are up.
    base = controller.metrics_url()
    metrics = urllib.request.urlopen(f"{base}/metrics", timeout=5).read().decode()
    for family in (
        "deployctl_reconcile_total",
        "deployctl_reconcile_duration_seconds_bucket",
        "deployctl_workqueue_depth",
        "deployctl_reconcile_errors_total",
        "deployctl_rollback_latency_seconds",
        "deployctl_analysis_measurements_total",
        "deployctl_rollouts",
        "deployctl_api_requests_total",
    ):
        assert family in metrics, family
    assert 'phase="Degraded"' in metrics
    for probe in ("healthz", "readyz"):
        assert urllib.request.urlopen(f"{base}/{probe}", timeout=5).status == 200
    assert controller.process.poll() is None


def test_a_killed_controller_resumes_the_same_step_with_the_same_timer(
    cluster: Cluster, start_controller: Any
) -> None:
    steps: list[dict[str, Any]] = [
        {"setWeight": 25},
        {"pause": {"duration": "20s"}},
        {"setWeight": 50},
        {"pause": {"duration": "1s"}},
    ]
    first = start_controller()
    cluster.apply_rollout(canary("k", "v1", steps))
    healthy(cluster, "k")
    cluster.apply_rollout(canary("k", "v2", steps))
    paused = status_when(
        cluster,
        "k",
        lambda s: s.get("currentStepIndex") == 1,
        timeout=30,
        what="the 20 s pause step",
    )
    started_at = _parse(paused["currentStepStartedAt"])
    # Kill 5 s into the 20 s pause (a scenario time, not a synchronisation wait). The
    # long pause leaves the new controller 15 s to start and sync on a loaded machine.
    wait_until(
        time.time, ok=lambda now: now >= started_at + 5, timeout=15, what="5 s into the pause"
    )
    first.kill()

    start_controller()
    at_50 = status_when(
        cluster,
        "k",
        lambda s: (s.get("currentStepIndex") or 0) >= 2,
        timeout=45,
        what="the step after the pause",
    )
    # The pause kept its original start: the next step began 20 s after the pause did
    # (stamps have 1 s resolution: < 23 s). A restarted timer would have begun it 20 s
    # after the restart: 25 s or more.
    next_started = _parse(at_50["currentStepStartedAt"])
    assert 19.5 <= next_started - started_at < 23, next_started - started_at
    done = status_when(
        cluster,
        "k",
        lambda s: (
            s.get("phase") == "Healthy" and s.get("stableRevision") == paused["canaryRevision"]
        ),
        timeout=60,
        what="k promoted after the restart",
    )
    history = [h for h in done["history"] if h["revision"] == paused["canaryRevision"]]
    assert [h["outcome"] for h in history] == ["Promoted"]
    # No step started twice: each step's Event was recorded once (count stays 1).
    step_events = [
        e
        for e in cluster.events()
        if e.involved_object.name == "k" and e.reason in ("StepStarted", "WeightSet")
    ]
    assert step_events and all((e.count or 1) == 1 for e in step_events), [
        (e.reason, e.message, e.count) for e in step_events
    ]


def _parse(stamp: str) -> float:
    return parse_timestamp(stamp).timestamp()


def test_two_controllers_one_leader_and_the_standby_takes_over(
    cluster: Cluster, start_controller: Any, kube_api: Any
) -> None:
    from kubernetes import client as k8s

    lease_args = [
        "--lease-namespace",
        cluster.namespace,
        "--lease-name",
        "ctl",
        "--lease-duration",
        "4",
        "--renew-deadline",
        "3",
        "--retry-period",
        "0.5",
    ]
    a = start_controller(lease_args)
    b = start_controller(lease_args)
    coordination = k8s.CoordinationV1Api(kube_api)

    def holder() -> str:
        try:
            lease = coordination.read_namespaced_lease("ctl", cluster.namespace)
        except k8s.ApiException:
            return ""
        return (lease.spec.holder_identity if lease.spec else "") or ""

    leader_id = wait_until(holder, ok=bool, timeout=60, what="a leader")
    leader, standby = (a, b) if leader_id.endswith(f"_{a.process.pid}") else (b, a)
    assert leader_id.endswith(f"_{leader.process.pid}"), leader_id

    steps: list[dict[str, Any]] = [{"setWeight": 50}, {"pause": {"duration": "1s"}}]
    cluster.apply_rollout(canary("ha", "v1", steps))
    healthy(cluster, "ha")
    # The standby never acted: it held no shard, and every status write is the leader's.
    assert "acting on shards" not in _log_events(standby)
    assert cluster.rollout("ha")["status"]["controller"] == leader_id

    cluster.apply_rollout(canary("ha", "v2", steps, replicas=2))
    leader.kill()
    killed = time.monotonic()
    new_id = wait_until(
        holder, ok=lambda h: h not in ("", leader_id), timeout=15, what="the takeover"
    )
    took = time.monotonic() - killed
    assert new_id.endswith(f"_{standby.process.pid}")
    assert took < 4 + 2, f"standby took {took:.1f} s for a 4 s lease"
    healthy_after = status_when(
        cluster,
        "ha",
        lambda s: (
            s.get("phase") == "Healthy"
            and s.get("observedGeneration") == cluster.rollout("ha")["metadata"]["generation"]
        ),
        timeout=60,
        what="ha finished by the standby",
    )
    assert healthy_after["stableRevision"]

    # SIGTERM: the leader finishes its work and gives the Lease up at once.
    assert standby.terminate(timeout=20) == 0
    wait_until(holder, ok=lambda h: h == "", timeout=5, what="the lease released on SIGTERM")


def _log_events(process: Any) -> str:
    return str(process.log_text())
