"""The Rollout resource: one per application, owning its workload and its strategy.

A change of ``spec.template`` is a new revision. The strategy is exactly one of
``canary``, ``blueGreen`` or ``rolling``; each keeps the vocabulary Argo Rollouts users
know (steps with setWeight/pause/analysis, stableService/canaryService,
activeService/previewService, autoPromotion*, scaleDownDelaySeconds,
maxSurge/maxUnavailable) so that a migration is mechanical.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import Field, Strict, field_validator, model_validator

from controller.api.common import (
    DNS_LABEL,
    ApiModel,
    Arg,
    IntOrPercent,
    ObjectMeta,
    ObjectName,
    OpenModel,
)
from controller.api.duration import Duration
from controller.api.status import RolloutStatus

MAX_STEPS = 100
MAX_REPLICAS = 10_000


class TemplateRef(ApiModel):
    name: ObjectName


class AnalysisRef(ApiModel):
    """Which AnalysisTemplates to run, with the arguments they take."""

    templates: Annotated[list[TemplateRef], Field(min_length=1, max_length=16)]
    args: list[Arg] = Field(default_factory=list, max_length=64)


class Pause(ApiModel):
    """Wait ``duration``; without one, wait for ``deployctl promote``."""

    duration: Duration | None = None


class ApprovalStep(ApiModel):
    """Wait until someone in one of ``groups`` runs ``deployctl approve``."""

    groups: list[Annotated[str, Field(min_length=1, max_length=253)]] = Field(
        default_factory=list, max_length=16
    )


class CanaryStep(ApiModel):
    """Exactly one of setWeight, pause, analysis, approval."""

    set_weight: Annotated[int, Field(ge=0, le=100)] | None = None
    pause: Pause | None = None
    analysis: AnalysisRef | None = None
    approval: ApprovalStep | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> CanaryStep:
        present = [
            alias
            for alias, value in (
                ("setWeight", self.set_weight),
                ("pause", self.pause),
                ("analysis", self.analysis),
                ("approval", self.approval),
            )
            if value is not None
        ]
        if len(present) != 1:
            raise ValueError(
                "a step takes exactly one of setWeight, pause, analysis, approval"
                + (f" (found {', '.join(present)})" if present else " (found none)")
            )
        return self

    @property
    def kind(self) -> Literal["setWeight", "pause", "analysis", "approval"]:
        if self.set_weight is not None:
            return "setWeight"
        if self.pause is not None:
            return "pause"
        if self.analysis is not None:
            return "analysis"
        return "approval"


class GatewayAPIRouting(ApiModel):
    """Shift traffic by the backendRef weights of a Gateway API HTTPRoute."""

    http_route: ObjectName


class TrafficRouting(ApiModel):
    gateway_api: GatewayAPIRouting = Field(alias="gatewayAPI")


class CanaryStrategy(ApiModel):
    stable_service: ObjectName | None = None
    canary_service: ObjectName | None = None
    traffic_routing: TrafficRouting | None = None
    steps: Annotated[list[CanaryStep], Field(max_length=MAX_STEPS)] = Field(default_factory=list)
    max_surge: IntOrPercent = "25%"
    max_unavailable: IntOrPercent = 0
    scale_down_delay_seconds: Annotated[int, Field(ge=0, le=86_400)] = 30
    dynamic_stable_scale: bool = Field(
        default=False,
        description="Scale stable down as canary grows (only with trafficRouting)",
    )

    @model_validator(mode="after")
    def _check(self) -> CanaryStrategy:
        last = 0
        for index, step in enumerate(self.steps):
            if step.set_weight is None:
                continue
            if step.set_weight < last:
                raise ValueError(
                    f"steps[{index}].setWeight {step.set_weight} is lower than the earlier "
                    f"weight {last}; weights must not decrease (use abort to go back)"
                )
            last = step.set_weight
        if self.traffic_routing is not None:
            missing = [
                name
                for name, value in (
                    ("stableService", self.stable_service),
                    ("canaryService", self.canary_service),
                )
                if value is None
            ]
            if missing:
                raise ValueError(
                    f"trafficRouting needs {' and '.join(missing)}: the HTTPRoute's "
                    "backendRefs point at those Services"
                )
        if self.dynamic_stable_scale and self.traffic_routing is None:
            raise ValueError("dynamicStableScale needs trafficRouting")
        if self.stable_service is not None and self.stable_service == self.canary_service:
            raise ValueError("stableService and canaryService must be different Services")
        return self


class BlueGreenStrategy(ApiModel):
    active_service: ObjectName
    preview_service: ObjectName | None = None
    auto_promotion_enabled: bool = True
    auto_promotion_seconds: Annotated[int, Field(ge=0, le=86_400)] | None = None
    pre_promotion_analysis: AnalysisRef | None = None
    post_promotion_analysis: AnalysisRef | None = None
    scale_down_delay_seconds: Annotated[int, Field(ge=0, le=86_400)] = 30
    preview_replica_count: Annotated[int, Field(ge=1, le=MAX_REPLICAS)] | None = None

    @model_validator(mode="after")
    def _check(self) -> BlueGreenStrategy:
        if self.preview_service is not None and self.preview_service == self.active_service:
            raise ValueError("activeService and previewService must be different Services")
        return self


class RollingGate(ApiModel):
    """Hold the rolling update at ``atPercent`` of new pods until the analysis passes."""

    at_percent: Annotated[int, Field(ge=1, le=100)]
    analysis: AnalysisRef


class RollingStrategy(ApiModel):
    max_surge: IntOrPercent = "25%"
    max_unavailable: IntOrPercent = "25%"
    gates: Annotated[list[RollingGate], Field(max_length=MAX_STEPS)] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> RollingStrategy:
        if _is_zero(self.max_surge) and _is_zero(self.max_unavailable):
            raise ValueError("maxSurge and maxUnavailable cannot both be 0: nothing could move")
        points = [gate.at_percent for gate in self.gates]
        if points != sorted(set(points)):
            raise ValueError("gates must have strictly increasing atPercent values")
        return self


def _is_zero(value: int | str) -> bool:
    return value in (0, "0%")


class Strategy(ApiModel):
    """Exactly one of canary, blueGreen, rolling."""

    canary: CanaryStrategy | None = None
    blue_green: BlueGreenStrategy | None = None
    rolling: RollingStrategy | None = None

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(set(data) - {"canary", "blueGreen", "blue_green", "rolling"})
            if unknown:
                raise ValueError(
                    f"unknown strategy {', '.join(map(repr, unknown))}; "
                    "allowed: canary, blueGreen, rolling"
                )
            present = [k for k in ("canary", "blueGreen", "blue_green", "rolling") if k in data]
            if len(present) > 1:
                raise ValueError(
                    "strategy takes exactly one of canary, blueGreen, rolling "
                    f"(found {' and '.join(present)})"
                )
        return data

    @model_validator(mode="after")
    def _exactly_one(self) -> Strategy:
        present = [
            name
            for name, value in (
                ("canary", self.canary),
                ("blueGreen", self.blue_green),
                ("rolling", self.rolling),
            )
            if value is not None
        ]
        if len(present) != 1:
            raise ValueError(
                "strategy takes exactly one of canary, blueGreen, rolling"
                + (f" (found {' and '.join(present)})" if present else " (found none)")
            )
        return self

    @property
    def name(self) -> Literal["canary", "blueGreen", "rolling"]:
        if self.canary is not None:
            return "canary"
        if self.blue_green is not None:
            return "blueGreen"
        return "rolling"

    @property
    def service_names(self) -> list[str]:
        """Every Service the strategy names, in spec order: stable and canary, or active
        and preview (rolling names none)."""
        if self.canary is not None:
            names = [self.canary.stable_service, self.canary.canary_service]
        elif self.blue_green is not None:
            names = [self.blue_green.active_service, self.blue_green.preview_service]
        else:
            names = []
        return [str(n) for n in names if n]


class LabelSelector(ApiModel):
    match_labels: dict[str, str] = Field(default_factory=dict)


class Container(OpenModel):
    """A container; only name and image matter to deployctl, the rest is passed through."""

    name: ObjectName
    image: Annotated[str, Field(min_length=1, max_length=1024)]


class PodSpec(OpenModel):
    containers: Annotated[list[Container], Field(min_length=1)]


class PodTemplateMeta(OpenModel):
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class PodTemplateSpec(ApiModel):
    """As in a Deployment. Fields beyond containers' name/image are kept as given."""

    metadata: PodTemplateMeta = Field(default_factory=PodTemplateMeta)
    spec: PodSpec


