"""Release.status: everything the release controller knows, and its only memory.

Per cluster: the revision asked, the revision it replaced, the phase, every timer as a
timestamp (started, progressing since, healthy at, unreachable since, next read), the
member's own phase/reason/message and, after a failure, the evidence copied from the
member's analysis. Per wave: its phase and when its soak ends. A release controller
killed at any instant carries on from these fields alone: a cluster is recorded as
asked *before* its Rollout is changed, so a restart re-sends the same change at most
(a no-op when it was applied) and never touches a cluster whose part is done.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from controller.api.status import StatusModel

MAX_EVIDENCE = 10

ReleasePhase = Literal["Progressing", "Waiting", "Succeeded", "Failed", "RollingBack", "RolledBack"]
ClusterPhase = Literal[
    "Pending", "Progressing", "Held", "Healthy", "Failed", "RollingBack", "RolledBack"
]
WavePhase = Literal["Pending", "Progressing", "Soaking", "Succeeded", "Failed"]

# Clusters the release changed and has to keep an eye on.
TOUCHED: tuple[ClusterPhase, ...] = ("Progressing", "Held", "Healthy", "Failed", "RollingBack")
IN_FLIGHT: tuple[ClusterPhase, ...] = ("Progressing", "Held")
FINISHED_RELEASE: tuple[ReleasePhase, ...] = ("Succeeded", "Failed", "RolledBack")


class Evidence(StatusModel):
    """One metric of the member's analysis for the failing revision, as it last measured."""

    run: str = ""
    metric: str = ""
    phase: str = ""
    value: str | None = None
    at: str | None = None
    message: str = ""


class ReleaseClusterStatus(StatusModel):
    name: str
    wave: str
    phase: ClusterPhase = "Pending"
    revision: str | None = Field(default=None, description="The revision asked of this cluster")
    previous_revision: str | None = Field(
        default=None, description="What the cluster ran before; where rollbackAll returns"
    )
    replaced_revision: str | None = Field(
        default=None, description="The template's revision when the change was asked"
    )
    started_at: str | None = None
    progressing_since: str | None = Field(
        default=None,
        description="Start of the clusterTimeout clock (moves past time held by policy)",
    )
    healthy_at: str | None = None
    finished_at: str | None = None
    reason: str = ""
    message: str = ""
    member_phase: str = Field(default="", description="The member Rollout's own phase")
    last_error: str = ""
    unreachable_since: str | None = None
    failures: int = Field(default=0, description="Consecutive failed reads")
    retry_at: str | None = Field(default=None, description="Next read after failed ones")
    evidence: Annotated[list[Evidence], Field(max_length=MAX_EVIDENCE)] = Field(
        default_factory=list
    )


class WaveStatus(StatusModel):
    name: str
    phase: WavePhase = "Pending"
    started_at: str | None = None
    soak_until: str | None = None
    finished_at: str | None = None


class ReleaseStatus(StatusModel):
    phase: ReleasePhase | None = None
    reason: str = ""
    message: str = ""
    observed_generation: int | None = None
    spec_hash: str | None = Field(
        default=None, description="What the release started with; a changed spec halts it"
    )
    current_wave: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    last_handled_request: str | None = None
    waves: list[WaveStatus] = Field(default_factory=list)
    clusters: list[ReleaseClusterStatus] = Field(default_factory=list)

    def cluster(self, name: str) -> ReleaseClusterStatus | None:
        return next((c for c in self.clusters if c.name == name), None)

    def wave(self, name: str) -> WaveStatus | None:
        return next((w for w in self.waves if w.name == name), None)
