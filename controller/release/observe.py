"""What one read of a member cluster's Rollout shows the release controller.

``members.py`` turns each read into an ``Observation``: a ``MemberRollout`` (the object
as the member's apiserver returned it, with the few facts the planner asks about) or a
``ReadFailure`` (unreachable, Rollout missing, access denied). Pure: no I/O here, so the
planner's tests build observations from plain dicts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from controller.api import reasons as r
from controller.api.release_status import MAX_EVIDENCE, Evidence
from controller.api.revision import template_hash
from controller.api.rollout import PodTemplateSpec
from controller.policy.hold import HOLD_REASONS
from controller.rollout_outcome import WaitOutcome, judge

VERDICTS_OF_FAILURE = ("Failed", "Error", "Inconclusive")


@dataclass(frozen=True)
class MemberRollout:
    """A successful read of the application's Rollout in one member cluster."""

    raw: Mapping[str, Any]

    @property
    def status(self) -> Mapping[str, Any]:
        return self.raw.get("status") or {}

    @property
    def template(self) -> Mapping[str, Any]:
        return (self.raw.get("spec") or {}).get("template") or {}

    @property
    def revision(self) -> str | None:
        """The revision of the template as it is now (None if it does not parse)."""
        return template_revision(self.template)

    @property
    def generation(self) -> int:
        return int((self.raw.get("metadata") or {}).get("generation") or 0)

    @property
    def phase(self) -> str:
        return str(self.status.get("phase") or "")

    @property
    def reason(self) -> str:
        return str(self.status.get("reason") or "")

    @property
    def message(self) -> str:
        return str(self.status.get("message") or "")

    @property
    def stable(self) -> str | None:
        value = self.status.get("stableRevision")
        return str(value) if value else None

    @property
    def canary(self) -> str | None:
        value = self.status.get("canaryRevision")
        return str(value) if value else None

    @property
    def observed(self) -> bool:
        """The member's operator has seen the current spec."""
        return int(self.status.get("observedGeneration") or 0) >= self.generation

    def outcome(self, revision: str) -> WaitOutcome | None:
        """Promoted / RolledBack / InvalidSpec / Superseded for ``revision``, or None."""
        return judge(self.raw, revision=revision, generation=self.generation)

    def held_by_policy(self) -> bool:
        """The member's delivery policy holds the new revision before it starts."""
        return (
            self.observed
            and bool(self.status.get("heldSince"))
            and self.phase == "Paused"
            and self.reason in HOLD_REASONS
        )

    def busy_with(self, revision: str) -> str | None:
        """Another revision the member is rolling out (or holding) now, if any."""
        if self.held_by_policy() and self.revision != revision:
            return self.revision
        canary = self.canary
        if (
            canary is not None
            and canary != revision
            and not self.status.get("aborted")
            and self.phase in ("Progressing", "Paused")
        ):
            return canary
        return None

    def evidence(self, revision: str) -> list[Evidence]:
        """The failing metrics of the member's analysis runs for ``revision``."""
        out: list[Evidence] = []
        for run in self.status.get("analysisRuns") or []:
            if run.get("revision") != revision:
                continue
            for metric in run.get("metrics") or []:
                if metric.get("phase") not in VERDICTS_OF_FAILURE:
                    continue
                measurements = metric.get("measurements") or []
                latest = measurements[-1] if measurements else {}
                out.append(
                    Evidence(
                        run=str(run.get("key") or ""),
                        metric=str(metric.get("name") or ""),
                        phase=str(metric.get("phase") or ""),
                        value=None if latest.get("value") is None else str(latest["value"]),
                        at=latest.get("at"),
                        message=str(metric.get("message") or latest.get("message") or "")[:512],
                    )
                )
        return out[-MAX_EVIDENCE:]


@dataclass(frozen=True)
class ReadFailure:
    """A read that did not return the Rollout; ``reason`` is one of the three below."""

    reason: str
    message: str

    @property
    def permanent(self) -> bool:
        """Retrying cannot help (no such Rollout, no permission): fail without waiting."""
        return self.reason in (r.ROLLOUT_NOT_FOUND, r.CLUSTER_FORBIDDEN)


Observation = MemberRollout | ReadFailure


def unreachable(message: str) -> ReadFailure:
    return ReadFailure(r.CLUSTER_UNREACHABLE, message)


def template_revision(template: Mapping[str, Any]) -> str | None:
    try:
        return template_hash(PodTemplateSpec.model_validate(template))
    except ValidationError:
        return None
