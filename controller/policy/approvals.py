"""Approvals: which policy rules ask for one, and whether it is pending or granted.

Two kinds of approval exist. A canary step ``approval: {groups: [...]}`` is handled by
the strategy (``strategies/canary.py``), which records the approver in
``status.approvedBy``. A policy rule (``DeliveryPolicy.spec.approvals``) holds a new
revision *before* it starts; ``controller.policy.evaluate`` asks ``policy_approval``
whether it is granted. Both are granted the same way: ``deployctl approve NAME`` writes
an ``approve`` request (``controller.requests``) carrying the kubeconfig identity of
whoever ran it; a request not yet consumed (its id differs from
``status.lastHandledRequest``) grants the approval, and the reconciler consumes it.

Who approved is a name written by the client. Where deployctl's admission policy is
installed (``manifests/admission/``, Kubernetes 1.30+), the API server admits the
annotation only under the writer's own user name, from a member of the rule's
``groups``, and never from the requester when ``requireDifferentApprover`` is set; the
controller is told whether it is (``verified``) and says "unverified" in every approval
message where it is not. ``requireDifferentApprover`` is also checked here, on the
written names: an approval under the requester's name is refused.

The "major version change" rule is a hook: ``major_version_changed`` compares the
leading number of each container's image tag with the last promoted revision's; pass
another function to ``evaluate`` for other versioning schemes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from controller.api import Rollout
from controller.api.policy import ApprovalRule, DeliveryPolicy
from controller.names import REQUESTED_BY_ANNOTATION
from controller.requests import parse_request
from controller.versions import image_tag, parse_version

MajorChange = Callable[[Rollout], bool]
UNVERIFIED = (
    "unverified: no admission policy in this cluster vouches for the approver's name "
    "(docs/security.md#approvals)"
)

# A tag that is not a whole semantic version may still name its major ("v2", "3-alpine").
_MAJOR_ONLY = re.compile(r"^v?(\d+)(?:[.\-_+]|$)")


def major_of(image: str) -> int | None:
    """The major version of an image's tag: semver's reading (``controller.versions``)
    of ``1.4.2`` / ``v2.0.0-rc.1``, else a leading number; None without either."""
    tag = image_tag(image)
    version = parse_version(tag)
    if version is not None:
        return int(version.major)
    match = _MAJOR_ONLY.match(tag) if tag else None
    return int(match.group(1)) if match else None


def major_version_changed(rollout: Rollout) -> bool:
    """True when a container's image major version differs from the last promoted one.

    Without a promoted revision in history (a first deploy) or a numeric tag, there is
    nothing to compare: False.
    """
    status = rollout.status
    promoted = (
        next(
            (e for e in reversed(status.history) if e.outcome == "Promoted"),
            None,
        )
        if status
        else None
    )
    if promoted is None:
        return False
    for container in rollout.spec.pod_template.spec.containers:
        before = promoted.images.get(container.name)
        if before is None:
            continue
        old, new = major_of(before), major_of(container.image)
        if old is not None and new is not None and old != new:
            return True
    return False


def rule_matches(rule: ApprovalRule, rollout: Rollout, *, major_change: MajorChange) -> bool:
    namespace = rollout.metadata.namespace or ""
    if rule.namespaces and namespace not in rule.namespaces:
        return False
    if rule.selector is not None:
        labels = rollout.metadata.labels
        if any(labels.get(k) != v for k, v in rule.selector.match_labels.items()):
            return False
    return not rule.major_version_change or major_change(rollout)


@dataclass(frozen=True)
class ApprovalState:
    """Whether an approval is needed, and if so whether someone has given it."""

    required: bool
    granted: bool = False
    rules: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    approved_by: str | None = None
    request_id: str | None = None
    """The approve request that granted it: the reconciler must consume this id."""
    verified: bool = False
    """Whether the API server vouches for the approver's name (the admission policy)."""
    refused: str = ""
    """Why a written approval does not count (four eyes), shown while still pending."""

    @property
    def pending(self) -> bool:
        return self.required and not self.granted

    def message(self, *, at: str = "") -> str:
        rules = ", ".join(self.rules)
        if not self.required:
            return "no approval required"
        note = "" if self.verified else f"; {UNVERIFIED}"
        if self.granted:
            when = f" at {at}" if at else ""
            return f"approved by {self.approved_by} (policy {rules}){when}{note}"
        who = f" from {', '.join(self.groups)}" if self.groups else ""
        refused = f"; {self.refused}" if self.refused else ""
        return f"waiting for `deployctl approve`{who} (policy {rules}){refused}{note}"


