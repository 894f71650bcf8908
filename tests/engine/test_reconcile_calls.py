"""The calls one reconcile pass makes, in order, for the main transitions.

As Argo Rollouts' controller tests expect actions: each test seeds the caches (often by
letting the controller's own earlier passes take effect with ``settle``), runs one
pass, and compares the complete list of calls to the ``Kube`` adapter, so a missing,
extra or reordered call fails. What the list shows:

- scale up first, then move traffic (Service selectors, HTTPRoute weights), then scale
  down, so traffic never points at pods that are not there;
- the status is written once, before the pass's Events;
- nothing at all is written when nothing changed.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from controller.kube import Conflict
from controller.names import REQUEST_ANNOTATION
from controller.reconciler import SAFETY_RESYNC
from tests.engine.doubles import sample
from tests.engine.fixture import (
    CANARY_SVC,
    NS,
    ROUTE,
    STABLE_SVC,
    T0,
    Fixture,
    canary_spec,
    rollout_object,
    route_object,
)

STEPS: list[dict[str, Any]] = [{"setWeight": 25}, {"pause": {}}]
TEMPLATE = {
    "apiVersion": "deployctl.io/v1alpha1",
    "kind": "AnalysisTemplate",
    "metadata": {"name": "http-health", "namespace": NS},
    "spec": {
        "metrics": [
            {
                "name": "error-rate",
                "interval": "10s",
                "failureLimit": 0,
                "threshold": {"max": 0.05},
                "provider": {"prometheus": {"query": 'errors{revision="{{canary.hash}}"}'}},
            }
        ]
    },
}


def deployed(fixture: Fixture) -> str:
    """Let the first deploy happen and settle; the stable revision."""
    fixture.pass_and_settle()
    fixture.pass_and_settle()
    assert fixture.status["phase"] == "Healthy"
    return fixture.revision


def request(action: str, id: str) -> dict[str, str]:
    return {REQUEST_ANNOTATION: json.dumps({"action": action, "id": id, "by": "ana"})}


def test_first_deploy_creates_the_whole_replicaset_then_selects_it_then_status_then_event() -> None:
    fixture = Fixture(rollout_object(canary_spec(STEPS)))
    revision = fixture.revision
    result, calls = fixture.run()
    assert calls == [
        ("create", fixture.rs_name(revision), 4),
        ("select", STABLE_SVC, revision),
        ("select", CANARY_SVC, revision),
        ("status", "checkout"),
        ("event", "Normal", "FirstDeploy"),
    ]
    assert result.requeue_after == SAFETY_RESYNC  # progressing: look again at least this often
    assert fixture.kube.resource_versions == ["1"]  # conditional on the version the pass read


def test_a_settled_rollout_makes_no_calls_and_no_requeue() -> None:
    fixture = Fixture(rollout_object(canary_spec(STEPS)))
    deployed(fixture)
    result, calls = fixture.run()
    assert calls == []
    assert result.requeue_after is None


def test_a_deleted_rollout_needs_nothing() -> None:
    fixture = Fixture(rollout_object(canary_spec(STEPS)))
    fixture.rollouts.objects.clear()
    result, calls = fixture.run()
    assert (result.requeue_after, calls) == (None, [])


def test_a_new_revision_is_scaled_up_before_the_canary_service_selects_it() -> None:
    fixture = Fixture(rollout_object(canary_spec(STEPS)))
    deployed(fixture)
    fixture.edit_spec(image="shop/checkout:2")
    canary = fixture.revision
    _result, calls = fixture.run()
    assert calls == [
        ("create", fixture.rs_name(canary), 1),
        ("select", CANARY_SVC, canary),
        ("status", "checkout"),
        ("event", "Normal", "NewRevision"),
        ("event", "Normal", "StepStarted"),
    ]


def test_superseding_a_canary_scales_up_moves_traffic_then_scales_down() -> None:
    fixture = Fixture(rollout_object(canary_spec(STEPS, routed=True)), route=route_object())
    stable = deployed(fixture)
    fixture.edit_spec(image="shop/checkout:2")
    first = fixture.revision
    fixture.pass_and_settle()
    assert fixture.pass_and_settle() == [
        ("weights", ROUTE, {STABLE_SVC: 75, CANARY_SVC: 25}),
        ("status", "checkout"),
        ("event", "Normal", "WeightSet"),
        ("event", "Normal", "StepStarted"),
    ]
    fixture.edit_spec(image="shop/checkout:3")
    second = fixture.revision
    _result, calls = fixture.run()
    # The canary Service loses its weight, so the route moves first: it never sends
    # traffic to a Service that already selects the new revision's not-ready pods.
    assert calls == [
        ("create", fixture.rs_name(second), 1),
        ("weights", ROUTE, {STABLE_SVC: 100, CANARY_SVC: 0}),
        ("select", CANARY_SVC, second),
        ("scale", fixture.rs_name(first), 0),
        ("status", "checkout"),
        ("event", "Normal", "Superseded"),
        ("event", "Normal", "NewRevision"),
        ("event", "Normal", "StepStarted"),
    ]
    assert fixture.kube.messages[0] == f"revision {first} superseded by {second} before promotion"
    assert stable not in (first, second)


def test_promotion_scales_the_canary_up_then_switches_stable_then_scales_the_old_down() -> None:
    fixture = Fixture(rollout_object(canary_spec(STEPS, routed=True)), route=route_object())
    old = deployed(fixture)
    fixture.edit_spec(image="shop/checkout:2")
    new = fixture.revision
    fixture.pass_and_settle()
    fixture.pass_and_settle()
    assert fixture.status["reason"] == "PauseStep"
    fixture.annotate(**request("promote", "req-1"))
    assert fixture.pass_and_settle() == [
        ("scale", fixture.rs_name(new), 4),
        ("status", "checkout"),
        ("event", "Normal", "Promoted"),
        ("event", "Normal", "StepStarted"),
    ]
    assert fixture.status["lastHandledRequest"] == "req-1"
    result, calls = fixture.run()
    assert calls == [
        ("select", STABLE_SVC, new),
        ("weights", ROUTE, {STABLE_SVC: 100, CANARY_SVC: 0}),
        ("status", "checkout"),
        ("event", "Normal", "Promoted"),
    ]
    assert result.requeue_after == 30  # scaleDownDelaySeconds for the old revision
    fixture.settle()
    fixture.advance(30)
    _result, calls = fixture.run()
    assert calls == [
        ("scale", fixture.rs_name(old), 0),
        ("status", "checkout"),
        ("event", "Normal", "ScaledDown"),
    ]


def test_a_failing_measurement_aborts_in_the_same_pass_traffic_first() -> None:
    answers = {"error-rate": 0.0}
    steps: list[dict[str, Any]] = [
        {"setWeight": 25},
        {"analysis": {"templates": [{"name": "http-health"}]}},
        {"pause": {}},
    ]
    fixture = Fixture(
        rollout_object(canary_spec(steps)),
        templates=(TEMPLATE,),
        answer=lambda promql: sample(answers["error-rate"]),
    )
    stable = deployed(fixture)
    fixture.edit_spec(image="shop/checkout:2")
    canary = fixture.revision
    fixture.pass_and_settle()
    assert fixture.pass_and_settle()[-1] == ("event", "Normal", "AnalysisStarted")
    assert fixture.pass_and_settle() == [("status", "checkout")]  # 0.0: a passing measurement
    answers["error-rate"] = 0.3
    fixture.advance(10)
    result, calls = fixture.run()
    assert calls == [
        ("select", CANARY_SVC, stable),
        ("scale", fixture.rs_name(canary), 0),
        ("status", "checkout"),
        ("event", "Warning", "AnalysisFailed"),
    ]
    assert fixture.measurer.queries[-1] == f'errors{{revision="{canary}"}}'
    assert "error-rate 0.3 > max 0.05" in fixture.kube.messages[0]
    assert result.requeue_after is None  # aborted: at rest on stable


def test_old_replicasets_beyond_the_history_limit_are_deleted_oldest_first() -> None:
    fixture = Fixture(rollout_object(canary_spec(STEPS), revisionHistoryLimit=1))
    fixture.pass_and_settle()
    for age, revision in ((3, "old-a"), (2, "old-b"), (1, "old-c")):
        fixture.add_replicaset(revision, replicas=0, created=T0 - timedelta(hours=age))
    _result, calls = fixture.run()
    assert calls == [
        ("delete", fixture.rs_name("old-a"), "rs-uid-old-a"),  # uid: never a namesake
        ("delete", fixture.rs_name("old-b"), "rs-uid-old-b"),
        ("status", "checkout"),
    ]


def test_a_status_write_that_fails_records_no_event() -> None:
    fixture = Fixture(rollout_object(canary_spec(STEPS)))
    fixture.kube.fail(
        "patch_rollout_status",
        Conflict("stale", verb="patch", resource="rollouts.deployctl.io/status", code=409),
    )
    with pytest.raises(Conflict):
        fixture.run()
    assert fixture.kube.calls[-1] == ("status", "checkout")
    assert not [c for c in fixture.kube.calls if c[0] == "event"]
    # The retried pass records the step's Event once, after its status write.
    _result, calls = fixture.run()
    assert calls[-2:] == [("status", "checkout"), ("event", "Normal", "FirstDeploy")]


def test_an_invalid_spec_is_reported_once_and_nothing_else_is_touched() -> None:
    fixture = Fixture(rollout_object(canary_spec(STEPS), replicas=-1))
    result, calls = fixture.run()
    # As in a planned pass, the Event follows the status write that stores the condition.
    assert calls == [("status", "checkout"), ("event", "Warning", "InvalidSpec")]
    assert fixture.kube.messages == ["spec.replicas: must be >= 0 (got -1)"]
    assert result.requeue_after is None  # a terminal error: no retry until the spec changes
    fixture.settle()
    assert fixture.run()[1] == []


def test_an_invalid_spec_whose_status_write_fails_records_its_event_once() -> None:
    fixture = Fixture(rollout_object(canary_spec(STEPS), replicas=-1))
    fixture.kube.fail(
        "patch_rollout_status",
        Conflict("stale", verb="patch", resource="rollouts.deployctl.io/status", code=409),
    )
    with pytest.raises(Conflict):
        fixture.run()
    assert not [c for c in fixture.kube.calls if c[0] == "event"]
    _result, calls = fixture.run()
    assert calls == [("status", "checkout"), ("event", "Warning", "InvalidSpec")]


def test_requeue_follows_the_pause_the_next_measurement_and_the_safety_resync() -> None:
    steps: list[dict[str, Any]] = [
        {"setWeight": 25},
        {"pause": {"duration": 45}},
        {"analysis": {"templates": [{"name": "http-health"}]}},
    ]
    fixture = Fixture(rollout_object(canary_spec(steps)), templates=(TEMPLATE,))
    deployed(fixture)
    fixture.edit_spec(image="shop/checkout:2")
    fixture.unavailable.add(fixture.revision)
    result, _calls = fixture.run()
    fixture.settle()
    assert result.requeue_after == SAFETY_RESYNC  # waiting for pods: events wake it
    fixture.ready(fixture.revision)
    result, _calls = fixture.run()
    fixture.settle()
    assert result.requeue_after == 45  # the pause step's whole duration
    fixture.advance(20)
    result, calls = fixture.run()
    assert result.requeue_after == 25  # what is left of it
    assert calls == [("status", "checkout")]  # only the message: "pause 45s, 25s left"
    fixture.settle()
    fixture.advance(25)
    result, _calls = fixture.run()
    fixture.settle()
    assert result.requeue_after == 0.05  # the analysis step's first measurement is due now
    result, _calls = fixture.run()
    assert result.requeue_after == 10  # the metric's interval


def test_a_frozen_new_revision_is_held_without_touching_the_cluster() -> None:
    freeze = {
        "apiVersion": "deployctl.io/v1alpha1",
        "kind": "DeliveryPolicy",
        "metadata": {"name": "release", "namespace": NS},
        "spec": {
            "freezes": [
                {
                    "name": "spring",
                    "reason": "spring sale",
                    "start": "2026-03-01T12:05",
                    "end": "2026-03-01T13:05",
                    "timeZone": "UTC",
                }
            ]
        },
    }
    fixture = Fixture(rollout_object(canary_spec(STEPS)), policies=(freeze,))
    deployed(fixture)
    fixture.advance(5 * 60)
    fixture.edit_spec(image="shop/checkout:2")
    result, calls = fixture.run()
    assert calls == [("status", "checkout"), ("event", "Normal", "FrozenUntil")]
    assert result.requeue_after == SAFETY_RESYNC  # the hold's recheck, at most a minute
    fixture.settle()
    assert fixture.status["phase"] == "Paused"
    assert fixture.run()[1] == []  # held: still nothing written, the Event not repeated


def test_a_rolling_update_scales_the_new_revision_up_before_the_old_one_down() -> None:
    fixture = Fixture(
        rollout_object({"rolling": {"maxSurge": 1, "maxUnavailable": 1}}), services=()
    )
    old = deployed(fixture)
    fixture.edit_spec(image="shop/checkout:2")
    new = fixture.revision
    assert fixture.pass_and_settle() == [
        ("create", fixture.rs_name(new), 1),
        ("scale", fixture.rs_name(old), 3),
        ("status", "checkout"),
        ("event", "Normal", "NewRevision"),
    ]
    assert fixture.pass_and_settle() == [
        ("scale", fixture.rs_name(new), 2),
        ("scale", fixture.rs_name(old), 2),
        ("status", "checkout"),
    ]


def test_blue_green_switches_the_active_service_then_scales_the_old_revision_down_later() -> None:
    strategy = {
        "blueGreen": {
            "activeService": STABLE_SVC,
            "previewService": CANARY_SVC,
            "autoPromotionSeconds": 10,
        }
    }
    fixture = Fixture(rollout_object(strategy))
    old = deployed(fixture)
    fixture.edit_spec(image="shop/checkout:2")
    new = fixture.revision
    assert fixture.pass_and_settle() == [
        ("create", fixture.rs_name(new), 4),  # the preview at full size
        ("select", CANARY_SVC, new),
        ("status", "checkout"),
        ("event", "Normal", "NewRevision"),
    ]
    fixture.pass_and_settle()
    fixture.advance(10)
    result, calls = fixture.run()
    assert calls == [
        ("select", STABLE_SVC, new),
        ("status", "checkout"),
        ("event", "Normal", "ServiceSwitched"),
        ("event", "Normal", "Promoted"),
    ]
    assert result.requeue_after == 30
    fixture.settle()
    fixture.advance(30)
    assert fixture.run()[1] == [
        ("scale", fixture.rs_name(old), 0),
        ("status", "checkout"),
        ("event", "Normal", "ScaledDown"),
    ]


def test_a_service_without_consent_is_never_written_and_the_rollout_says_why() -> None:
    fixture = Fixture(rollout_object(canary_spec(STEPS)))
    stable = fixture.services.get(NS, STABLE_SVC)
    assert stable is not None
    del stable["metadata"]["annotations"]  # another team's Service
    fixture.services.put(stable)
    calls = fixture.pass_and_settle()
    assert calls == [("status", "checkout"), ("event", "Warning", "InvalidSpec")]
    assert fixture.status["reason"] == "InvalidSpec"
    assert (
        f"`kubectl -n {NS} annotate service {STABLE_SVC} deployctl.io/rollout=checkout`"
        in fixture.status["message"]
    )
    # Consent given: the pass goes on and the InvalidSpec condition turns False.
    stable["metadata"]["annotations"] = {"deployctl.io/rollout": "checkout"}
    fixture.services.put(stable)
    calls = fixture.pass_and_settle()
    assert calls[0][0] == "create" and ("select", STABLE_SVC, fixture.revision) in calls
    conditions = {c["type"]: c for c in fixture.status["conditions"]}
    assert conditions["InvalidSpec"]["status"] == "False"
