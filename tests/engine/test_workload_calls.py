"""The calls of a pass for a Rollout that delivers a Deployment (``spec.workloadRef``).

What the lists show: the Rollout's ReplicaSet is made from the Deployment's template;
the Deployment is scaled (through its scale subresource, its only write) after the
Rollout's own pods are placed and before status; ``onsuccess`` waits for the stable
revision to be fully available, ``progressively`` takes one Deployment pod away per
available Rollout pod; a template change of the Deployment at 0 is a new revision
while the Deployment stays at 0; hand-back scales the Deployment up first and the
Rollout's pods down only once the Deployment has them all available.
"""

from __future__ import annotations

from typing import Any

from controller.names import HAND_BACK_ANNOTATION
from tests.engine.fixture import NAME, NS, Fixture, canary_spec, rollout_object

DEPLOYMENT = "checkout-deploy"
STEPS: list[dict[str, Any]] = [{"setWeight": 25}, {"pause": {}}]


def deployment_object(*, replicas: int = 4, image: str = "shop/checkout:1") -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": DEPLOYMENT, "namespace": NS, "generation": 1, "uid": "dep-uid"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": NAME}},
            "template": {
                "metadata": {"labels": {"app": NAME}},
                "spec": {"containers": [{"name": "app", "image": image}]},
            },
        },
        "status": {
            "observedGeneration": 1,
            "replicas": replicas,
            "updatedReplicas": replicas,
            "availableReplicas": replicas,
        },
    }


def workload_rollout(scale_down: str, **spec: Any) -> dict[str, Any]:
    rollout = rollout_object(canary_spec(STEPS), **spec)
    del rollout["spec"]["template"], rollout["spec"]["selector"]
    rollout["spec"]["workloadRef"] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": DEPLOYMENT,
        "scaleDown": scale_down,
    }
    return rollout


def deployment_settled(fixture: Fixture) -> None:
    """The Deployment controller catches up with the scale we wrote."""
    deployment = fixture.deployments.get(NS, DEPLOYMENT)
    assert deployment is not None
    replicas = deployment["spec"]["replicas"]
    deployment["status"] = {
        "observedGeneration": deployment["metadata"]["generation"],
        "replicas": replicas,
        "updatedReplicas": replicas,
        "availableReplicas": replicas,
    }
    fixture.deployments.put(deployment)


def test_onsuccess_scales_the_deployment_to_zero_only_once_the_stable_is_available() -> None:
    fixture = Fixture(workload_rollout("onsuccess"), deployments=(deployment_object(),))
    revision = fixture.revision
    fixture.unavailable.add(revision)
    calls = fixture.pass_and_settle()
    assert calls[0] == ("create", fixture.rs_name(revision), 4)
    assert not [c for c in calls if c[0] == "scale-deployment"]
    assert fixture.status["workload"] == {"deployment": DEPLOYMENT, "replicas": 4}
    calls = fixture.pass_and_settle()  # pods not yet Ready: the Deployment keeps its own
    assert not [c for c in calls if c[0] == "scale-deployment"]
    fixture.ready(revision)
    calls = fixture.pass_and_settle()
    assert ("scale-deployment", DEPLOYMENT, 0) in calls
    # The Deployment's scale comes after the Rollout's pods and before status.
    assert calls.index(("scale-deployment", DEPLOYMENT, 0)) < calls.index(("status", NAME))
    assert ("event", "Normal", "TakenOver") in calls
    assert fixture.status["phase"] == "Healthy"
    assert fixture.status["workload"]["phase"] == "TakenOver"
    _result, calls = fixture.run()
    assert calls == []  # nothing changed: nothing written


def test_progressively_takes_one_deployment_pod_per_available_rollout_pod() -> None:
    fixture = Fixture(workload_rollout("progressively"), deployments=(deployment_object(),))
    revision = fixture.revision
    fixture.unavailable.add(revision)
    calls = fixture.pass_and_settle()
    assert not [c for c in calls if c[0] == "scale-deployment"]
    # Two of the Rollout's four pods Ready: the Deployment keeps 2.
    fixture.ready(revision)
    for pod in fixture.pods.list(NS)[2:]:
        fixture.pods.objects.pop((NS, pod["metadata"]["name"]))
    calls = fixture.pass_and_settle()
    assert ("scale-deployment", DEPLOYMENT, 2) in calls
    fixture.ready(revision)
    calls = fixture.pass_and_settle()
    assert ("scale-deployment", DEPLOYMENT, 0) in calls
    assert fixture.status["workload"]["phase"] == "TakenOver"


