"""Rollout.status: everything the controller knows about a rollout in flight.

Status is the controller's only memory. A controller killed at any instant and
restarted carries on from these fields alone, so every timer (step start, pause,
scale-down deadline) is stored as a timestamp here, never kept in process memory.
Lists are bounded: measurements per metric and history entries keep the newest. Text is
bounded too: every message is written cut to ``statusMessage`` characters (a measurement's
evidence to ``measurementMessage``) with a marker saying how much was cut, however long
the text a provider, a check or a policy produced (``controller.limits``).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, PlainSerializer

from controller.api.common import ApiModel
from controller.limits import MEASUREMENT_MESSAGE, truncate

# Status times are written and read by ``controller.times``; importable from here too.
from controller.times import parse_timestamp as parse_timestamp
from controller.times import timestamp as timestamp

MAX_MEASUREMENTS = 10
MAX_HISTORY = 20


class Phase(StrEnum):
    PROGRESSING = "Progressing"
    PAUSED = "Paused"
    HEALTHY = "Healthy"
    DEGRADED = "Degraded"
    ROLLED_BACK = "RolledBack"


Verdict = Literal["Successful", "Failed", "Inconclusive", "Error", "Running", "Pending"]

# Cut on the way out (``to_wire``): whatever produced the text, status stays small enough
# to be written (a status patch over the apiserver's size limit would fail every pass).
Message = Annotated[
    str, PlainSerializer(lambda text: truncate(str(text)), return_type=str, when_used="always")
]
Evidence = Annotated[
    str,
    PlainSerializer(
        lambda text: truncate(str(text), MEASUREMENT_MESSAGE.int),
        return_type=str,
        when_used="always",
    ),
]


class StatusModel(ApiModel):
    """Status is written by the controller; be lenient on read so upgrades never wedge."""

    model_config = ConfigDict(extra="ignore")

    def to_wire(self) -> dict[str, Any]:
        """What the controller writes: defaults left out, so status stays small.

        Also a workaround: the 1.20 apiserver's JSON merge patch turns an empty string
        into null, which the schema then rejects; an omitted field reads as its default.
        """
        return self.model_dump(mode="json", by_alias=True, exclude_none=True, exclude_defaults=True)


class Condition(StatusModel):
    """Kubernetes API conventions: PascalCase type, one-word CamelCase reason."""

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str = ""
    message: Message = ""
    last_transition_time: str | None = None
    observed_generation: int | None = None


class CompareEvidence(StatusModel):
    """What a comparison's verdict rests on (``controller.analysis.compare``), as
    numbers; a non-finite one (an effect from a 0 median) is left out."""

    against: Literal["baseline", "stable"] = "stable"
    canary_samples: int = 0
    comparison_samples: int = 0
    canary_median: float | None = None
    comparison_median: float | None = None
    effect: float | None = Field(
        default=None, description="(canary median - comparison median) / |comparison median|"
    )
    p_value: float | None = None
    shift: float | None = Field(
        default=None, description="Hodges-Lehmann estimate of canary minus comparison"
    )
    shift_low: float | None = None
    shift_high: float | None = None
    confidence: float | None = Field(default=None, description="Of the shift's interval")


class Measurement(StatusModel):
    value: str | None = Field(default=None, description="As measured; 'NaN'/'' when missing")
    phase: Verdict
    at: str
    message: Evidence = ""
    comparison: CompareEvidence | None = Field(
        default=None, description="A compare metric's evidence, as numbers"
    )


class MetricResult(StatusModel):
    name: str
    phase: Verdict = "Running"
    successful: int = 0
    failed: int = 0
    inconclusive: int = 0
    error: int = 0
    consecutive_error: int = 0
    unreachable_since: str | None = Field(
        default=None,
        description="With onProviderError: pause, when the provider stopped answering; "
        "the metric waits and measures again at its interval until it answers",
    )
    breach_since: str | None = Field(
        default=None, description="When the current threshold breach began (for `for`)"
    )
    query: str = ""
    job: str | None = Field(default=None, description="A job metric's Job now running")
    message: Message = ""
    measurements: Annotated[list[Measurement], Field(max_length=MAX_MEASUREMENTS)] = Field(
        default_factory=list
    )


class AnalysisRunStatus(StatusModel):
    """One run of a set of templates: a step's, the background's, pre/post-promotion's."""

    key: str = Field(
        description="e.g. 'step-2', 'gate-50', 'background', 'prePromotion', 'hook-preRollout'"
    )
    revision: str
    phase: Verdict = "Running"
    started_at: str
    metrics: list[MetricResult] = Field(default_factory=list)
    message: Message = ""
    score: float | None = Field(
        default=None, description="With a template's score: the compare metrics' score, 0-100"
    )
    extended: bool = Field(
        default=False,
        description="A marginal score extended the run once (its compare metrics measured "
        "again); a second marginal score pauses for a person",
    )


