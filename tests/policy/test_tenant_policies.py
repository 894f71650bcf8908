"""Policies a tenant cannot shed, borrow around or use to burn the controller's CPU.

Pure decisions (``evaluate``) with hostile inputs, and the ``PolicyGate`` over dict caches
(our own seam): 64 minute-freezes of 366 days, a label removed to escape a freeze, an
override that needs an approval, a promotion gate into another namespace.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

import pytest

from controller.api import cron
from controller.api import reasons as r
from controller.api.status import RolloutStatus
from controller.policy.evaluate import evaluate
from controller.policy.overrides import parse_override
from controller.policy_gate import Held, PolicyGate
from tests.policy.helpers import policy, rollout, utc

NOW = utc(2026, 12, 5, 12, 0)
MINUTE_FREEZES: dict[str, Any] = {
    "freezes": [{"name": f"f{i}", "schedule": "* * * * *", "duration": "366d"} for i in range(64)]
}


class DictCache:
    """The ``Cache`` seam over plain dicts (what the informers hold)."""

    def __init__(self, objects: list[dict[str, Any]]) -> None:
        self.objects = objects

    def get(self, namespace: str | None, name: str) -> dict[str, Any] | None:
        for obj in self.objects:
            meta = obj["metadata"]
            if meta.get("namespace") == namespace and meta["name"] == name:
                return obj
        return None

    def list(
        self, namespace: str | None = None, *, labels: Mapping[str, str] | None = None
    ) -> list[dict[str, Any]]:
        return [
            o
            for o in self.objects
            if namespace is None or o["metadata"].get("namespace") == namespace
        ]


def raw_policy(
    name: str, namespace: str, spec: dict[str, Any], version: str = "1"
) -> dict[str, Any]:
    return {
        "apiVersion": "deployctl.io/v1alpha1",
        "kind": "DeliveryPolicy",
        "metadata": {"name": name, "namespace": namespace, "resourceVersion": version},
        "spec": spec,
    }


@pytest.fixture
def counted_occurrences(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many cron occurrences the evaluation looks at (work, not wall-clock time)."""
    seen = [0]
    original = cron.CronSchedule.occurrences_before

    def counting(self: cron.CronSchedule, moment: datetime) -> Iterator[datetime]:
        for found in original(self, moment):
            seen[0] += 1
            yield found

    monkeypatch.setattr(cron.CronSchedule, "occurrences_before", counting)
    return seen


def test_64_minute_freezes_of_366_days_cost_a_bounded_number_of_steps(
    counted_occurrences: list[int],
) -> None:
    decision = evaluate(rollout(), [policy(MINUTE_FREEZES)], now=NOW, override=None)
    assert decision.reason == r.FROZEN_UNTIL
    assert decision.message.startswith("frozen until at least 2028-12-06T12:00:00+00:00")
    assert "limit freezeChain: 64 / limit freezeHorizon: 400 days" in decision.message
    # Each freeze is asked at most a few times per chain link, and each answer takes one
    # occurrence (not one per minute of the day, and not 64 links of 366 days each).
    assert counted_occurrences[0] <= 64 * 2 * 3


def test_a_namespace_selector_cannot_be_shed_by_removing_a_label() -> None:
    prod_freeze = policy(
        {
            "namespaceSelector": {"matchLabels": {"tier": "prod"}},
            "freezes": [{"name": "all", "start": "2026-12-01T00:00", "end": "2027-01-01T00:00"}],
        },
        namespace="deployctl-system",
    )
    by_label = policy(
        {
            "selector": {"matchLabels": {"tier": "prod"}},
            "freezes": [{"name": "all", "start": "2026-12-01T00:00", "end": "2027-01-01T00:00"}],
        },
        namespace="deployctl-system",
    )
    unlabelled = rollout(labels={})
    prod = {"tier": "prod"}
    # A Rollout-label selector is escaped by dropping the label...
    assert evaluate(unlabelled, [by_label], now=NOW, override=None).allowed
    # ...the Namespace's labels are not the author's to drop.
    held = evaluate(unlabelled, [prod_freeze], now=NOW, override=None, namespace_labels=prod)
    assert held.reason == r.FROZEN_UNTIL
    other = evaluate(unlabelled, [prod_freeze], now=NOW, override=None, namespace_labels={})
    assert other.allowed
    # Namespace labels unknown (namespaced install): applied rather than skipped.
    assert not evaluate(unlabelled, [prod_freeze], now=NOW, override=None).allowed


