"""``--wait``: follow a Rollout to the outcome of one revision, for people and for CI.

The outcome comes from the status the controller writes (never from our own reading of
ReplicaSets): promoted (exit 0), rolled back or aborted (1), invalid spec (2), timed out
(3), no controller left running (4). While waiting, progress lines go to stderr so that
``-o json`` keeps stdout to the one JSON document.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from controller.commands.common import Session, controller_state, get_rollout
from controller.commands.render import Narrator, latest_measurements
from controller.exitcodes import Exit
from controller.rollout_outcome import WaitOutcome, judge

CONTROLLER_CHECK_SECONDS = 15.0


def follow(
    session: Session,
    name: str,
    *,
    revision: str,
    generation: int,
    timeout: float,
    progress: Callable[[str], None],
    poll_interval: float = 1.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[WaitOutcome, dict[str, Any]]:
    """Poll the Rollout until ``judge`` decides or ``timeout`` seconds pass."""
    narrator = Narrator(revision, generation)
    started = clock()
    next_check = started + CONTROLLER_CHECK_SECONDS
    rollout: dict[str, Any] = {}
    while True:
        rollout = get_rollout(session, name)
        for line in narrator.lines(rollout):
            progress(line)
        outcome = judge(rollout, revision=revision, generation=generation)
        if outcome is not None:
            return outcome, rollout
        now = clock()
        if now - started >= timeout:
            status = rollout.get("status") or {}
            return (
                WaitOutcome(
                    "TimedOut",
                    Exit.TIMEOUT,
                    f"still {status.get('phase') or 'pending'} after {timeout:.0f} s"
                    + (f" ({status.get('reason')})" if status.get("reason") else ""),
                ),
                rollout,
            )
        if now >= next_check:
            next_check = now + CONTROLLER_CHECK_SECONDS
            state = controller_state(session)
            if not state.running:
                return (
                    WaitOutcome(
                        "NoController", Exit.UNREACHABLE, f"the controller stopped: {state.detail}"
                    ),
                    rollout,
                )
        sleep(poll_interval)


def outcome_document(
    rollout: Mapping[str, Any],
    outcome: WaitOutcome,
    *,
    revision: str,
    seconds: float,
) -> dict[str, Any]:
    """The one JSON document of ``--wait -o json``: outcome and the evidence behind it."""
    meta = rollout.get("metadata") or {}
    status = rollout.get("status") or {}
    history = [h for h in status.get("history") or [] if h.get("revision") == revision]
    return {
        "rollout": f"{meta.get('namespace')}/{meta.get('name')}",
        "revision": revision,
        "outcome": outcome.name,
        "exitCode": int(outcome.code),
        "message": outcome.message,
        "phase": status.get("phase"),
        "reason": status.get("reason", ""),
        "stableRevision": status.get("stableRevision"),
        "canaryRevision": status.get("canaryRevision"),
        "weight": status.get("weight", 0),
        "durationSeconds": round(seconds, 1),
        "measurements": latest_measurements(status, revision),
        "history": history[-1] if history else None,
    }
