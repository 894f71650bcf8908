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
    CelRule,
    IntOrPercent,
    ObjectMeta,
    ObjectName,
    OpenModel,
    cel,
    exactly_one,
    is_dns_subdomain,
)
from controller.api.duration import Duration
from controller.api.status import RolloutStatus
from controller.api.workload_rules import DAEMONSET, STATEFULSET, strategy_problem

MAX_STEPS = 100
MAX_REPLICAS = 10_000


class TemplateRef(ApiModel):
    name: ObjectName


class AnalysisRef(ApiModel):
    """Which AnalysisTemplates to run, with the arguments they take."""

    templates: Annotated[list[TemplateRef], Field(min_length=1, max_length=16)]
    args: list[Arg] = Field(default_factory=list, max_length=64)

    @model_validator(mode="after")
    def _no_secrets(self) -> AnalysisRef:
        for arg in self.args:
            if arg.value_from is not None and arg.value_from.secret_key_ref is not None:
                raise ValueError(
                    f"arg {arg.name}: a Rollout's args cannot read Secrets; declare the arg "
                    "with valueFrom.secretKeyRef in the AnalysisTemplate"
                )
        return self


class Pacing(ApiModel):
    """How a step is paced by the canary's traffic: ``untilRequests`` served since the
    step began (measured from Prometheus, ``strategies.pacing``), pausing for a person
    once ``maxDuration`` has passed without them. Shared by pause and analysis steps."""

    until_requests: Annotated[int, Field(ge=1, le=1_000_000_000)] | None = Field(
        default=None,
        description="Wait until the canary served this many requests since the step began",
    )
    max_duration: Duration | None = Field(
        default=None,
        description="With untilRequests: how long to wait for them before pausing for a person",
    )
    no_traffic_after: Duration = Field(
        default=300.0,
        description="With untilRequests: say so in status when the canary served nothing "
        "for this long",
    )
    requests_metric: Annotated[str, Field(pattern=r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")] = (
        "http_requests_total"
    )
    revision_label: Annotated[str, Field(pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$")] = "revision"
    namespace_label: Annotated[str, Field(pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$")] = "namespace"

    def _check_pacing(self, step: str) -> None:
        if self.max_duration is not None and self.until_requests is None:
            raise ValueError(f"{step}: maxDuration is for untilRequests")
        if self.no_traffic_after < 30:
            # Shorter than two scrapes of a usual Prometheus, the count says nothing.
            raise ValueError(
                f"{step}: noTrafficAfter must be at least 30s (got {self.no_traffic_after:g}s)"
            )


class Pause(Pacing):
    """Wait ``duration``; without one, wait for ``deployctl promote``.

    With ``untilRequests`` the step waits until the canary has served that many requests
    since the step began (``Pacing``)."""

    duration: Duration | None = None

    @model_validator(mode="after")
    def _paced(self) -> Pause:
        if self.until_requests is not None and self.duration is not None:
            raise ValueError("pause: set either duration or untilRequests (with maxDuration)")
        if self.max_duration is not None and self.until_requests is None:
            raise ValueError("pause: maxDuration is for untilRequests; use duration")
        self._check_pacing("pause")
        return self


class AnalysisStep(AnalysisRef, Pacing):
    """A canary step's analysis. With ``untilRequests`` the step is done only once the
    run passed *and* the canary served that many requests since the step began
    (``Pacing``): a canary that saw no traffic is never promoted on a passing run."""

    @model_validator(mode="after")
    def _paced(self) -> AnalysisStep:
        self._check_pacing("analysis")
        return self


class ApprovalStep(ApiModel):
    """Wait until someone in one of ``groups`` runs ``deployctl approve``."""

    groups: list[Annotated[str, Field(min_length=1, max_length=253)]] = Field(
        default_factory=list, max_length=16
    )


class StringMatch(ApiModel):
    """How a request's method, path or header value is compared: exactly one of
    ``exact``, ``prefix`` or ``regex`` (Argo Rollouts' StringMatch)."""

    exact: Annotated[str, Field(min_length=1, max_length=1024)] | None = None
    prefix: Annotated[str, Field(min_length=1, max_length=1024)] | None = None
    regex: Annotated[str, Field(min_length=1, max_length=1024)] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> StringMatch:
        present = [
            name
            for name, value in (
                ("exact", self.exact),
                ("prefix", self.prefix),
                ("regex", self.regex),
            )
            if value is not None
        ]
        if len(present) != 1:
            raise ValueError(
                "a match takes exactly one of exact, prefix, regex"
                + (f" (found {', '.join(present)})" if present else " (found none)")
            )
        if self.regex is not None:
            try:
                re.compile(self.regex)
            except re.error as exc:
                raise ValueError(
                    f"regex {self.regex!r} is not a regular expression: {exc}"
                ) from exc
        return self


# An HTTP header name (RFC 9110 token characters).
HeaderName = Annotated[
    str, Field(min_length=1, max_length=256, pattern=r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
]
# A managed route's name: it names an Istio http route or a Gateway API rule too.
RouteName = Annotated[str, Field(min_length=1, max_length=63, pattern=DNS_LABEL)]


class HeaderRoutingMatch(ApiModel):
    """Requests whose header ``headerName`` matches ``headerValue``."""

    header_name: HeaderName
    header_value: StringMatch


class SetHeaderRoute(ApiModel):
    """Send every request matching one of ``match`` to the canary, whatever the weight;
    without ``match``, remove the route of that name."""

    name: RouteName
    match: Annotated[list[HeaderRoutingMatch], Field(max_length=16)] = Field(default_factory=list)


class RouteMatch(ApiModel):
    """Requests matching every condition given (method, path and each header)."""

    method: StringMatch | None = None
    path: StringMatch | None = None
    headers: Annotated[dict[HeaderName, StringMatch], Field(max_length=16)] = Field(
        default_factory=dict
    )


class SetMirrorRoute(ApiModel):
    """Copy ``percentage`` of the requests matching one of ``match`` to the canary (its
    answers are dropped; the request is served as before); without ``match``, remove
    the route of that name."""

    name: RouteName
    match: Annotated[list[RouteMatch], Field(max_length=16)] = Field(default_factory=list)
    percentage: Annotated[int, Field(ge=0, le=100)] | None = None


class CanaryStep(ApiModel):
    """Exactly one of setWeight, pause, analysis, approval, setHeaderRoute, setMirrorRoute."""

    model_config = cel(
        exactly_one(
            ("setWeight", "pause", "analysis", "approval", "setHeaderRoute", "setMirrorRoute"),
            "a step takes exactly one of setWeight, pause, analysis, approval, "
            "setHeaderRoute, setMirrorRoute",
        )
    )

    set_weight: Annotated[int, Field(ge=0, le=100)] | None = None
    pause: Pause | None = None
    analysis: AnalysisStep | None = None
    approval: ApprovalStep | None = None
    set_header_route: SetHeaderRoute | None = None
    set_mirror_route: SetMirrorRoute | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> CanaryStep:
        present = [
            alias
            for alias, value in (
                ("setWeight", self.set_weight),
                ("pause", self.pause),
                ("analysis", self.analysis),
                ("approval", self.approval),
                ("setHeaderRoute", self.set_header_route),
                ("setMirrorRoute", self.set_mirror_route),
            )
            if value is not None
        ]
        if len(present) != 1:
            raise ValueError(
                "a step takes exactly one of setWeight, pause, analysis, approval, "
                "setHeaderRoute, setMirrorRoute"
                + (f" (found {', '.join(present)})" if present else " (found none)")
            )
        return self

    @property
    def kind(
        self,
    ) -> Literal["setWeight", "pause", "analysis", "approval", "setHeaderRoute", "setMirrorRoute"]:
        if self.set_weight is not None:
            return "setWeight"
        if self.pause is not None:
            return "pause"
        if self.analysis is not None:
            return "analysis"
        if self.set_header_route is not None:
            return "setHeaderRoute"
        if self.set_mirror_route is not None:
            return "setMirrorRoute"
        return "approval"

    @property
    def managed_route(self) -> SetHeaderRoute | SetMirrorRoute | None:
        """The header or mirror route this step sets (or removes), if it is such a step."""
        return self.set_header_route or self.set_mirror_route


class GatewayAPIRouting(ApiModel):
    """Shift traffic by the backendRef weights of a Gateway API HTTPRoute."""

    http_route: ObjectName


class IstioVirtualService(ApiModel):
    """A VirtualService whose http routes carry the stable and canary destinations."""

    name: ObjectName
    routes: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=253)]], Field(max_length=16)
    ] = Field(
        default_factory=list,
        description="The http routes (by name) to set weights on; may be left out when "
        "the VirtualService has a single http route",
    )


class IstioDestinationRule(ApiModel):
    """Split by subsets: the controller writes the revision label into the subsets."""

    name: ObjectName
    canary_subset_name: RouteName
    stable_subset_name: RouteName

    @model_validator(mode="after")
    def _check(self) -> IstioDestinationRule:
        if self.canary_subset_name == self.stable_subset_name:
            raise ValueError("canarySubsetName and stableSubsetName must be different subsets")
        return self


class IstioRouting(ApiModel):
    """Shift traffic by an Istio VirtualService's route weights: between the stable and
    canary Services (host-level), or between two subsets of a DestinationRule."""

    virtual_service: IstioVirtualService | None = None
    virtual_services: Annotated[list[IstioVirtualService], Field(max_length=8)] | None = None
    destination_rule: IstioDestinationRule | None = None

    @model_validator(mode="after")
    def _check(self) -> IstioRouting:
        if (self.virtual_service is None) == (self.virtual_services is None):
            raise ValueError("istio takes exactly one of virtualService, virtualServices")
        if self.virtual_services is not None and not self.virtual_services:
            raise ValueError("virtualServices needs at least one VirtualService")
        names = [vs.name for vs in self.all_virtual_services]
        if len(set(names)) != len(names):
            raise ValueError("virtualServices names a VirtualService twice")
        return self

    @property
    def all_virtual_services(self) -> list[IstioVirtualService]:
        if self.virtual_service is not None:
            return [self.virtual_service]
        return list(self.virtual_services or [])


NGINX_PREFIX = "nginx.ingress.kubernetes.io"


class NginxRouting(ApiModel):
    """Shift traffic with a canary Ingress the controller clones from the stable one and
    annotates (``canary: "true"``, ``canary-weight``) for the NGINX Ingress controller."""

    stable_ingress: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    stable_ingresses: (
        Annotated[list[Annotated[str, Field(min_length=1, max_length=200)]], Field(max_length=8)]
        | None
    ) = None
    annotation_prefix: Annotated[str, Field(min_length=1, max_length=200)] = NGINX_PREFIX
    additional_ingress_annotations: Annotated[dict[str, str], Field(max_length=32)] = Field(
        default_factory=dict,
        description="Annotations for the canary Ingress, prefixed with annotationPrefix "
        "(e.g. canary-by-header: X-Canary)",
    )
    canary_ingress_annotations: Annotated[dict[str, str], Field(max_length=32)] = Field(
        default_factory=dict, description="Annotations for the canary Ingress, as written"
    )

    @model_validator(mode="after")
    def _check(self) -> NginxRouting:
        if (self.stable_ingress is None) == (self.stable_ingresses is None):
            raise ValueError("nginx takes exactly one of stableIngress, stableIngresses")
        names = self.ingresses
        if not names:
            raise ValueError("stableIngresses needs at least one Ingress")
        if len(set(names)) != len(names):
            raise ValueError("stableIngresses names an Ingress twice")
        for name in names:
            if not is_dns_subdomain(name):
                raise ValueError(f"Ingress name {name!r} is not a valid object name")
        return self

    @property
    def ingresses(self) -> list[str]:
        if self.stable_ingress is not None:
            return [self.stable_ingress]
        return list(self.stable_ingresses or [])


class ManagedRoute(ApiModel):
    name: RouteName


class TrafficRouting(ApiModel):
    """Exactly one router (gatewayAPI, istio, nginx), and the header and mirror routes
    (``managedRoutes``) that setHeaderRoute / setMirrorRoute steps may set, in order of
    precedence."""

    gateway_api: GatewayAPIRouting | None = Field(default=None, alias="gatewayAPI")
    istio: IstioRouting | None = None
    nginx: NginxRouting | None = None
    managed_routes: Annotated[list[ManagedRoute], Field(max_length=16)] = Field(
        default_factory=list
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> TrafficRouting:
        present = [
            name
            for name, value in (
                ("gatewayAPI", self.gateway_api),
                ("istio", self.istio),
                ("nginx", self.nginx),
            )
            if value is not None
        ]
        if len(present) != 1:
            raise ValueError(
                "trafficRouting takes exactly one of gatewayAPI, istio, nginx"
                + (f" (found {' and '.join(present)})" if present else " (found none)")
            )
        names = [route.name for route in self.managed_routes]
        if len(set(names)) != len(names):
            raise ValueError("managedRoutes names a route twice")
        return self

    @property
    def router(self) -> Literal["gatewayAPI", "istio", "nginx"]:
        if self.gateway_api is not None:
            return "gatewayAPI"
        if self.istio is not None:
            return "istio"
        return "nginx"

    @property
    def by_subsets(self) -> bool:
        """Istio split between DestinationRule subsets rather than two Services."""
        return self.istio is not None and self.istio.destination_rule is not None


class Baseline(ApiModel):
    """Fresh pods of the stable revision started beside the canary, as many as it has,
    so a comparison (``compare.against: baseline``) judges two revisions of the same age
    under the same share of traffic (``strategies.baseline``)."""

    enabled: bool = Field(
        default=False,
        description="Start baseline pods (the stable revision, labelled "
        "deployctl.io/role=baseline) beside the canary; removed at promotion or abort",
    )


class CanaryStrategy(ApiModel):
    """Steps of setWeight / pause / analysis / approval, then promotion.

    Without ``trafficRouting`` a weight is a share of the pods (``setWeight: 10`` on 10
    replicas: 1 canary and 9 stable pods), moved within ``maxSurge`` / ``maxUnavailable``
    (Argo Rollouts' defaults, 25% each); ``stableScale: full`` keeps the stable at full
    size and adds the canary's pods on top instead.
    """

    model_config = cel(
        CelRule(
            "!has(self.steps) || self.steps.map(s, has(s.setWeight), s.setWeight).isSorted()",
            "setWeight must not decrease from one step to the next (use abort to go back)",
            field_path=".steps",
        ),
        CelRule(
            "!has(self.trafficRouting) || (has(self.stableService) && has(self.canaryService))"
            " || (has(self.trafficRouting.istio)"
            " && has(self.trafficRouting.istio.destinationRule))",
            "trafficRouting needs stableService and canaryService (the router's backends), "
            "unless Istio splits by DestinationRule subsets",
        ),
        CelRule(
            "!has(self.dynamicStableScale) || !self.dynamicStableScale || has(self.trafficRouting)",
            "dynamicStableScale needs trafficRouting",
            field_path=".dynamicStableScale",
        ),
        CelRule(
            "!has(self.stableService) || !has(self.canaryService)"
            " || self.stableService != self.canaryService",
            "stableService and canaryService must be different Services",
            field_path=".canaryService",
        ),
        CelRule(
            "!has(self.baseline) || !has(self.baseline.enabled) || !self.baseline.enabled"
            " || has(self.trafficRouting) || !has(self.stableScale)"
            " || self.stableScale == 'share'",
            "baseline pods are built for a canary by replica share (stableScale: share) "
            "or behind a router that can carry a third backend",
            field_path=".baseline",
        ),
        CelRule(
            "!has(self.baseline) || !has(self.baseline.enabled) || !self.baseline.enabled"
            " || !has(self.trafficRouting) || (!has(self.trafficRouting.nginx)"
            " && !(has(self.trafficRouting.istio)"
            " && has(self.trafficRouting.istio.destinationRule)))",
            "baseline needs a router that can carry a third backend: nginx and istio with "
            "destinationRule subsets cannot (use gatewayAPI, or istio between "
            "stableService and canaryService)",
            field_path=".baseline",
        ),
        CelRule(
            "!has(self.baseline) || !has(self.baseline.enabled) || !self.baseline.enabled"
            " || !has(self.dynamicStableScale) || !self.dynamicStableScale",
            "baseline and dynamicStableScale cannot be combined: the stable would be "
            "scaled for the canary's share alone",
            field_path=".baseline",
        ),
    )

    stable_service: ObjectName | None = None
    canary_service: ObjectName | None = None
    traffic_routing: TrafficRouting | None = None
    steps: Annotated[list[CanaryStep], Field(max_length=MAX_STEPS)] = Field(default_factory=list)
    max_surge: IntOrPercent = Field(
        default="25%",
        description="Pods above replicas while a replica-share canary moves (int or percent)",
    )
    max_unavailable: IntOrPercent = Field(
        default="25%",
        description="Available pods below replicas while a replica-share canary moves "
        "(a DaemonSet canary: pods unavailable at a time over its Nodes, default 1)",
    )
    canary_node_selector: dict[str, str] | None = Field(
        default=None,
        description="A DaemonSet canary: the Nodes with these labels receive the new "
        "revision first (e.g. one zone), then the others, each group by name",
    )
    stable_scale: Literal["share", "full"] = Field(
        default="share",
        description="Without trafficRouting: 'share' (stable = replicas - canary, so the "
        "weight is the canary's share of the pods) or 'full' (stable keeps all replicas, "
        "the canary is added on top)",
    )
    scale_down_delay_seconds: Annotated[int, Field(ge=0, le=86_400)] = 30
    dynamic_stable_scale: bool = Field(
        default=False,
        description="Scale stable down as canary grows (only with trafficRouting)",
    )
    baseline: Baseline | None = None

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
            self._check_routing(self.traffic_routing)
        for index, step in enumerate(self.steps):
            if step.managed_route is not None:
                self._check_managed_step(index, step)
        if self.dynamic_stable_scale and self.traffic_routing is None:
            raise ValueError("dynamicStableScale needs trafficRouting")
        if self.stable_scale == "full" and self.traffic_routing is not None:
            raise ValueError(
                "stableScale: full applies to canaries without trafficRouting; with "
                "trafficRouting the stable keeps all its pods unless dynamicStableScale"
            )
        if _is_zero(self.max_surge) and _is_zero(self.max_unavailable):
            raise ValueError("maxSurge and maxUnavailable cannot both be 0: nothing could move")
        if self.baseline_enabled:
            self._check_baseline()
        if self.stable_service is not None and self.stable_service == self.canary_service:
            raise ValueError("stableService and canaryService must be different Services")
        return self

    @property
    def baseline_enabled(self) -> bool:
        return self.baseline is not None and self.baseline.enabled

    def _check_baseline(self) -> None:
        """Baseline pods need a third backend: a share of the pods without a router, or
        a router that can name a third Service (Gateway API, Istio host-level)."""
        routing = self.traffic_routing
        if routing is None:
            if self.stable_scale != "share":
                raise ValueError(
                    "baseline: baseline pods are built for a canary by replica share "
                    "(stableScale: share) or behind a router that can carry a third "
                    "backend (gatewayAPI, istio host-level)"
                )
            return
        if routing.nginx is not None:
            raise ValueError(
                "baseline needs a router that can carry a third backend: nginx cannot "
                "(its canary Ingress holds one Service); use gatewayAPI, or istio "
                "between stableService and canaryService"
            )
        if routing.by_subsets:
            raise ValueError(
                "baseline needs a router that can carry a third backend: istio with "
                "destinationRule subsets cannot (there is no baseline subset); route "
                "between stableService and canaryService instead"
            )
        if self.dynamic_stable_scale:
            raise ValueError(
                "baseline and dynamicStableScale cannot be combined: the stable would be "
                "scaled for the canary's share alone"
            )

    def _check_routing(self, routing: TrafficRouting) -> None:
        missing = [
            name
            for name, value in (
                ("stableService", self.stable_service),
                ("canaryService", self.canary_service),
            )
            if value is None
        ]
        if routing.by_subsets:
            # One Service in front of both revisions; the subsets tell them apart.
            return
        if missing:
            what = {
                "gatewayAPI": "the HTTPRoute's backendRefs",
                "istio": "the VirtualService's destination hosts (or use destinationRule subsets)",
                "nginx": "the stable Ingress's backend and the canary Ingress's",
            }[routing.router]
            raise ValueError(
                f"trafficRouting needs {' and '.join(missing)}: {what} point at those Services"
            )

    def _check_managed_step(self, index: int, step: CanaryStep) -> None:
        route = step.managed_route
        assert route is not None
        where = f"steps[{index}].{step.kind}"
        routing = self.traffic_routing
        if routing is None:
            raise ValueError(f"{where} needs trafficRouting (a router to set the route on)")
        if route.name not in {r.name for r in routing.managed_routes}:
            raise ValueError(
                f"{where} names route {route.name!r}, which is not listed in "
                "trafficRouting.managedRoutes (list every route the steps set, in order of "
                "precedence)"
            )
        if routing.router == "nginx":
            if isinstance(route, SetMirrorRoute):
                raise ValueError(
                    f"{where}: the NGINX Ingress canary cannot mirror traffic; use gatewayAPI "
                    "or istio for setMirrorRoute"
                )
            if len(route.match) > 1 or len(routing.managed_routes) > 1:
                raise ValueError(
                    f"{where}: the NGINX Ingress canary matches one header "
                    "(canary-by-header), so one managed route with one match at most"
                )
        if routing.router == "gatewayAPI" and isinstance(route, SetMirrorRoute):
            for match in route.match:
                if match.method is not None and match.method.exact is None:
                    raise ValueError(
                        f"{where}: Gateway API matches an HTTP method exactly; use method.exact"
                    )


class BlueGreenStrategy(ApiModel):
    model_config = cel(
        CelRule(
            "!has(self.previewService) || self.previewService != self.activeService",
            "activeService and previewService must be different Services",
            field_path=".previewService",
        )
    )

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
    model_config = cel(
        CelRule(
            "!has(self.maxSurge) || !has(self.maxUnavailable)"
            " || !(string(self.maxSurge) in ['0', '0%'])"
            " || !(string(self.maxUnavailable) in ['0', '0%'])",
            "maxSurge and maxUnavailable cannot both be 0: nothing could move",
        ),
        CelRule(
            "!has(self.gates) || (self.gates.map(g, g.atPercent).isSorted()"
            " && self.gates.all(g, self.gates.exists_one(h, h.atPercent == g.atPercent)))",
            "gates must have strictly increasing atPercent values",
            field_path=".gates",
        ),
    )

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

    model_config = cel(
        exactly_one(
            ("canary", "blueGreen", "rolling"),
            "strategy takes exactly one of canary, blueGreen, rolling",
        )
    )

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


class WorkloadRef(ApiModel):
    """The Deployment, StatefulSet or DaemonSet whose pod template (and selector) the
    Rollout delivers.

    A StatefulSet is moved by its own partition (docs/stateful-workloads.md): the canary
    is its highest ordinals, and ``scaleDown`` does not apply. A DaemonSet is moved Node
    by Node under ``OnDelete`` (the canary's ``canaryNodeSelector`` Nodes first).

    The Deployment stays what Helm or GitOps edits: a change of its template is a new
    revision of the Rollout. ``scaleDown`` says what becomes of the Deployment's own pods
    once the Rollout runs the workload (docs/workloads.md): ``never`` leaves it as it is,
    ``onsuccess`` scales it to 0 once the Rollout's stable revision is fully available,
    ``progressively`` scales it down as the Rollout's pods become available.
    """

    api_version: Literal["apps/v1"] = "apps/v1"
    kind: Literal["Deployment", "StatefulSet", "DaemonSet"] = "Deployment"
    name: ObjectName
    scale_down: Literal["never", "onsuccess", "progressively"] = "never"


class RolloutSpec(ApiModel):
    model_config = cel(
        CelRule(
            "has(self.template) != has(self.workloadRef)",
            "spec takes exactly one of template, workloadRef (the Deployment whose pod "
            "template the Rollout delivers)",
        ),
        CelRule(
            "!has(self.template) || has(self.selector)",
            "spec.template needs spec.selector (with workloadRef the Deployment's is used)",
        ),
    )

    # Strict, as the apiserver's schema: a quoted "3" in YAML is a mistake, not 3.
    replicas: Annotated[int, Strict(), Field(ge=0, le=MAX_REPLICAS)] = 1
    selector: LabelSelector | None = Field(
        default=None, description="Required with template; with workloadRef, the Deployment's"
    )
    template: PodTemplateSpec | None = Field(
        default=None,
        description="The pod template; exactly one of template and workloadRef "
        "(with workloadRef the controller reads it from the Deployment)",
    )
    workload_ref: WorkloadRef | None = Field(
        default=None,
        description="A Deployment, StatefulSet or DaemonSet whose pod template and selector "
        "the Rollout "
        "delivers, "
        "instead of template",
    )
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
        if (self.template is None) == (self.workload_ref is None):
            raise ValueError(
                "takes exactly one of template, workloadRef (the Deployment whose pod "
                "template the Rollout delivers)"
                + (" (found both)" if self.template is not None else " (found neither)")
            )
        if self.template is None:
            self._workload_strategy()
            return self  # the Deployment's template and selector are checked when read
        if self.selector is None:
            raise ValueError(
                "selector is required with template (with workloadRef the Deployment's is used)"
            )
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

    def _workload_strategy(self) -> None:
        """A StatefulSet (by its partition) or a DaemonSet (Node by Node) is delivered as a
        canary, nothing else; only a DaemonSet canary chooses Nodes."""
        ref = self.workload_ref
        canary = self.strategy.canary
        if (
            canary is not None
            and canary.canary_node_selector
            and (ref is None or ref.kind != DAEMONSET)
        ):
            raise ValueError(
                "strategy.canary.canaryNodeSelector chooses the Nodes of a DaemonSet canary; "
                "it needs workloadRef kind DaemonSet"
            )
        if ref is None or ref.kind not in (STATEFULSET, DAEMONSET):
            return
        how = (
            "its partition moves the highest ordinals first"
            if ref.kind == STATEFULSET
            else "its pods are replaced Node by Node under OnDelete"
        )
        if self.strategy.blue_green is not None:
            raise ValueError(f"workloadRef {ref.name}: {strategy_problem(ref.kind, 'blueGreen')}")
        if self.strategy.rolling is not None:
            raise ValueError(
                f"workloadRef {ref.name}: a {ref.kind} is delivered with spec.strategy.canary "
                f"({how}); rolling makes ReplicaSets, which a {ref.kind}'s pods never "
                "belong to"
            )
        if canary is not None and (
            canary.traffic_routing is not None or canary.canary_service or canary.stable_service
        ):
            whom = "every ordinal" if ref.kind == STATEFULSET else "the pods of every Node"
            raise ValueError(
                f"workloadRef {ref.name}: a {ref.kind} canary takes no trafficRouting, "
                f"canaryService or stableService: its Service selects {whom}, so the "
                "canary's share of requests is its share of Ready pods"
            )

    @property
    def pod_template(self) -> PodTemplateSpec:
        """The pod template: the spec's own, or the Deployment's once the controller
        has read it (``controller.workload.resolve`` fills ``template`` in a copy, never
        in a document as written: there, template and workloadRef exclude each other)."""
        if self.template is None:
            raise ValueError("the workloadRef's Deployment has not been read yet")
        return self.template

    @property
    def pod_selector(self) -> LabelSelector:
        """The selector: the spec's own, or the Deployment's once resolved."""
        if self.selector is None:
            raise ValueError("the workloadRef's Deployment has not been read yet")
        return self.selector

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
