"""evaluate(): freezes, windows, overrides and approvals in one decision; hold/release."""

from __future__ import annotations

import json
from typing import Any

from controller.api import Phase
from controller.api import reasons as r
from controller.api.status import HistoryEntry, RolloutStatus
from controller.policy.approvals import UNVERIFIED
from controller.policy.evaluate import applicable_policies, evaluate
from controller.policy.hold import hold, record, release
from controller.policy.overrides import Override, parse_override
from tests.policy.helpers import berlin, policy, rollout

XMAS: dict[str, Any] = {
    "name": "xmas",
    "reason": "Christmas release",
    "start": "2026-12-20T00:00",
    "end": "2026-12-24T00:00",
    "timeZone": "Europe/Berlin",
    "exemptions": ["security", "release-blocker"],
}
OFFICE = {"days": ["Mon-Fri"], "start": "09:00", "end": "16:00", "timeZone": "Europe/Berlin"}
IN_FREEZE = berlin(2026, 12, 21, 10, 0)  # a Monday, inside office hours


def test_frozen_rollout_waits_until_the_end_of_the_freeze() -> None:
    decision = evaluate(rollout(), [policy({"freezes": [XMAS]})], now=IN_FREEZE, override=None)
    assert decision.verdict == "Wait" and decision.reason == r.FROZEN_UNTIL
    assert decision.retry_at == berlin(2026, 12, 24)
    assert decision.message.startswith(
        "frozen until 2026-12-24T00:00:00+01:00 by freeze 'xmas' (Christmas release) "
        "in policy shop/release"
    )
    assert "exempt changes (security, release-blocker) may go ahead" in decision.message
    after = evaluate(
        rollout(), [policy({"freezes": [XMAS]})], now=berlin(2026, 12, 24), override=None
    )
    assert after.allowed and after.reason == r.POLICY_ALLOWED


def test_override_with_a_reason_is_accepted_and_recorded() -> None:
    meta = rollout(
        annotations={
            "deployctl.io/exempt": "security",
            "deployctl.io/override-reason": "CVE-2026-1234 in the payment client",
            "deployctl.io/requested-by": "alice@example.com",
        }
    ).metadata
    override = parse_override(meta)
    assert override == Override(
        "security", "CVE-2026-1234 in the payment client", "alice@example.com"
    )
    decision = evaluate(rollout(), [policy({"freezes": [XMAS]})], now=IN_FREEZE, override=override)
    assert decision.allowed
    assert decision.message == "allowed by delivery policy (overridden)"
    (note,) = decision.notes
    assert "freeze 'xmas'" in note and "overridden: security by alice@example.com" in note
    assert "CVE-2026-1234" in note
    assert [e.reason for e in decision.events] == [r.POLICY_OVERRIDDEN]


def test_override_without_a_reason_is_refused() -> None:
    override = parse_override(rollout(labels={"deployctl.io/exempt": "security"}).metadata)
    assert override is not None and override.reason == ""
    decision = evaluate(rollout(), [policy({"freezes": [XMAS]})], now=IN_FREEZE, override=override)
    assert decision.verdict == "Wait" and decision.reason == r.FROZEN_UNTIL
    assert "override refused: deployctl.io/exempt=security needs a reason" in decision.message
    assert "deployctl.io/override-reason" in decision.message
    assert [(e.type, e.reason) for e in decision.events] == [("Warning", r.OVERRIDE_REFUSED)]
    assert decision.notes == ()


def test_override_of_a_kind_the_freeze_does_not_exempt_is_not_enough() -> None:
    override = Override("hotfix", "typo on the checkout page", "bob")
    decision = evaluate(rollout(), [policy({"freezes": [XMAS]})], now=IN_FREEZE, override=override)
    assert decision.reason == r.FROZEN_UNTIL
    assert "override 'hotfix' is not exempt here (exempt: security, release-blocker)" in (
        decision.message
    )


def test_unknown_exemption_kind_is_refused() -> None:
    decision = evaluate(
        rollout(), [policy({"freezes": [XMAS]})], now=IN_FREEZE, override=Override("urgent", "x")
    )
    assert decision.reason == r.FROZEN_UNTIL
    assert "'urgent' is not an exemption kind" in decision.message