class JobSpec(OpenModel):
    """A batch/v1 JobSpec; fields beyond these are passed to the Job as given.

    ``backoffLimit`` defaults to 0 (a check that fails once has failed) and
    ``activeDeadlineSeconds`` to 600, so a hung check fails instead of stalling the
    rollout. A container's ``terminationMessagePolicy`` defaults to
    ``FallbackToLogsOnError``: the tail of a failed check's log becomes the evidence.
    """

    template: PodTemplateSpec
    backoff_limit: Annotated[int, Field(ge=0, le=100)] = 0
    active_deadline_seconds: Annotated[int, Field(ge=1, le=86_400)] = 600

    @model_validator(mode="after")
    def _restart_policy(self) -> JobSpec:
        policy = (self.template.spec.model_extra or {}).get("restartPolicy", "Never")
        if policy not in ("Never", "OnFailure"):
            raise ValueError(
                f"template.spec.restartPolicy must be Never or OnFailure, not {policy!r}"
            )
        return self


class JobProvider(ApiModel):
    """A Kubernetes Job is the measurement: Successful when it succeeds, Failed when it
    fails or passes its deadline (as Argo Rollouts' job provider)."""

    metadata: PodTemplateMeta = Field(default_factory=PodTemplateMeta)
    spec: JobSpec