RevisionOutcome = Literal["Promoted", "RolledBack", "Aborted", "Superseded"]
"""How a revision's rollout ended; its history entry says "Progressing" until then."""


class HistoryEntry(StatusModel):
    revision: str
    images: dict[str, str] = Field(default_factory=dict)
    strategy: str = ""
    requested_by: Message = ""
    reason: Message = ""
    ci: dict[str, str] = Field(default_factory=dict)
    started_at: str | None = None
    finished_at: str | None = None
    outcome: Literal["Progressing", RevisionOutcome] = "Progressing"
    message: Message = ""
    events: list[Message] = Field(default_factory=list, description="Policy decisions, approvals")


class WorkloadStatus(StatusModel):
    """Where the take-over of a ``spec.workloadRef`` Deployment stands."""

    deployment: str
    replicas: int = Field(
        default=0, description="The Deployment's size when taken over, restored at hand-back"
    )
    phase: str = Field(
        default="TakingOver",
        description="TakingOver, TakenOver, LeftAlone (scaleDown never), HandingBack or HandedBack",
    )


class StatefulSetStatus(StatusModel):
    """A ``workloadRef`` StatefulSet as the last pass left it: its partition and which
    ordinals run which revision (its pods' ``controller-revision-hash``)."""

    name: str
    replicas: int = 0
    partition: int = 0
    ordinals: dict[str, list[int]] = Field(
        default_factory=dict, description="revision -> the ordinals whose pod runs it"
    )
    moving: str = Field(
        default="AtRest", description="AtRest, Canary (partition per step) or RollingBack"
    )
    waiting_for: int | None = Field(
        default=None, description="The ordinal the current move waits on to be Ready"
    )


class DaemonSetStatus(StatusModel):
    """A ``workloadRef`` DaemonSet as the last pass left it: which Nodes run which
    revision (their pod's ``controller-revision-hash``) and what the move waits on."""

    name: str
    nodes: dict[str, list[str]] = Field(
        default_factory=dict, description="revision -> the Nodes whose pod runs it"
    )
    moving: str = Field(default="AtRest", description="AtRest, Canary, Promoting or RollingBack")
    waiting_for: list[str] = Field(
        default_factory=list, description="The target Nodes not yet Ready on the wanted revision"
    )
    rolling_back: list[str] = Field(
        default_factory=list,
        description="Nodes whose pod a rollback has replaced (waited on until Ready again)",
    )
    replacing: list[str] = Field(
        default_factory=list,
        description="Nodes without a pod at the last pass (being replaced): still counted",
    )


class RolloutStatus(StatusModel):
    phase: Phase | None = None
    reason: str = ""
    message: Message = ""
    observed_generation: int | None = None
    current_step_index: int | None = None
    current_step_started_at: str | None = None
    stable_revision: str | None = None
    canary_revision: str | None = None
    weight: int = 0
    aborted: bool = False
    aborted_at: str | None = None
    revision_started_at: str | None = Field(
        default=None, description="When the current canary revision was first seen"
    )
    promoted_at: str | None = Field(
        default=None, description="Blue-green: when the active Service switched"
    )
    scale_down_at: str | None = Field(
        default=None, description="When the previous revision may be scaled down"
    )
    previous_revision: str | None = Field(
        default=None,
        description="The revision replaced by the last promotion, kept up until scaleDownAt",
    )
    replicas: int = 0
    selector: str | None = Field(
        default=None,
        description="spec.selector as a label selector string (the scale subresource's "
        "labelSelectorPath: an HPA finds the Rollout's pods by it)",
    )
    ready_replicas: int = 0
    available_replicas: int = 0
    updated_replicas: int = 0
    last_handled_request: str | None = None
    approved_by: str | None = None
    paused_at: str | None = Field(
        default=None,
        description="When spec.paused took effect; step timers resume from here on unpause",
    )
    held_since: str | None = Field(
        default=None,
        description="When a delivery policy or promotion gate began holding the new revision",
    )
    controller: str | None = Field(
        default=None,
        description="The controller replica (its Lease identity) that wrote this status: "
        "with several replicas sharing the Rollouts (--shards), who acted when",
    )
    workload: WorkloadStatus | None = Field(
        default=None, description="spec.workloadRef: the Deployment's take-over"
    )
    stateful_set: StatefulSetStatus | None = Field(
        default=None, description="spec.workloadRef: the StatefulSet's partition and ordinals"
    )
    daemon_set: DaemonSetStatus | None = Field(
        default=None, description="spec.workloadRef: the DaemonSet's Nodes per revision"
    )
    analysis_runs: list[AnalysisRunStatus] = Field(default_factory=list)
    conditions: list[Condition] = Field(default_factory=list)
    history: Annotated[list[HistoryEntry], Field(max_length=MAX_HISTORY)] = Field(
        default_factory=list
    )