def test_never_leaves_the_deployment_alone() -> None:
    fixture = Fixture(workload_rollout("never"), deployments=(deployment_object(),))
    for _ in range(3):
        calls = fixture.pass_and_settle()
        assert not [c for c in calls if c[0] == "scale-deployment"]
    assert fixture.status["workload"]["phase"] == "LeftAlone"


def test_a_template_change_of_the_deployment_at_zero_is_a_canary_and_it_stays_at_zero() -> None:
    fixture = Fixture(workload_rollout("onsuccess"), deployments=(deployment_object(),))
    stable = fixture.revision
    for _ in range(3):
        fixture.pass_and_settle()
    assert fixture.deployments.get(NS, DEPLOYMENT)["spec"]["replicas"] == 0  # type: ignore[index]
    changed = fixture.deployments.get(NS, DEPLOYMENT)
    assert changed is not None
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = "shop/checkout:2"
    changed["metadata"]["generation"] += 1
    fixture.deployments.put(changed)
    canary = fixture.revision
    assert canary != stable
    calls = fixture.pass_and_settle()
    assert ("create", fixture.rs_name(canary), 1) in calls  # setWeight 25 of 4
    assert not [c for c in calls if c[0] == "scale-deployment"]
    assert fixture.status["canaryRevision"] == canary
    assert fixture.status["stableRevision"] == stable


def test_hand_back_scales_the_deployment_up_before_the_rollout_pods_go() -> None:
    fixture = Fixture(workload_rollout("onsuccess"), deployments=(deployment_object(),))
    revision = fixture.revision
    for _ in range(3):
        fixture.pass_and_settle()
    deployment_settled(fixture)
    fixture.annotate(**{HAND_BACK_ANNOTATION: "true"})
    calls = fixture.pass_and_settle()
    assert ("scale-deployment", DEPLOYMENT, 4) in calls
    assert not [c for c in calls if c[0] == "scale"]  # the Rollout's pods stay
    assert fixture.status["workload"]["phase"] == "HandingBack"
    calls = fixture.pass_and_settle()  # the Deployment controller has not caught up yet
    assert not [c for c in calls if c[0] in ("scale", "scale-deployment")]
    deployment_settled(fixture)
    calls = fixture.pass_and_settle()
    assert ("scale", fixture.rs_name(revision), 0) in calls
    assert ("event", "Normal", "HandedBack") in calls
    assert fixture.status["workload"]["phase"] == "HandedBack"


def test_a_missing_deployment_is_an_invalid_spec_and_nothing_is_written_but_status() -> None:
    fixture = Fixture(workload_rollout("onsuccess"))
    _result, calls = fixture.run()
    assert calls == [("status", NAME), ("event", "Warning", "InvalidSpec")]
    assert f"Deployment '{DEPLOYMENT}' not found" in fixture.kube.messages[0]


def test_hand_back_leaves_a_deployment_an_hpa_has_sized_past_its_size() -> None:
    # An HPA left on the Deployment resumes once it is above 0 and may size it to more
    # than the size at take-over: the hand-back never scales it back down.
    fixture = Fixture(workload_rollout("onsuccess"), deployments=(deployment_object(),))
    revision = fixture.revision
    for _ in range(3):
        fixture.pass_and_settle()
    deployment_settled(fixture)
    fixture.annotate(**{HAND_BACK_ANNOTATION: "true"})
    assert ("scale-deployment", DEPLOYMENT, 4) in fixture.pass_and_settle()
    resized = fixture.deployments.get(NS, DEPLOYMENT)
    assert resized is not None
    resized["spec"]["replicas"] = 6  # the HPA's write
    resized["metadata"]["generation"] += 1
    fixture.deployments.put(resized)
    calls = fixture.pass_and_settle()
    assert not [c for c in calls if c[0] == "scale-deployment"]
    deployment_settled(fixture)
    calls = fixture.pass_and_settle()
    assert not [c for c in calls if c[0] == "scale-deployment"]
    assert ("scale", fixture.rs_name(revision), 0) in calls
    assert fixture.status["workload"]["phase"] == "HandedBack"