def test_outside_the_window_waits_for_the_next_opening() -> None:
    saturday = berlin(2026, 12, 5, 12, 0)
    decision = evaluate(rollout(), [policy({"windows": [OFFICE]})], now=saturday, override=None)
    assert decision.verdict == "Wait" and decision.reason == r.OUTSIDE_WINDOW
    assert decision.retry_at == berlin(2026, 12, 7, 9, 0)
    assert "next window opens 2026-12-07T09:00:00+01:00 (Mon-Fri 09:00-16:00 Europe/Berlin)" in (
        decision.message
    )
    inside = evaluate(
        rollout(), [policy({"windows": [OFFICE]})], now=berlin(2026, 12, 7, 9, 0), override=None
    )
    assert inside.allowed


def test_every_policy_with_windows_must_have_one_open() -> None:
    night = {"days": ["Mon-Sun"], "start": "20:00", "end": "06:00", "timeZone": "Europe/Berlin"}
    policies = [
        policy({"windows": [OFFICE]}, name="office"),
        policy({"windows": [night]}, name="quiet", namespace="deployctl-system"),
    ]
    decision = evaluate(rollout(), policies, now=berlin(2026, 12, 7, 10, 0), override=None)
    assert decision.reason == r.OUTSIDE_WINDOW
    assert "policy deployctl-system/quiet" in decision.message


def test_window_override_needs_the_policy_exemption() -> None:
    saturday = berlin(2026, 12, 5, 12, 0)
    hotfix = Override("hotfix", "checkout down", "carol")
    strict = evaluate(rollout(), [policy({"windows": [OFFICE]})], now=saturday, override=hotfix)
    assert strict.reason == r.OUTSIDE_WINDOW
    lenient = policy({"windows": [OFFICE], "exemptions": ["hotfix"]})
    assert evaluate(rollout(), [lenient], now=saturday, override=hotfix).allowed


def test_policy_selector_and_namespaces() -> None:
    frozen = policy({"freezes": [XMAS], "selector": {"matchLabels": {"tier": "frontend"}}})
    assert evaluate(rollout(), [frozen], now=IN_FREEZE, override=None).allowed
    labelled = rollout(labels={"tier": "frontend"})
    assert not evaluate(labelled, [frozen], now=IN_FREEZE, override=None).allowed
    others = [
        policy({"freezes": [XMAS]}, namespace="payments"),
        policy({}, name="default", namespace="deployctl-system"),
    ]
    kept = applicable_policies(others, rollout(), controller_namespace="deployctl-system")
    assert [p.metadata.name for p in kept] == ["default"]


PROD_APPROVAL = {"approvals": [{"name": "prod", "namespaces": ["shop"], "groups": ["sre-leads"]}]}


def approve(by: str, request_id: str = "req1") -> dict[str, str]:
    body = {"action": "approve", "id": request_id, "by": by}
    return {"deployctl.io/request": json.dumps(body)}


FOUR_EYES = {
    "approvals": [
        {"name": "prod", "groups": ["sre-leads"], "requireDifferentApprover": True},
    ]
}


def test_four_eyes_refuses_the_requesters_own_approval_and_says_why() -> None:
    now = berlin(2026, 12, 7, 10, 0)
    requested = {"deployctl.io/requested-by": "alice"}
    own = rollout(annotations={**requested, **approve("alice")})
    held = evaluate(own, [policy(FOUR_EYES)], now=now, override=None, approvals_verified=True)
    assert held.verdict == "NeedsApproval"
    assert held.message == (
        "waiting for `deployctl approve` from sre-leads (policy release/prod); the approval "
        "by alice does not count: alice requested this revision, and rule release/prod "
        "needs a different approver"
    )
    nobody = evaluate(
        rollout(annotations=approve("bob")), [policy(FOUR_EYES)], now=now, override=None
    )
    assert not nobody.allowed and "nobody is recorded as requesting" in nobody.message
    other = rollout(annotations={**requested, **approve("bob")})
    granted = evaluate(other, [policy(FOUR_EYES)], now=now, override=None, approvals_verified=True)
    assert granted.allowed and granted.approval is not None
    assert granted.notes == ("approved by bob (policy release/prod) at 2026-12-07T09:00:00Z",)


