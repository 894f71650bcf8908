"""What a release pass asks for: member changes (with the annotations they carry) and
Events, gathered in a ``ReleasePlan`` — plain values, built by ``planner.py`` and sent
by ``members.py`` and ``reconciler.py``.

A change to a member records on its Rollout which Release made it
(``deployctl.io/release``), who asked (the Release's creator, as ``deployctl rollout``
would record a person) and why; a rollback also carries ``deployctl undo``'s fast track
(a one-shot ``promoteFull`` request) and claims the ``regression`` exemption, which a
member's freeze honours only if it lists that exemption.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from controller.api.release import Release
from controller.api.release_status import ReleaseClusterStatus, ReleaseStatus
from controller.names import (
    CI_ANNOTATION_PREFIX,
    EXEMPT_KEY,
    OVERRIDE_REASON_ANNOTATION,
    REASON_ANNOTATION,
    REQUEST_ANNOTATION,
    REQUESTED_BY_ANNOTATION,
)
from controller.requests import Request

RELEASE_ANNOTATION = "deployctl.io/release"
"""On a member Rollout: ``namespace/name`` of the Release that changed its template."""


@dataclass(frozen=True)
class SetTemplate:
    """Give the member Rollout the new template (only if it still has ``expected``)."""

    cluster: str
    template: dict[str, Any]
    revision: str
    expected_revision: str | None
    annotations: dict[str, str | None]


@dataclass(frozen=True)
class RollBack:
    """Return the member Rollout to ``revision``'s template, fast-tracked like ``undo``."""

    cluster: str
    revision: str
    expected_revision: str | None
    annotations: dict[str, str | None]


Action = SetTemplate | RollBack


@dataclass(frozen=True)
class ReleaseEvent:
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass(frozen=True)
class ReleasePlan:
    status: ReleaseStatus
    actions: tuple[Action, ...] = ()
    events: tuple[ReleaseEvent, ...] = ()
    wake_at: datetime | None = None
    """The earliest timer (a soak's end, a read retry, a deadline)."""
    active: bool = False
    """Members still need watching: read them again after the poll interval."""


def release_key(release: Release) -> str:
    return f"{release.metadata.namespace}/{release.metadata.name}"


def _provenance(release: Release) -> dict[str, str | None]:
    annotations = release.metadata.annotations
    who = annotations.get(REQUESTED_BY_ANNOTATION, "")
    by = f"release {release_key(release)}" + (f" ({who})" if who else "")
    out: dict[str, str | None] = {
        RELEASE_ANNOTATION: release_key(release),
        REQUESTED_BY_ANNOTATION: by[:253],
    }
    for key, value in annotations.items():
        if key.startswith(CI_ANNOTATION_PREFIX):
            out[key] = value
    return out


def change_annotations(release: Release, *, wave: str) -> dict[str, str | None]:
    """What the member Rollout records about the change: which release, who, why."""
    reason = release.spec.reason or f"release {release_key(release)}, wave {wave}"
    return {
        **_provenance(release),
        REASON_ANNOTATION: reason[:1024],
        # A new revision never inherits an earlier freeze override.
        EXEMPT_KEY: None,
        OVERRIDE_REASON_ANNOTATION: None,
    }


def rollback_annotations(
    release: Release, *, cluster: ReleaseClusterStatus, why: str
) -> dict[str, str | None]:
    """The rollback: fast-tracked (a one-shot promoteFull, as ``deployctl undo`` sends),
    and marked as a regression fix for members whose freezes allow that exemption."""
    back = cluster.previous_revision
    why = f"release {release_key(release)} halted ({why}); returning to revision {back}"
    request_id = hashlib.sha256(
        f"{release_key(release)}\x00{release.metadata.uid}\x00{cluster.name}\x00rollback".encode()
    ).hexdigest()[:12]
    request = Request(action="promoteFull", id=request_id, by=f"release {release_key(release)}")
    return {
        **_provenance(release),
        REASON_ANNOTATION: why[:1024],
        EXEMPT_KEY: "regression",
        OVERRIDE_REASON_ANNOTATION: why[:1024],
        REQUEST_ANNOTATION: request.to_annotation(),
    }
