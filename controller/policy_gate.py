"""Delivery policy inside the reconcile pass: the glue between the pure decisions in
``controller/policy/`` and the reconciler, and the notifications after a pass.

The reconciler asks ``PolicyGate.check`` before the strategy decides. Only a *new*
revision (neither stable nor the canary in flight) is judged: policy guards the start
of a revision, never a rollback to the stable one and never a rollout already running.

* ``Held``: a freeze, a closed window, a missing approval or an unmet promotion gate.
  The reconciler writes the held status (phase Paused, the reason and the time it ends)
  and touches nothing else: no ReplicaSet, no Service, no weight. It looks again at the
  decision's ``retry_at`` (a freeze's end, a window's opening), at most a minute later.
* ``Released``: the status to plan from (``heldSince`` cleared, the granting approve
  request consumed) and the audit lines for the revision's history entry.

Policies are parsed once per ``resourceVersion`` (a pass reads every policy of the
cluster; validating each on every pass of every Rollout cost more than the pass), and a
cluster-wide policy's ``namespaceSelector`` is matched against the labels of the
Rollout's Namespace object (from the namespaces cache; without one, it matches).

A promotion gate naming a Rollout of another namespace is honoured only when a policy
of that namespace, or a cluster-wide one, that applies to that Rollout lists the gated
Rollout's namespace in ``promotionGateReaders``: a gate's messages reveal the other
namespace's revisions. Until then the Rollout is held with a message saying what to add
(and nothing about the other Rollout, not even whether it exists).

Webhook URLs are read from Secrets in the controller's own namespace only (the Role in
``manifests/operator`` grants ``get`` on secrets there and nowhere else), so the
operator never reads a Secret in an application's namespace; a policy of another
namespace may use only the Secrets bound to its namespace (``controller.notify``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import structlog
from pydantic import ValidationError

from controller.api import Rollout, RolloutStatus
from controller.api import reasons as r
from controller.api.policy import DeliveryPolicy, ErrorBudgetFreeze
from controller.cache import Cache
from controller.notify import Notifier, detect_events, notification_for, targets_for
from controller.policy.budget import BudgetLeft
from controller.policy.evaluate import PolicyEvent, applicable_policies, evaluate, policy_name
from controller.policy.gates import gate_satisfied
from controller.policy.hold import hold, record, release
from controller.policy.overrides import parse_override

log = structlog.stdlib.get_logger(__name__)

BudgetReader = Callable[[ErrorBudgetFreeze, str, str], tuple[float | None, str]]
"""(rule, namespace, rollout name) -> (budget share left, why unknown):
``controller.analysis.budget.budget_left`` bound to the Prometheus measurer."""

# Look again at least this often while held (a gate's source may change meanwhile).
MAX_HOLD_RECHECK = 60.0
MIN_HOLD_RECHECK = 1.0


@dataclass(frozen=True)
class Held:
    status: RolloutStatus
    events: tuple[PolicyEvent, ...]
    requeue_after: float


@dataclass(frozen=True)
class Released:
    status: RolloutStatus
    notes: list[str] = field(default_factory=list)
    events: tuple[PolicyEvent, ...] = ()

    def record(self, status: RolloutStatus, *, revision: str) -> RolloutStatus:
        """After ``decide``: the audit lines added to the revision's history entry."""
        return record(status, revision=revision, notes=self.notes)