class Hook(ApiModel):
    """A Job the rollout runs at a point of the release workflow."""

    name: ObjectName
    job: JobProvider


class Hooks(ApiModel):
    """The release workflow's own steps, run as Jobs owned by the Rollout.

    - ``preRollout``: before any pod of a new revision starts (a database migration);
      failure stops the rollout with the Job's evidence, the running version untouched.
    - ``postPromotion``: once the new revision takes all the traffic it will get before
      becoming stable (a production smoke test); failure rolls back: blue-green switches
      the active Service back, canary and rolling abort to the stable revision.
    - ``onAbort``: once each time the rollout is aborted (a migration's rollback script).
    """

    pre_rollout: Annotated[list[Hook], Field(max_length=8)] = Field(default_factory=list)
    post_promotion: Annotated[list[Hook], Field(max_length=8)] = Field(default_factory=list)
    on_abort: Annotated[list[Hook], Field(max_length=8)] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> Hooks:
        for kind, hooks in (
            ("preRollout", self.pre_rollout),
            ("postPromotion", self.post_promotion),
            ("onAbort", self.on_abort),
        ):
            names = [h.name for h in hooks]
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"{kind} hook names must be unique; repeated: {', '.join(dupes)}")
        return self


class PromotionGate(ApiModel):
    """Start a new revision only once the same images were promoted by another Rollout."""

    rollout: Annotated[
        str,
        Field(
            min_length=3,
            max_length=127,
            pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?/[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
            description="namespace/name of the Rollout that must have promoted the images",
        ),
    ]

    @field_validator("rollout", mode="before")
    @classmethod
    def _namespace_slash_name(cls, value: object) -> object:
        namespace, slash, name = str(value).partition("/")
        if not (slash and re.match(DNS_LABEL, namespace) and re.match(DNS_LABEL, name)):
            raise ValueError(
                f"requires.rollout {value!r} must be namespace/name, e.g. staging/checkout"
            )
        return value

    @property
    def namespace(self) -> str:
        return self.rollout.partition("/")[0]

    @property
    def name(self) -> str:
        return self.rollout.partition("/")[2]


class RolloutSpec(ApiModel):
    # Strict, as the apiserver's schema: a quoted "3" in YAML is a mistake, not 3.
    replicas: Annotated[int, Strict(), Field(ge=0, le=MAX_REPLICAS)] = 1
    selector: LabelSelector
    template: PodTemplateSpec
    strategy: Strategy
    analysis: AnalysisRef | None = Field(
        default=None, description="Background analysis for the whole rollout"
    )
    progress_deadline_seconds: Annotated[int, Strict(), Field(ge=1, le=86_400)] = 600
    min_ready_seconds: Annotated[int, Strict(), Field(ge=0, le=86_400)] = Field(
        default=0,
        description="A Ready pod counts as available once it has been Ready this long "
        "(as a Deployment's minReadySeconds)",
    )
    paused: bool = False
    revision_history_limit: Annotated[int, Field(ge=0, le=100)] = 10
    requires: PromotionGate | None = Field(
        default=None, description="Promotion gate: e.g. {rollout: staging/checkout}"
    )
    hooks: Hooks | None = Field(
        default=None, description="Jobs run before a rollout, after promotion, on abort"
    )

    @model_validator(mode="after")
    def _selector_matches(self) -> RolloutSpec:
        if not self.selector.match_labels:
            raise ValueError("selector.matchLabels must name at least one label")
        labels = self.template.metadata.labels
        wrong = {k: v for k, v in self.selector.match_labels.items() if labels.get(k) != v}
        if wrong:
            raise ValueError(
                "selector.matchLabels must match template.metadata.labels; not matched: "
                + ", ".join(f"{k}={v}" for k, v in sorted(wrong.items()))
            )
        names = [c.name for c in self.template.spec.containers]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"container names must be unique; repeated: {', '.join(dupes)}")
        return self

    def analysis_refs(self) -> list[AnalysisRef]:
        """Every AnalysisRef the spec names, for reference checks."""
        refs: list[AnalysisRef] = [self.analysis] if self.analysis else []
        if self.strategy.canary is not None:
            refs += [s.analysis for s in self.strategy.canary.steps if s.analysis is not None]
        if self.strategy.blue_green is not None:
            bg = self.strategy.blue_green
            refs += [r for r in (bg.pre_promotion_analysis, bg.post_promotion_analysis) if r]
        if self.strategy.rolling is not None:
            refs += [g.analysis for g in self.strategy.rolling.gates]
        return refs


class Rollout(ApiModel):
    api_version: Literal["deployctl.io/v1alpha1"] = "deployctl.io/v1alpha1"
    kind: Literal["Rollout"] = "Rollout"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: RolloutSpec
    status: RolloutStatus | None = None
