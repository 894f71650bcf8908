"""Canary weights as users get them: by replica share the weight is the canary's share
of the pods, measured by the sandbox's traffic generator through each application's
Service, with every change to the pods replayed in etcd order (``podwatch``).

- Three Rollouts at once (4, 5 and 10 replicas, each with its own maxSurge /
  maxUnavailable) through setWeight 20, 50 and 80: at every step the requests that
  reached the canary are within one pod of the weight, ``status.weight`` is the share
  the pods give, and on every state of the cluster the Ready pods stay at or above
  ``replicas - maxUnavailable`` and the pods at or below ``replicas + maxSurge``.
- ``kubectl scale`` through the scale subresource mid-canary, 10 to 20 replicas at
  setWeight 10: 1 canary / 9 stable becomes 2 / 18 with the stable never above 18, the
  split measured again; the /scale read an HorizontalPodAutoscaler makes answers the
  size and the pods' selector. (The sandbox serves no metrics API, so the HPA controller
  itself cannot compute a size here: its request is made as it makes it.)
"""

from __future__ import annotations

from typing import Any

from kubernetes import client as k8s

from controller.names import REQUEST_ANNOTATION
from controller.requests import new_request
from strategies.scaling import surge_and_unavailable
from tests.integration.harness import GROUP, VERSION, Cluster, demo_rollout
from tests.integration.podwatch import Recorder, View
from tests.waiting import wait_until

# name -> (replicas, maxSurge, maxUnavailable)
SIZES: dict[str, tuple[int, int | str, int | str]] = {
    "w4": (4, 1, 0),
    "w5": (5, "25%", "25%"),
    "w10": (10, 0, "20%"),
}
STEPS: list[dict[str, Any]] = [
    {"setWeight": 20},
    {"pause": {}},
    {"setWeight": 50},
    {"pause": {}},
    {"setWeight": 80},
    {"pause": {}},
]
REQUESTS_PER_MEASURE = 200


def poll(get: Any, ok: Any, *, timeout: float, what: str) -> Any:
    return wait_until(get, ok=ok, timeout=timeout, what=what)


def rollout(name: str, version: str, replicas: int, surge: Any, unavailable: Any) -> dict[str, Any]:
    strategy = {
        "canary": {
            "steps": STEPS if name in SIZES else [{"setWeight": 10}, {"pause": {}}],
            "maxSurge": surge,
            "maxUnavailable": unavailable,
            "scaleDownDelaySeconds": 0,
        }
    }
    return demo_rollout(
        name, version=version, replicas=replicas, strategy=strategy, progress_deadline=600
    )


def request(cluster: Cluster, name: str, action: str) -> None:
    """What ``deployctl <action>`` writes: a request annotation with a fresh id."""
    body = new_request(action, by="weights-test")  # type: ignore[arg-type]
    cluster.patch_rollout(
        name, {"metadata": {"annotations": {REQUEST_ANNOTATION: body.to_annotation()}}}
    )


def at_pause(cluster: Cluster, name: str, index: int) -> dict[str, Any]:
    return dict(
        poll(
            lambda: cluster.status(name),
            lambda s: s.get("currentStepIndex") == index and s.get("reason") == "PauseStep",
            timeout=300,
            what=f"{name} paused at step {index}",
        )
    )


def pods_settled(cluster: Cluster, name: str) -> dict[str, int]:
    """The app's pods per revision once every ReplicaSet has the pods it asks for and none
    is being deleted. The controller reports a step once it has sized the ReplicaSets; the
    ReplicaSet controller deletes the pods a moment later, and a request sent to one in
    that moment measures the deletion, not the split."""

    def read() -> tuple[dict[str, int], dict[str, int], bool]:
        wanted = {
            (rs.metadata.labels or {}).get("deployctl.io/revision", ""): rs.spec.replicas or 0
            for rs in cluster.apps.list_namespaced_replica_set(
                cluster.namespace, label_selector=f"app={name}"
            ).items
        }
        pods = cluster.core.list_namespaced_pod(cluster.namespace, label_selector=f"app={name}")
        live: dict[str, int] = {}
        deleting = False
        for pod in pods.items:
            if pod.metadata.deletion_timestamp is not None:
                deleting = True
                continue
            revision = (pod.metadata.labels or {}).get("deployctl.io/revision", "")
            live[revision] = live.get(revision, 0) + 1
        return wanted, live, deleting

    def settled(state: tuple[dict[str, int], dict[str, int], bool]) -> bool:
        wanted, live, deleting = state
        return not deleting and {r: n for r, n in wanted.items() if n} == live

    return poll(read, settled, timeout=120, what=f"{name}'s pods to match its ReplicaSets")[1]  # type: ignore[no-any-return]


def measured_share(generator: Any, revision: str) -> float:
    """Percent of the next requests that the canary answered."""
    # The generator rereads the pods every 0.5 s (as a proxy's endpoints lag): read them
    # now, so the pods the step just removed are not asked in the first half second.
    generator.refresh()
    generator.reset()
    stats = poll(
        generator.stats, lambda s: s.total >= REQUESTS_PER_MEASURE, timeout=120, what="requests"
    )
    assert stats.error_ratio() == 0, stats.counts
    return 100 * float(stats.share(revision))


