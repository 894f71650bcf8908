"""One decision for a new revision: allowed, waiting (frozen / outside a window), or
needing an approval.

The reconciler calls ``evaluate`` before it lets a *new* revision start (the desired
revision is neither the stable nor the canary one), with the DeliveryPolicies of the
Rollout's namespace and of the controller's namespace (``applicable_policies``), the
override the Rollout carries (``overrides.parse_override``) and the time. In order:

1. **freezes** in force hold the rollout until the last of them (chained) ends, except
   those the override is exempt from -> ``Wait``, reason ``FrozenUntil``; then the
   **error-budget freeze** (``budget``): a policy whose rule finds the budget left
   below its floor holds, unless the override is exempt -> ``Wait``, reason
   ``ErrorBudgetExhausted``, looked at again every ``BUDGET_RECHECK``;
2. **windows**: every policy listing windows must have one open, unless the override's
   kind is in that policy's ``exemptions`` -> ``Wait``, reason ``OutsideWindow``, until
   the next opening;
3. **approvals**: a matching rule without an unconsumed ``approve`` request ->
   ``NeedsApproval``, reason ``AwaitingApproval``.

A rollout already in progress is never stopped by a freeze that starts later: policy
guards the start of a revision. Overrides are only accepted with a reason; accepted and
refused overrides come back as history ``notes`` and ``events`` for the reconciler to
record. Pure: ``now`` is given, nothing is read or written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from controller.api import Rollout
from controller.api import reasons as r
from controller.api.policy import ApprovalRule, DeliveryPolicy, Exemption, Freeze
from controller.limits import FREEZE_CHAIN, FREEZE_HORIZON
from controller.policy.approvals import (
    ApprovalState,
    MajorChange,
    major_version_changed,
    matching_rules,
    policy_approval,
)
from controller.policy.budget import BudgetLeft, budget_hold
from controller.policy.freeze import FreezePeriod, frozen_until, periods_in_force
from controller.policy.overrides import Override
from controller.policy.windows import describe, window_state
from controller.times import timestamp

Verdict = Literal["Allow", "Wait", "NeedsApproval"]
# A closed window always has a next opening; this is only a guard.
_FALLBACK_RETRY_SECONDS = 3600.0
BUDGET_RECHECK = 60.0
"""Seconds between looks at an exhausted error budget (it recovers as errors age out)."""


@dataclass(frozen=True)
class PolicyEvent:
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass(frozen=True)
class PolicyDecision:
    """What the policies say about starting the new revision now."""

    verdict: Verdict
    reason: str
    """``PolicyAllowed``, ``FrozenUntil``, ``OutsideWindow`` or ``AwaitingApproval``."""
    message: str
    retry_at: datetime | None = None
    """When to look again (a freeze's end, a window's opening); None: on the next change."""
    notes: tuple[str, ...] = ()
    """Lines for the revision's history entry (overrides, approvals)."""
    events: tuple[PolicyEvent, ...] = ()
    approval: ApprovalState | None = None
    """A granted policy approval: consume ``request_id``, record ``approved_by``."""

    @property
    def allowed(self) -> bool:
        return self.verdict == "Allow"


def policy_name(policy: DeliveryPolicy) -> str:
    meta = policy.metadata
    return f"{meta.namespace}/{meta.name}" if meta.namespace else str(meta.name)


NamespaceLabels = Mapping[str, str] | None
"""The labels of the Rollout's Namespace; None when the controller cannot read them
(a namespaced install): a ``namespaceSelector`` then counts as matching, so a policy
that may apply is applied rather than skipped."""


def selects(
    policy: DeliveryPolicy, rollout: Rollout, namespace_labels: NamespaceLabels = None
) -> bool:
    """Whether ``policy``'s namespaceSelector and selector both take ``rollout``."""
    by_namespace = policy.spec.namespace_selector
    if by_namespace is not None and namespace_labels is not None:
        if any(namespace_labels.get(k) != v for k, v in by_namespace.match_labels.items()):
            return False
    selector = policy.spec.selector
    if selector is None:
        return True
    labels = rollout.metadata.labels
    return all(labels.get(k) == v for k, v in selector.match_labels.items())


