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

Webhook URLs are read from Secrets in the controller's own namespace only (the Role in
``manifests/operator`` grants ``get`` on secrets there and nowhere else), so the
operator never reads a Secret in an application's namespace.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

import structlog
from pydantic import ValidationError

from controller.api import Rollout, RolloutStatus
from controller.api.policy import DeliveryPolicy
from controller.cache import Cache
from controller.notify import Notifier, detect_events, notification_for, targets_for
from controller.policy.evaluate import PolicyEvent, applicable_policies, evaluate
from controller.policy.gates import gate_satisfied
from controller.policy.hold import hold, record, release
from controller.policy.overrides import parse_override

log = structlog.stdlib.get_logger(__name__)

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
        approvals_verified: Callable[[], bool] = lambda: False,
    ) -> None:
        self.policies = policies
        self.rollouts = rollouts
        self.controller_namespace = controller_namespace
        self.notifier = notifier
        # Whether the API server vouches for approvers' names (controller.admission).
        self.approvals_verified = approvals_verified

    def applicable(self, rollout: Rollout) -> list[DeliveryPolicy]:
        if self.policies is None:
            return []
        parsed: list[DeliveryPolicy] = []
        for raw in self.policies.list(None):
            try:
                parsed.append(DeliveryPolicy.model_validate(raw))
            except ValidationError as exc:
                # The apiserver's schema admits some documents the model refuses (cross-
                # field rules); such a policy is skipped, loudly, not half-applied.
                meta = raw.get("metadata", {})
                log.warning(
                    "ignoring an invalid DeliveryPolicy",
                    policy=f"{meta.get('namespace')}/{meta.get('name')}",
                    problems=str(exc).splitlines()[0],
                )
        return applicable_policies(parsed, rollout, controller_namespace=self.controller_namespace)

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
            approvals_verified=self.approvals_verified(),
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
            images = {c.name: c.image for c in rollout.spec.template.spec.containers}
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