def bounds_violations(view: View) -> list[str]:
    problems = []
    for name, (replicas, surge_spec, unavailable_spec) in SIZES.items():
        surge, unavailable = surge_and_unavailable(surge_spec, unavailable_spec, replicas=replicas)
        if view.serving(name) < replicas - unavailable:
            problems.append(f"{name}: {view.serving(name)} Ready of {replicas}")
        if view.existing(name) > replicas + surge:
            problems.append(f"{name}: {view.existing(name)} pods, above {replicas}+{surge}")
    return problems


def test_replica_share_weights_are_the_measured_split_within_the_budget(
    cluster: Cluster, start_controller: Any, traffic: Any, kube_api: k8s.ApiClient
) -> None:
    for name in SIZES:
        cluster.create_service(name, {"app": name}, rollout=None)
    start_controller()
    stable: dict[str, str] = {}
    for name, (replicas, surge, unavailable) in SIZES.items():
        cluster.apply_rollout(rollout(name, "v1", replicas, surge, unavailable))
    for name in SIZES:
        status = poll(
            lambda: cluster.status(name),  # noqa: B023
            lambda s: s.get("phase") == "Healthy",
            timeout=180,
            what=f"{name} v1 Healthy",
        )
        stable[name] = status["stableRevision"]
    generators = {
        name: traffic(cluster.namespace, service=name, rate_per_second=40) for name in SIZES
    }
    seen: dict[str, list[tuple[int, int, float]]] = {name: [] for name in SIZES}
    with Recorder(kube_api, cluster.namespace) as recorder:
        for name, (replicas, surge, unavailable) in SIZES.items():
            cluster.apply_rollout(rollout(name, "v2", replicas, surge, unavailable))
        for index in (1, 3, 5):
            weight = STEPS[index - 1]["setWeight"]
            for name, (replicas, _, _) in SIZES.items():
                status = at_pause(cluster, name, index)
                canary = status["canaryRevision"]
                pods = pods_settled(cluster, name)
                share = measured_share(generators[name], canary)
                seen[name].append((weight, status["weight"], share))
                # Within one pod of the weight, and status says what users got.
                assert abs(share - weight) <= 100 / replicas + 2, (name, weight, share, pods)
                assert abs(share - status["weight"]) <= 3, (name, status["weight"], share)
                request(cluster, name, "promote")
        for name in SIZES:
            poll(
                lambda: cluster.status(name),  # noqa: B023
                lambda s: s.get("phase") == "Healthy" and s.get("stableRevision") != stable[name],  # noqa: B023
                timeout=300,
                what=f"{name} v2 promoted",
            )
        poll(recorder.caught_up, bool, timeout=60, what="the recording to catch up")
    print(f"\n(weight, status.weight, measured %): {seen}")
    assert not recorder.errors, recorder.errors
    problems = [f"at {v.rv}: {p}" for v in recorder.replay() for p in bounds_violations(v)]
    assert not problems, "\n".join(problems[:20])


def test_kubectl_scale_mid_canary_keeps_the_share_and_the_stable_within_it(
    cluster: Cluster, start_controller: Any, traffic: Any, kube_api: k8s.ApiClient
) -> None:
    name = "sc"
    custom = k8s.CustomObjectsApi(kube_api)
    cluster.create_service(name, {"app": name}, rollout=None)
    start_controller()
    cluster.apply_rollout(rollout(name, "v1", 10, "25%", "25%"))
    v1 = poll(
        lambda: cluster.status(name),
        lambda s: s.get("phase") == "Healthy",
        timeout=180,
        what="v1 Healthy",
    )["stableRevision"]
    generator = traffic(cluster.namespace, service=name, rate_per_second=40)
    cluster.apply_rollout(rollout(name, "v2", 10, "25%", "25%"))
    v2 = at_pause(cluster, name, 1)["canaryRevision"]
    assert cluster.replicas_by_revision() == {v1: 9, v2: 1}
    with Recorder(kube_api, cluster.namespace) as recorder:
        # kubectl scale rollout sc --replicas=20: a merge patch of the scale subresource.
        custom.patch_namespaced_custom_object_scale(
            GROUP, VERSION, cluster.namespace, "rollouts", name, {"spec": {"replicas": 20}}
        )
        poll(
            cluster.replicas_by_revision,
            lambda r: r == {v1: 18, v2: 2},
            timeout=120,
            what="2 canary and 18 stable pods",
        )
        status = at_pause(cluster, name, 1)
        poll(
            lambda: cluster.status(name),
            lambda s: s.get("availableReplicas") == 20,
            timeout=120,
            what="20 pods available",
        )
        poll(recorder.caught_up, bool, timeout=60, what="the recording to catch up")
    assert not recorder.errors, recorder.errors
    for view in recorder.replay():
        assert view.existing_revision(name, v1) <= 18, f"at {view.rv}: stable above its share"
        assert view.existing_revision(name, v2) <= 2, f"at {view.rv}: canary above its share"
    assert status["weight"] == 10
    share = measured_share(generator, v2)
    assert abs(share - 10) <= 2, share
    # What the HorizontalPodAutoscaler controller reads: GET .../rollouts/sc/scale.
    scale: Any = custom.get_namespaced_custom_object_scale(
        GROUP, VERSION, cluster.namespace, "rollouts", name
    )
    assert scale["spec"]["replicas"] == 20
    assert scale["status"]["replicas"] == 20 and scale["status"]["selector"] == f"app={name}"