class PolicyGate:
    def __init__(
        self,
        *,
        policies: Cache | None,
        rollouts: Cache,
        controller_namespace: str,
        notifier: Notifier | None = None,
        namespaces: Cache | None = None,
        approvals_verified: Callable[[], bool] = lambda: False,
        budgets: BudgetReader | None = None,
    ) -> None:
        self.policies = policies
        self.rollouts = rollouts
        self.controller_namespace = controller_namespace
        self.notifier = notifier
        self.namespaces = namespaces
        self._lock = threading.Lock()
        # (namespace, name) -> (resourceVersion, the model or None when invalid)
        self._parsed: dict[tuple[str, str], tuple[str, DeliveryPolicy | None]] = {}
        # Whether the API server vouches for approvers' names (controller.admission).
        self.approvals_verified = approvals_verified
        # Measures the error budget left for policies with an errorBudget rule.
        self.budgets = budgets

    def _all_policies(self) -> list[DeliveryPolicy]:
        """Every valid policy the cache holds, each validated once per resourceVersion."""
        if self.policies is None:
            return []
        out: list[DeliveryPolicy] = []
        seen: set[tuple[str, str]] = set()
        for raw in self.policies.list(None):
            meta = raw.get("metadata") or {}
            key = (str(meta.get("namespace", "")), str(meta.get("name", "")))
            version = str(meta.get("resourceVersion", ""))
            seen.add(key)
            with self._lock:
                known = self._parsed.get(key)
            if known is None or known[0] != version or not version:
                known = (version, _parse_policy(raw))
                with self._lock:
                    self._parsed[key] = known
            if known[1] is not None:
                out.append(known[1])
        with self._lock:
            for gone in set(self._parsed) - seen:
                del self._parsed[gone]
        return out

    def namespace_labels(self, namespace: str) -> Mapping[str, str] | None:
        """The labels of the Namespace object; None when namespaces are not watched."""
        if self.namespaces is None:
            return None
        found = self.namespaces.get(None, namespace)
        return dict((found or {}).get("metadata", {}).get("labels") or {})

    def applicable(self, rollout: Rollout) -> list[DeliveryPolicy]:
        return applicable_policies(
            self._all_policies(),
            rollout,
            controller_namespace=self.controller_namespace,
            namespace_labels=self.namespace_labels(str(rollout.metadata.namespace)),
        )

    def check(
        self, rollout: Rollout, status: RolloutStatus, *, revision: str, now: datetime
    ) -> Held | Released | None:
        """None when there is nothing to judge (no new revision, no policy, no gate)."""
        if revision in (status.stable_revision, status.canary_revision):
            return None
        policies = self.applicable(rollout)
        if not policies and rollout.spec.requires is None and not status.held_since:
            return None
        generation = rollout.metadata.generation
        subject = rollout.model_copy(update={"status": status})
        decision = evaluate(
            subject,
            policies,
            now=now,
            override=parse_override(rollout.metadata),
            namespace_labels=self.namespace_labels(str(rollout.metadata.namespace)),
            approvals_verified=self.approvals_verified(),
            budgets=self._budgets(rollout, policies),
        )
        if not decision.allowed:
            return Held(
                hold(
                    status,
                    reason=decision.reason,
                    message=decision.message,
                    now=now,
                    generation=generation,
                ),
                decision.events,
                _recheck_in(decision.retry_at, now),
            )
        gate_note = ""
        if rollout.spec.requires is not None:
            refused = self._gate_refused(rollout)
            if refused:
                held = hold(
                    status, reason=r.AWAITING_GATE, message=refused, now=now, generation=generation
                )
                return Held(held, decision.events, MAX_HOLD_RECHECK)
            images = {c.name: c.image for c in rollout.spec.pod_template.spec.containers}
            gate = gate_satisfied(rollout, self._status_of(rollout.spec.requires.rollout), images)
            if not gate.satisfied:
                held = hold(
                    status, reason=gate.reason, message=gate.message, now=now, generation=generation
                )
                return Held(held, decision.events, MAX_HOLD_RECHECK)
            gate_note = gate.message
        released, notes = release(status, decision, now=now)
        if gate_note:
            notes.append(gate_note)
        return Released(released, notes, decision.events)

    def _budgets(
        self, rollout: Rollout, policies: Sequence[DeliveryPolicy]
    ) -> dict[str, BudgetLeft]:
        """The error budget left for each policy with an errorBudget rule."""
        out: dict[str, BudgetLeft] = {}
        for policy in policies:
            rule = policy.spec.error_budget
            if rule is None:
                continue
            if self.budgets is None:
                out[policy_name(policy)] = BudgetLeft(None, "no metrics provider configured")
                continue
            remaining, problem = self.budgets(
                rule, str(rollout.metadata.namespace), str(rollout.metadata.name)
            )
            out[policy_name(policy)] = BudgetLeft(remaining, problem)
        return out

    def _gate_refused(self, rollout: Rollout) -> str:
        """Why ``requires.rollout`` may not be read from this Rollout's namespace ('' if
        it may): the same words whether or not the other Rollout exists."""
        gate = rollout.spec.requires
        own = str(rollout.metadata.namespace)
        if gate is None or gate.namespace == own:
            return ""
        raw = self.rollouts.get(gate.namespace, gate.name)
        source = _parse_rollout(raw) if raw is not None else None
        if source is not None:
            for policy in self.applicable(source):
                if own in policy.spec.promotion_gate_readers:
                    return ""
        return (
            f"promotion gate: Rollouts of namespace {own} may not name {gate.rollout} in "
            f"requires.rollout; a DeliveryPolicy of namespace {gate.namespace} (or a "
            "cluster-wide one) that applies to it must list "
            f"{own} in spec.promotionGateReaders"
        )

    def _status_of(self, key: str) -> RolloutStatus | None:
        namespace, _, name = key.partition("/")
        raw = self.rollouts.get(namespace, name)
        if raw is None or not raw.get("status"):
            return None
        try:
            return RolloutStatus.model_validate(raw["status"])
        except ValidationError:
            return None

    def notify(
        self,
        rollout: Rollout,
        before: RolloutStatus | None,
        after: RolloutStatus,
        *,
        now: datetime,
    ) -> None:
        """Queue webhook notifications for what changed; never blocks, never raises."""
        if self.notifier is None:
            return
        events = detect_events(before, after)
        if not events:
            return
        policies = self.applicable(rollout)
        for event in events:
            targets = [
                (replace(secret, namespace=self.controller_namespace), target)
                for secret, target in targets_for(policies, event)
            ]
            if targets:
                self.notifier.notify(notification_for(rollout, after, event, now=now), targets)


def _parse_policy(raw: Mapping[str, Any]) -> DeliveryPolicy | None:
    try:
        return DeliveryPolicy.model_validate(raw)
    except ValidationError as exc:
        # The apiserver's schema admits some documents the model refuses (cross-field
        # rules); such a policy is skipped, loudly (once per version), not half-applied.
        meta = raw.get("metadata", {})
        log.warning(
            "ignoring an invalid DeliveryPolicy",
            policy=f"{meta.get('namespace')}/{meta.get('name')}",
            problems=str(exc).splitlines()[0],
        )
        return None


def _parse_rollout(raw: Mapping[str, Any]) -> Rollout | None:
    try:
        return Rollout.model_validate(raw)
    except ValidationError:
        return None


def _recheck_in(retry_at: datetime | None, now: datetime) -> float:
    if retry_at is None:
        return MAX_HOLD_RECHECK
    seconds = (retry_at - now).total_seconds()
    return min(MAX_HOLD_RECHECK, max(MIN_HOLD_RECHECK, seconds))


def held_events(before: RolloutStatus | None, held: Held) -> Sequence[tuple[str, str, str]]:
    """(type, reason, message) Events for a hold, only when its reason or message changed
    (a hold is re-checked every minute; the Events say when something happened)."""
    if before is not None and (before.reason, before.message) == (
        held.status.reason,
        held.status.message,
    ):
        return []
    out = [(e.type, e.reason, e.message) for e in held.events]
    out.append(("Normal", held.status.reason, held.status.message))
    return out