def test_an_override_of_a_freeze_needs_an_approval_when_the_policy_says_so() -> None:
    spec = {
        "exemptions": ["hotfix"],
        "overrideApproval": {"groups": ["sre-leads"]},
        "freezes": [{"name": "all", "start": "2026-12-01T00:00", "end": "2027-01-01T00:00"}],
    }
    annotations = {
        "deployctl.io/exempt": "hotfix",
        "deployctl.io/override-reason": "CVE-2026-1",
        "deployctl.io/requested-by": "dev@example.com",
    }
    author = rollout(annotations=annotations)
    decision = evaluate(author, [policy(spec)], now=NOW, override=parse_override(author.metadata))
    assert decision.reason == r.AWAITING_APPROVAL
    assert decision.message.startswith(
        "waiting for `deployctl approve` from sre-leads (policy release/override)"
    )
    own = '{"action": "approve", "id": "a0", "by": "dev@example.com"}'
    self_approved = rollout(annotations={**annotations, "deployctl.io/request": own})
    decision = evaluate(
        self_approved, [policy(spec)], now=NOW, override=parse_override(self_approved.metadata)
    )
    assert not decision.allowed  # the author of the override cannot approve it too
    approve = '{"action": "approve", "id": "a1", "by": "lead@example.com"}'
    approved = rollout(annotations={**annotations, "deployctl.io/request": approve})
    decision = evaluate(
        approved, [policy(spec)], now=NOW, override=parse_override(approved.metadata)
    )
    assert decision.allowed
    assert any("approved by lead@example.com" in note for note in decision.notes)
    # Without overrideApproval the same override goes through alone.
    plain = {k: v for k, v in spec.items() if k != "overrideApproval"}
    assert evaluate(
        author, [policy(plain)], now=NOW, override=parse_override(author.metadata)
    ).allowed


def gate(policies: list[dict[str, Any]], rollouts: list[dict[str, Any]]) -> PolicyGate:
    return PolicyGate(
        policies=DictCache(policies),
        rollouts=DictCache(rollouts),
        controller_namespace="deployctl-system",
    )


def staging_checkout(status: dict[str, Any]) -> dict[str, Any]:
    body = rollout(namespace="staging").to_dict()
    body["status"] = status
    return body


PROMOTED = {
    "history": [
        {"revision": "abc", "images": {"app": "shop/checkout:1.4.2"}, "outcome": "Promoted"}
    ]
}


def test_a_promotion_gate_into_another_namespace_needs_that_namespace_to_agree() -> None:
    prod = rollout(namespace="production", requires="staging/checkout")
    refused = gate([], [staging_checkout(PROMOTED)]).check(
        prod, RolloutStatus(), revision="new", now=NOW
    )
    assert isinstance(refused, Held) and refused.status.reason == r.AWAITING_GATE
    message = refused.status.message
    assert message == (
        "promotion gate: Rollouts of namespace production may not name staging/checkout in "
        "requires.rollout; a DeliveryPolicy of namespace staging (or a cluster-wide one) "
        "that applies to it must list production in spec.promotionGateReaders"
    )
    assert "1.4.2" not in message and "abc" not in message  # nothing about the other
    # Same words when the other Rollout does not exist: its existence is not revealed.
    missing = gate([], []).check(prod, RolloutStatus(), revision="new", now=NOW)
    assert isinstance(missing, Held) and missing.status.message == message
    # The production namespace's own policy cannot grant itself access...
    own = raw_policy("mine", "production", {"promotionGateReaders": ["production"]})
    still = gate([own], [staging_checkout(PROMOTED)]).check(
        prod, RolloutStatus(), revision="new", now=NOW
    )
    assert isinstance(still, Held) and still.status.message == message
    # ...staging's does.
    readers = raw_policy("gates", "staging", {"promotionGateReaders": ["production"]})
    allowed = gate([readers], [staging_checkout(PROMOTED)]).check(
        prod, RolloutStatus(), revision="new", now=NOW
    )
    assert not isinstance(allowed, Held), allowed
    # A gate within the namespace needs nothing.
    local = rollout(namespace="staging", name="web", requires="staging/checkout")
    assert not isinstance(
        gate([], [staging_checkout(PROMOTED)]).check(
            local, RolloutStatus(), revision="new", now=NOW
        ),
        Held,
    )


def test_policies_are_validated_once_per_resource_version(monkeypatch: pytest.MonkeyPatch) -> None:
    from controller import policy_gate

    validated: list[str] = []
    original = policy_gate._parse_policy

    def counting(raw: Mapping[str, Any]) -> Any:
        validated.append(str(raw["metadata"]["resourceVersion"]))
        return original(raw)

    monkeypatch.setattr(policy_gate, "_parse_policy", counting)
    objects = [raw_policy("freezes", "shop", MINUTE_FREEZES, version="7")]
    policies = gate(objects, [])
    for _ in range(5):
        assert len(policies.applicable(rollout())) == 1
    assert validated == ["7"]
    objects[0] = raw_policy("freezes", "shop", {}, version="8")
    assert len(policies.applicable(rollout())) == 1
    assert validated == ["7", "8"]
