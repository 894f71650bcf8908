"""Status for a new revision held by policy, and the audit lines when it is let go.

The reconciler uses three functions around ``strategies.decide``:

* ``hold(status, ...)`` when ``evaluate`` (or ``gate_satisfied``) says wait: phase
  Paused with the decision's reason and message, conditions Progressing=Unknown and
  Paused=True, ``heldSince`` set on the first pass. Nothing else changes: the stable
  revision keeps serving and no new ReplicaSet is created.
* ``release(status, decision, now=...)`` when it says allow, *before* ``decide``: clears
  ``heldSince`` and consumes the ``approve`` request that granted a policy approval (so
  the strategy does not also act on it), and returns the history lines to record.
* ``record(status, revision=..., notes=...)`` *after* ``decide`` started the revision's
  history entry: appends those lines (overrides, approval, how long it was held).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from controller.api import reasons as r
from controller.api.reasons import ConditionType, set_condition
from controller.api.status import MAX_HISTORY, Phase, RolloutStatus
from controller.limits import truncate
from controller.policy.evaluate import PolicyDecision
from controller.times import timestamp

MAX_NOTES = 20
HOLD_REASONS = frozenset(
    {
        r.FROZEN_UNTIL,
        r.OUTSIDE_WINDOW,
        r.AWAITING_APPROVAL,
        r.AWAITING_GATE,
        r.ERROR_BUDGET_EXHAUSTED,
    }
)


def hold(
    status: RolloutStatus,
    *,
    reason: str,
    message: str,
    now: datetime,
    generation: int | None,
) -> RolloutStatus:
    """``status`` with the new revision held: Paused, ``reason``, ``message``."""
    message = truncate(message)
    conditions = set_condition(
        status.conditions,
        ConditionType.PROGRESSING,
        status="Unknown",
        reason=reason,
        message=message,
        now=now,
        generation=generation,
    )
    conditions = set_condition(
        conditions,
        ConditionType.PAUSED,
        status="True",
        reason=reason,
        message="",
        now=now,
        generation=generation,
    )
    return status.model_copy(
        update={
            "phase": Phase.PAUSED,
            "reason": reason,
            "message": message,
            "held_since": status.held_since or timestamp(now),
            "observed_generation": generation,
            "conditions": conditions,
        }
    )


def release(
    status: RolloutStatus, decision: PolicyDecision, *, now: datetime
) -> tuple[RolloutStatus, list[str]]:
    """Before ``decide``: the status to plan from, and the history lines to record."""
    notes = list(decision.notes)
    update: dict[str, object] = {"held_since": None}
    if status.held_since:
        notes.insert(
            0,
            f"held by policy from {status.held_since} to {timestamp(now)} "
            f"({status.reason}: {status.message})",
        )
    approval = decision.approval
    if approval is not None and approval.granted and approval.request_id:
        update["last_handled_request"] = approval.request_id
    return status.model_copy(update=update), notes


def record(status: RolloutStatus, *, revision: str, notes: Sequence[str]) -> RolloutStatus:
    """After ``decide``: ``notes`` appended to ``revision``'s newest history entry.

    Its open entry if there is one; else the entry ``decide`` just opened and closed in
    the same pass (a first deploy goes straight to 100% and is Promoted at once).
    """
    if not notes:
        return status
    history = list(status.history)
    candidates = [i for i, e in enumerate(history) if e.revision == revision]
    if not candidates:
        return status
    open_entries = [i for i in candidates if history[i].outcome == "Progressing"]
    index = (open_entries or candidates)[-1]
    entry = history[index]
    events = [*entry.events, *(truncate(n) for n in notes)][-MAX_NOTES:]
    history[index] = entry.model_copy(update={"events": events})
    return status.model_copy(update={"history": history[-MAX_HISTORY:]})