def applicable_policies(
    policies: Sequence[DeliveryPolicy],
    rollout: Rollout,
    *,
    controller_namespace: str,
    namespace_labels: NamespaceLabels = None,
) -> list[DeliveryPolicy]:
    """Policies in the Rollout's namespace or the controller's (the cluster default)."""
    namespaces = {rollout.metadata.namespace, controller_namespace}
    return [
        p
        for p in policies
        if p.metadata.namespace in namespaces and selects(p, rollout, namespace_labels)
    ]


def _freezes(
    policies: Sequence[DeliveryPolicy],
) -> list[tuple[str, Freeze, tuple[Exemption, ...]]]:
    return [
        (
            policy_name(policy),
            freeze,
            tuple(freeze.exemptions if freeze.exemptions is not None else policy.spec.exemptions),
        )
        for policy in policies
        for freeze in policy.spec.freezes
    ]


def _exempt(override: Override | None, exemptions: Sequence[str]) -> bool:
    return override is not None and override.kind in exemptions


def _override_hint(override: Override | None, refused: str, exemptions: Sequence[str]) -> str:
    if refused:
        return f"; {refused}"
    if override is not None:
        allowed = ", ".join(exemptions) or "none"
        return f"; override {override.kind!r} is not exempt here (exempt: {allowed})"
    if exemptions:
        return (
            f"; exempt changes ({', '.join(exemptions)}) may go ahead with "
            "`deployctl rollout --override-freeze KIND --reason TEXT`"
        )
    return ""


def _frozen(
    period: FreezePeriod, *, override: Override | None, refused: str, events: list[PolicyEvent]
) -> PolicyDecision:
    until = period.end
    bound = "at least " if period.at_least else ""
    followed = (
        f" (chained freezes followed as far as {FREEZE_CHAIN} / {FREEZE_HORIZON})"
        if period.at_least
        else ""
    )
    message = (
        f"frozen until {bound}{until.isoformat()} by {period.describe()} in policy "
        f"{period.policy}{followed}" + _override_hint(override, refused, period.exemptions)
    )
    return PolicyDecision(
        verdict="Wait",
        reason=r.FROZEN_UNTIL,
        message=message,
        retry_at=until,
        events=tuple(events),
    )