def test_approval_pending_then_granted() -> None:
    now = berlin(2026, 12, 7, 10, 0)
    pending = evaluate(rollout(), [policy(PROD_APPROVAL)], now=now, override=None)
    assert pending.verdict == "NeedsApproval" and pending.reason == r.AWAITING_APPROVAL
    assert pending.message == (
        "waiting for `deployctl approve` from sre-leads (policy release/prod); " + UNVERIFIED
    )
    assert pending.retry_at is None

    approved = rollout(annotations=approve("dave@example.com"))
    granted = evaluate(approved, [policy(PROD_APPROVAL)], now=now, override=None)
    assert granted.allowed
    assert granted.approval is not None and granted.approval.request_id == "req1"
    assert granted.approval.approved_by == "dave@example.com"
    assert granted.notes == (
        f"approved by dave@example.com (policy release/prod) at 2026-12-07T09:00:00Z; {UNVERIFIED}",
    )
    assert [e.reason for e in granted.events] == [r.APPROVED]

    # An approve request already consumed does not approve the next revision.
    used = rollout(annotations=approve("dave@example.com"), status={"lastHandledRequest": "req1"})
    assert evaluate(used, [policy(PROD_APPROVAL)], now=now, override=None).verdict == (
        "NeedsApproval"
    )


def test_approval_rules_match_by_namespace_selector_and_major_version() -> None:
    now = berlin(2026, 12, 7, 10, 0)
    elsewhere = {"approvals": [{"name": "prod", "namespaces": ["prod"]}]}
    assert evaluate(rollout(), [policy(elsewhere)], now=now, override=None).allowed
    major = {"approvals": [{"name": "major", "majorVersionChange": True}]}
    promoted = {
        "history": [
            {"revision": "a", "images": {"app": "shop/checkout:1.9.0"}, "outcome": "Promoted"}
        ]
    }
    minor = rollout(image="shop/checkout:1.10.0", status=promoted)
    assert evaluate(minor, [policy(major)], now=now, override=None).allowed
    bump = rollout(image="shop/checkout:v2.0.0", status=promoted)
    assert evaluate(bump, [policy(major)], now=now, override=None).verdict == "NeedsApproval"
    hook = evaluate(minor, [policy(major)], now=now, override=None, major_change=lambda _r: True)
    assert hook.verdict == "NeedsApproval"


def test_freeze_comes_before_approval() -> None:
    spec = {"freezes": [XMAS], **PROD_APPROVAL}
    decision = evaluate(
        rollout(annotations=approve("dave")), [policy(spec)], now=IN_FREEZE, override=None
    )
    assert decision.reason == r.FROZEN_UNTIL and decision.approval is None


def test_hold_release_and_record_leave_an_audit_trail() -> None:
    decision = evaluate(rollout(), [policy({"freezes": [XMAS]})], now=IN_FREEZE, override=None)
    held = hold(
        RolloutStatus(stable_revision="aaa"),
        reason=decision.reason,
        message=decision.message,
        now=IN_FREEZE,
        generation=4,
    )
    assert (held.phase, held.reason, held.observed_generation) == (Phase.PAUSED, r.FROZEN_UNTIL, 4)
    assert held.held_since == "2026-12-21T09:00:00Z" and held.stable_revision == "aaa"
    conditions = {c.type: (c.status, c.reason) for c in held.conditions}
    assert conditions == {
        "Paused": ("True", r.FROZEN_UNTIL),
        "Progressing": ("Unknown", r.FROZEN_UNTIL),
    }
    # A later pass keeps the first time it was held.
    later = hold(
        held,
        reason=decision.reason,
        message=decision.message,
        now=berlin(2026, 12, 22),
        generation=4,
    )
    assert later.held_since == "2026-12-21T09:00:00Z"

    approved = rollout(annotations=approve("erin"))
    allowed = evaluate(
        approved, [policy(PROD_APPROVAL)], now=berlin(2026, 12, 24, 9), override=None
    )
    planned_from, notes = release(later, allowed, now=berlin(2026, 12, 24, 9))
    assert planned_from.held_since is None and planned_from.last_handled_request == "req1"
    assert notes[0].startswith("held by policy from 2026-12-21T09:00:00Z to 2026-12-24T08:00:00Z")
    assert "approved by erin" in notes[1]

    started = planned_from.model_copy(
        update={"history": [HistoryEntry(revision="bbb", started_at="2026-12-24T08:00:00Z")]}
    )
    recorded = record(started, revision="bbb", notes=notes)
    assert recorded.history[-1].events == notes
    assert record(started, revision="zzz", notes=notes) == started