def matching_rules(
    rollout: Rollout,
    policies: Sequence[DeliveryPolicy],
    *,
    major_change: MajorChange = major_version_changed,
) -> list[tuple[str, ApprovalRule]]:
    """(``policy/rule``, rule) for every rule that applies to ``rollout``."""
    return [
        (f"{policy.metadata.name or '?'}/{rule.name}", rule)
        for policy in policies
        for rule in policy.spec.approvals
        if rule_matches(rule, rollout, major_change=major_change)
    ]


def pending_approve_request(rollout: Rollout) -> tuple[str, str] | None:
    """(request id, who) of an ``approve`` request not yet consumed, or None."""
    request = parse_request(rollout.metadata.annotations)
    if request is None or request.action != "approve":
        return None
    handled = rollout.status.last_handled_request if rollout.status else None
    if request.id == handled:
        return None
    return request.id, request.by or "unknown"


def policy_approval(
    rollout: Rollout, rules: Sequence[tuple[str, ApprovalRule]], *, verified: bool = False
) -> ApprovalState:
    """Pending or granted, for the rules ``matching_rules`` found.

    With ``requireDifferentApprover`` on any rule, an approval written under the name in
    ``deployctl.io/requested-by`` (or with no requester recorded) does not count.
    """
    if not rules:
        return ApprovalState(required=False, verified=verified)
    names = tuple(name for name, _ in rules)
    groups = tuple(dict.fromkeys(g for _, rule in rules for g in rule.groups))
    pending = ApprovalState(required=True, rules=names, groups=groups, verified=verified)
    request = pending_approve_request(rollout)
    if request is None:
        return pending
    request_id, by = request
    four_eyes = [name for name, rule in rules if rule.require_different_approver]
    requester = rollout.metadata.annotations.get(REQUESTED_BY_ANNOTATION, "").strip()
    if four_eyes and (not requester or requester == by):
        why = (
            f"{by} requested this revision"
            if requester
            else f"nobody is recorded as requesting this revision ({REQUESTED_BY_ANNOTATION})"
        )
        return replace(
            pending,
            refused=f"the approval by {by} does not count: {why}, and rule "
            f"{', '.join(four_eyes)} needs a different approver",
        )
    return replace(pending, granted=True, approved_by=by, request_id=request_id)


def step_approval(rollout: Rollout) -> ApprovalState:
    """The canary ``approval`` step the rollout stands at: pending, or granted by a request.

    For display (CLI, status): the strategy acts on the request itself.
    """
    canary, status = rollout.spec.strategy.canary, rollout.status
    if canary is None or status is None or status.aborted:
        return ApprovalState(required=False)
    index = status.current_step_index
    if index is None or index >= len(canary.steps) or canary.steps[index].approval is None:
        return ApprovalState(required=False)
    approval = canary.steps[index].approval
    groups = tuple(approval.groups) if approval else ()
    request = pending_approve_request(rollout)
    if request is None:
        return ApprovalState(required=True, rules=(f"step-{index}",), groups=groups)
    return ApprovalState(
        required=True,
        granted=True,
        rules=(f"step-{index}",),
        groups=groups,
        approved_by=request[1],
        request_id=request[0],
    )
