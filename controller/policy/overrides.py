"""Overrides: an exempt change (a hotfix, a security fix...) going ahead despite policy.

A person marks the Rollout with the label or annotation ``deployctl.io/exempt`` (one of
hotfix, security, regression, release-blocker) and must say why in the annotation
``deployctl.io/override-reason``; ``deployctl rollout --override-freeze KIND --reason
TEXT`` sets both together with ``deployctl.io/requested-by``. ``parse_override`` reads
them; ``controller.policy.evaluate`` decides whether the override is accepted (the kind
must be listed in the freeze's or policy's ``exemptions``, and the reason is required)
and records who overrode what in the history notes and Events.
"""

from __future__ import annotations

from dataclasses import dataclass

from controller.api.common import ObjectMeta
from controller.api.policy import EXEMPTION_KINDS
from controller.names import EXEMPT_KEY, OVERRIDE_REASON_ANNOTATION, REQUESTED_BY_ANNOTATION

MAX_REASON = 512


@dataclass(frozen=True)
class Override:
    """What the Rollout asks for; ``problem`` says why it cannot be accepted, if so."""

    kind: str
    reason: str = ""
    by: str = ""

    @property
    def problem(self) -> str:
        if self.kind not in EXEMPTION_KINDS:
            return (
                f"override refused: {EXEMPT_KEY}={self.kind!r} is not an exemption kind; "
                f"use one of {', '.join(EXEMPTION_KINDS)}"
            )
        if not self.reason.strip():
            return (
                f"override refused: {EXEMPT_KEY}={self.kind} needs a reason in the "
                f"annotation {OVERRIDE_REASON_ANNOTATION} "
                "(deployctl rollout --override-freeze KIND --reason TEXT)"
            )
        return ""

    @property
    def who(self) -> str:
        return self.by or "unknown"

    def summary(self) -> str:
        return f"{self.kind} by {self.who}: {self.reason.strip()[:MAX_REASON]}"


def parse_override(metadata: ObjectMeta) -> Override | None:
    """The override the Rollout carries (annotation first, then label), or None."""
    kind = metadata.annotations.get(EXEMPT_KEY) or metadata.labels.get(EXEMPT_KEY)
    if not kind:
        return None
    return Override(
        kind=kind.strip(),
        reason=metadata.annotations.get(OVERRIDE_REASON_ANNOTATION, ""),
        by=metadata.annotations.get(REQUESTED_BY_ANNOTATION, ""),
    )
