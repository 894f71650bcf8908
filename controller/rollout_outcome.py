"""What a Rollout's status says about one revision: promoted, rolled back, or not yet.

One rule in one place, used by ``deployctl ... --wait`` (``commands/follow.py``) and by
the release controller judging each member cluster (``controller/release/``). The
outcome comes from the status the operator writes, never from a reading of ReplicaSets.
Pure: a function of the Rollout as read from the API.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from controller.exitcodes import Exit


@dataclass(frozen=True)
class WaitOutcome:
    name: str  # Promoted, RolledBack, InvalidSpec, TimedOut, Superseded, NoController
    code: Exit
    message: str


def judge(rollout: Mapping[str, Any], *, revision: str, generation: int) -> WaitOutcome | None:
    """The outcome for ``revision`` if the status shows one, else None (keep waiting)."""
    status = rollout.get("status") or {}
    if int(status.get("observedGeneration") or 0) < generation:
        return None
    phase = status.get("phase")
    reason = str(status.get("reason") or "")
    message = str(status.get("message") or "")
    invalid = any(
        c.get("type") == "InvalidSpec" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
    if invalid or reason == "InvalidSpec":
        # The controller kept the running version; the new spec needs fixing.
        return WaitOutcome("InvalidSpec", Exit.USAGE, message or reason)
    if status.get("stableRevision") == revision and phase == "Healthy":
        return WaitOutcome("Promoted", Exit.OK, f"revision {revision} is stable and healthy")
    canary = status.get("canaryRevision")
    if canary == revision and (phase in ("Degraded", "RolledBack") or status.get("aborted")):
        return WaitOutcome("RolledBack", Exit.ROLLED_BACK, f"{reason}: {message}".strip(": "))
    if canary not in (None, revision) and status.get("stableRevision") != revision:
        return WaitOutcome(
            "Superseded", Exit.ROLLED_BACK, f"revision {canary} replaced {revision} meanwhile"
        )
    return None
