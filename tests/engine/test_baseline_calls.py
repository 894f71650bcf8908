"""A canary with ``baseline.enabled``: the reconciler creates the baseline's ReplicaSet
from the stable's (never from the spec, which is the canary's template now), and deletes
it once it is scaled down at promotion."""

from __future__ import annotations

import json
from typing import Any

from controller.names import REQUEST_ANNOTATION, REVISION_LABEL, ROLE_LABEL, ROLLOUT_LABEL
from controller.resources import baseline_body, replicaset_body
from tests.engine.fixture import NS, Fixture, canary_spec, rollout_object

STEPS: list[dict[str, Any]] = [{"setWeight": 25}, {"pause": {}}]


def test_the_baseline_is_created_after_the_canary_and_deleted_at_promotion() -> None:
    fixture = Fixture(rollout_object(canary_spec(STEPS, baseline={"enabled": True})))
    fixture.pass_and_settle()
    fixture.pass_and_settle()
    stable = fixture.revision
    stable_rs = fixture.replicasets.get(NS, fixture.rs_name(stable))
    assert stable_rs is not None
    stable_rs["spec"]["template"] = {
        "metadata": {"labels": {"app": "checkout", REVISION_LABEL: stable}},
        "spec": {"containers": [{"name": "app", "image": "shop/checkout:1"}]},
    }
    fixture.replicasets.put(stable_rs)
    fixture.edit_spec(image="shop/checkout:2")
    canary = fixture.revision
    baseline = fixture.rs_name(f"{stable}-baseline")
    calls = fixture.pass_and_settle()
    assert ("create", fixture.rs_name(canary), 1) in calls
    calls = fixture.pass_and_settle()
    # 4 replicas at 25%: 1 canary, 1 baseline, 2 stable, within maxSurge 1.
    assert ("create", baseline, 1) in calls
    assert ("scale", fixture.rs_name(stable), 2) in calls
    fixture.pass_and_settle()  # the baseline's pod is available: the share is the weight
    assert fixture.status["weight"] == 25
    request = {"action": "promoteFull", "id": "p1", "by": "ana"}
    fixture.annotate(**{REQUEST_ANNOTATION: json.dumps(request)})
    seen: list[Any] = []
    for _ in range(8):
        seen += fixture.pass_and_settle()
    assert fixture.status["stableRevision"] == canary
    assert ("scale", baseline, 0) in seen
    assert any(call[0] == "delete" and call[1] == baseline for call in seen)
    assert fixture.replicasets.get(NS, baseline) is None


def test_the_baseline_body_is_the_stable_revision_under_its_own_labels() -> None:
    fixture = Fixture(rollout_object(canary_spec(STEPS, baseline={"enabled": True})))
    from controller.api import Rollout

    old = Rollout.model_validate(fixture.rollout)
    stable_rs = replicaset_body(old, revision="s1", replicas=4)
    fixture.edit_spec(image="shop/checkout:2")
    new = Rollout.model_validate(fixture.rollout)
    body = baseline_body(new, stable_rs, revision="s1-baseline", replicas=1)
    labels = body["spec"]["template"]["metadata"]["labels"]
    assert labels[REVISION_LABEL] == "s1-baseline"
    assert labels[ROLE_LABEL] == "baseline"
    assert labels[ROLLOUT_LABEL] == "checkout"
    assert body["spec"]["selector"]["matchLabels"][REVISION_LABEL] == "s1-baseline"
    assert body["spec"]["template"]["spec"]["containers"][0]["image"] == "shop/checkout:1"
    assert body["metadata"]["name"] == "checkout-s1-baseline"
    assert body["spec"]["replicas"] == 1