def evaluate(
    rollout: Rollout,
    policies: Sequence[DeliveryPolicy],
    *,
    now: datetime,
    override: Override | None,
    major_change: MajorChange = major_version_changed,
    namespace_labels: NamespaceLabels = None,
    approvals_verified: bool = False,
    budgets: Mapping[str, BudgetLeft] | None = None,
) -> PolicyDecision:
    """Whether the new revision of ``rollout`` may start at ``now`` under ``policies``.

    ``policies`` are those that apply (see ``applicable_policies``); each is narrowed by
    its selectors again here, so passing a namespace's whole list is also correct. A
    policy with ``overrideApproval`` whose freeze or window is overridden adds an
    approval rule of its own: the override waits for ``deployctl approve``.
    ``approvals_verified``: whether the API server vouches for approvers' names (see
    ``controller.policy.approvals``); approval messages say "unverified" otherwise.
    ``budgets``: the error budget left, by ``policy_name``, for policies with an
    ``errorBudget`` rule (measured by the caller).
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    active = [p for p in policies if selects(p, rollout, namespace_labels)]
    events: list[PolicyEvent] = []
    notes: list[str] = []
    overridden = False
    by_name = {policy_name(p): p for p in active}
    override_rules: dict[str, tuple[str, ApprovalRule]] = {}

    def needs_approval(name: str) -> None:
        policy = by_name.get(name)
        if policy is not None and policy.spec.override_approval is not None:
            # Four eyes: whoever asked for the override may not approve it as well.
            rule = ApprovalRule(
                name="override",
                groups=policy.spec.override_approval.groups,
                require_different_approver=True,
                message="an override of this policy needs an approval",
            )
            override_rules[name] = (f"{policy.metadata.name or '?'}/override", rule)

    refused = override.problem if override is not None else ""
    usable = override if override is not None and not refused else None

    def record_override(hold: str, name: str) -> None:
        """Note and announce that the usable override lifts policy ``name``'s ``hold``."""
        nonlocal overridden
        assert usable is not None
        text = f"{hold}; overridden: {usable.summary()}"
        notes.append(text)
        events.append(PolicyEvent("Normal", r.POLICY_OVERRIDDEN, text))
        overridden = True
        needs_approval(name)

    def waived(policy: DeliveryPolicy, hold: str) -> bool:
        """Whether an exempt override lifts ``policy``'s ``hold``; recorded if it does."""
        if not _exempt(usable, policy.spec.exemptions):
            return False
        record_override(hold, policy_name(policy))
        return True

    if refused:
        events.append(PolicyEvent("Warning", r.OVERRIDE_REFUSED, refused))

    # 1. Freezes.
    freezes = _freezes(active)
    in_force = periods_in_force(freezes, now)
    if in_force:
        binding = [f for f in freezes if not _exempt(usable, f[2])]
        period = frozen_until(binding, now)
        if period is not None:
            return _frozen(period, override=override, refused=refused, events=events)
        assert usable is not None  # every freeze in force was exempt
        for p in in_force:
            hold = f"{p.describe()} in policy {p.policy} (until {p.end.isoformat()})"
            record_override(hold, p.policy)

    # 1b. The error-budget release freeze.
    for policy in active:
        rule = policy.spec.error_budget
        if rule is None:
            continue
        name = policy_name(policy)
        left = (budgets or {}).get(name)
        if left is not None and left.problem:
            events.append(
                PolicyEvent(
                    "Warning",
                    r.ERROR_BUDGET_EXHAUSTED,
                    f"error budget of policy {name} unknown, not holding: {left.problem}",
                )
            )
        held = budget_hold(rule, left)
        if not held or waived(policy, f"{held} in policy {name}"):
            continue
        return PolicyDecision(
            verdict="Wait",
            reason=r.ERROR_BUDGET_EXHAUSTED,
            message=f"{held} in policy {name}"
            + _override_hint(override, refused, policy.spec.exemptions),
            retry_at=now + timedelta(seconds=BUDGET_RECHECK),
            events=tuple(events),
        )

    # 2. Windows: every policy that lists some must have one open.
    for policy in active:
        if not policy.spec.windows:
            continue
        state = window_state(policy.spec.windows, now)
        if state.open:
            continue
        name = policy_name(policy)
        if waived(policy, f"deployment windows of policy {name}"):
            continue
        opening = state.next
        where = f" ({describe(opening.window)})" if opening else ""
        opens = opening.start.isoformat() if opening else "unknown"
        retry = opening.start if opening else now + timedelta(seconds=_FALLBACK_RETRY_SECONDS)
        return PolicyDecision(
            verdict="Wait",
            reason=r.OUTSIDE_WINDOW,
            message=(
                f"outside the deployment windows of policy {name}; next window opens "
                f"{opens}{where}" + _override_hint(override, refused, policy.spec.exemptions)
            ),
            retry_at=retry,
            events=tuple(events),
        )

    # 3. Approvals.
    rules = matching_rules(rollout, active, major_change=major_change)
    approval = policy_approval(
        rollout, [*rules, *override_rules.values()], verified=approvals_verified
    )
    if approval.pending:
        return PolicyDecision(
            verdict="NeedsApproval",
            reason=r.AWAITING_APPROVAL,
            message=approval.message(),
            notes=tuple(notes),
            events=tuple(events),
            approval=approval,
        )
    if approval.granted:
        text = approval.message(at=timestamp(now))
        notes.append(text)
        events.append(PolicyEvent("Normal", r.APPROVED, text))
    return PolicyDecision(
        verdict="Allow",
        reason=r.POLICY_ALLOWED,
        message="allowed by delivery policy" + (" (overridden)" if overridden else ""),
        notes=tuple(notes),
        events=tuple(events),
        approval=approval if approval.granted else None,
    )
