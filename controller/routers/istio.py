"""The Istio router: VirtualService route weights, header and mirror routes, and the
revision label of DestinationRule subsets.

Two ways to split, as in Argo Rollouts:

- **host-level**: the VirtualService's route has a destination whose ``host`` is the
  stable Service and one whose host is the canary Service; the reconciler points the
  Services' selectors at the revisions and this router sets the two weights;
- **subset-level** (``destinationRule``): both destinations name one host (a Service in
  front of every revision) and the stable and canary ``subset``; this router writes
  ``deployctl.io/revision: <hash>`` into those subsets' labels and sets the weights.

Header and mirror routes in force are http routes named after the managed route, put
first (Istio takes the first http route that matches) in ``managedRoutes`` order; a
header route sends to the canary destination alone, a mirror route keeps the weighted
destinations and mirrors ``mirrorPercentage`` of the matching requests to the canary.
Managed routes no longer in force are removed.

With baseline pods (host-level only) a third destination, a copy of the canary's whose
host is the baseline Service, gets the canary's weight (``baseline_split``) and is
removed once the target has no baseline. Subset-level splitting has no baseline subset:
the Rollout's validation refuses that combination.

Order of writes: a subset's new label is written before the VirtualService gives it
weight, and after the VirtualService takes weight away from it, so requests never reach
pods of a revision the plan is not sending them to.
"""

from __future__ import annotations

import copy
from typing import Any

from controller.api import Rollout
from controller.api.rollout import (
    IstioVirtualService,
    RouteMatch,
    SetHeaderRoute,
    SetMirrorRoute,
    StringMatch,
)
from controller.cache import Obj
from controller.names import REVISION_LABEL
from controller.routers.base import (
    BASELINE,
    CANARY,
    STABLE,
    RouterCaches,
    RouterWrites,
    TrafficTarget,
    baseline_service_of,
    baseline_split,
)
from controller.validation import Problem

_BASE = "spec.strategy.canary.trafficRouting.istio"


class IstioRouter:
    """Weights and managed routes on VirtualServices, labels on DestinationRule subsets."""

    def __init__(self, rollout: Rollout, *, caches: RouterCaches, kube: RouterWrites) -> None:
        canary = rollout.spec.strategy.canary
        assert canary is not None and canary.traffic_routing is not None
        routing = canary.traffic_routing
        assert routing.istio is not None
        self.namespace = str(rollout.metadata.namespace)
        self.virtual_services = routing.istio.all_virtual_services
        self.destination_rule = routing.istio.destination_rule
        self.stable_service = str(canary.stable_service or "")
        self.canary_service = str(canary.canary_service or "")
        self.baseline_service = baseline_service_of(self.stable_service)
        self.managed = [route.name for route in routing.managed_routes]
        self.vs_cache = caches.virtualservices
        self.dr_cache = caches.destinationrules
        self.kube = kube

    # ------------------------------------------------------------------ matching

    def _role(self, destination: Obj) -> str | None:
        """STABLE or CANARY for a route destination of ours, None for any other."""
        dest = destination.get("destination") or {}
        if self.destination_rule is not None:
            subset = dest.get("subset")
            if subset == self.destination_rule.stable_subset_name:
                return STABLE
            if subset == self.destination_rule.canary_subset_name:
                return CANARY
            return None
        for role, service in ((STABLE, self.stable_service), (CANARY, self.canary_service)):
            if self._names(dest, service):
                return role
        return None

    def _is_baseline(self, destination: Obj) -> bool:
        """Whether a route destination is the baseline's (host-level only)."""
        return self.destination_rule is None and self._names(
            destination.get("destination") or {}, self.baseline_service
        )

    def _names(self, dest: Obj, service: str) -> bool:
        """Whether a destination's host is ``service``: a short name, or one qualified
        with this namespace (svc.ns, svc.ns.svc...)."""
        host = str(dest.get("host", ""))
        qualified = f"{service}.{self.namespace}"
        return host in (service, qualified) or host.startswith(f"{qualified}.svc")

    def _selected(self, vs: Obj, ref: IstioVirtualService) -> list[int] | str:
        """Indexes of the http routes to weight, or why they cannot be found."""
        http = vs.get("spec", {}).get("http") or []
        own = [i for i, route in enumerate(http) if route.get("name") not in self.managed]
        if not ref.routes:
            if len(own) != 1:
                return (
                    f"VirtualService {ref.name} has {len(own)} http routes: name the one(s) "
                    "to set weights on in virtualService.routes"
                )
            return own
        found = []
        for name in ref.routes:
            index = next((i for i in own if http[i].get("name") == name), None)
            if index is None:
                return f"VirtualService {ref.name} has no http route named {name!r}"
            found.append(index)
        return found

    # ------------------------------------------------------------------ reading

    def _vs(self, name: str) -> Obj | None:
        return self.vs_cache.get(self.namespace, name) if self.vs_cache is not None else None

    def _dr(self) -> Obj | None:
        if self.dr_cache is None or self.destination_rule is None:
            return None
        return self.dr_cache.get(self.namespace, self.destination_rule.name)

    def problems(self) -> list[Problem]:
        if self.vs_cache is None:
            return [
                Problem(
                    _BASE,
                    "the Istio VirtualService CRD (networking.istio.io) is not installed (or "
                    "the controller may not list virtualservices)",
                )
            ]
        problems: list[Problem] = []
        for index, ref in enumerate(self.virtual_services):
            path = (
                f"{_BASE}.virtualService"
                if len(self.virtual_services) == 1
                else (f"{_BASE}.virtualServices[{index}]")
            )
            vs = self._vs(ref.name)
            if vs is None:
                problems.append(
                    Problem(
                        f"{path}.name",
                        f"VirtualService {ref.name} not found in namespace {self.namespace}: "
                        "create it, or fix the name",
                    )
                )
                continue
            selected = self._selected(vs, ref)
            if isinstance(selected, str):
                problems.append(Problem(f"{path}.routes", selected))
                continue
            http = vs["spec"]["http"]
            for i in selected:
                # The baseline's destination is ours too (written by apply()).
                roles = [
                    self._role(d) for d in http[i].get("route") or [] if not self._is_baseline(d)
                ]
                wanted = self._what()
                if STABLE not in roles or CANARY not in roles:
                    problems.append(
                        Problem(
                            f"{path}.routes",
                            f"http route {http[i].get('name') or i} of VirtualService "
                            f"{ref.name} needs a destination for each of {wanted}",
                        )
                    )
                elif None in roles:
                    problems.append(
                        Problem(
                            f"{path}.routes",
                            f"http route {http[i].get('name') or i} of VirtualService "
                            f"{ref.name} has a destination other than {wanted}; deployctl "
                            "sets the weights of those two only, so the others would break "
                            "the sum of 100",
                        )
                    )
        problems += self._rule_problems()
        return problems

    def _what(self) -> str:
        if self.destination_rule is not None:
            rule = self.destination_rule
            return f"subsets {rule.stable_subset_name} and {rule.canary_subset_name}"
        return f"hosts {self.stable_service} and {self.canary_service}"

    def _rule_problems(self) -> list[Problem]:
        rule = self.destination_rule
        if rule is None:
            return []
        path = f"{_BASE}.destinationRule"
        if self.dr_cache is None:
            return [
                Problem(
                    path,
                    "the Istio DestinationRule CRD (networking.istio.io) is not installed "
                    "(or the controller may not list destinationrules)",
                )
            ]
        dr = self._dr()
        if dr is None:
            return [
                Problem(
                    f"{path}.name",
                    f"DestinationRule {rule.name} not found in namespace {self.namespace}: "
                    "create it, or fix the name",
                )
            ]
        names = {s.get("name") for s in dr.get("spec", {}).get("subsets") or []}
        missing = [n for n in (rule.stable_subset_name, rule.canary_subset_name) if n not in names]
        if missing:
            return [
                Problem(
                    path,
                    f"DestinationRule {rule.name} has no subset named "
                    f"{' or '.join(repr(n) for n in missing)}",
                )
            ]
        return []

    def weights(self) -> dict[str, int] | None:
        ref = self.virtual_services[0]
        vs = self._vs(ref.name)
        if vs is None:
            return None
        selected = self._selected(vs, ref)
        if isinstance(selected, str) or not selected:
            return None
        return self._route_weights(vs["spec"]["http"][selected[0]])

    def _route_weights(self, route: Obj) -> dict[str, int]:
        destinations = route.get("route") or []
        out = {STABLE: 0, CANARY: 0}
        for dest in destinations:
            role = self._role(dest)
            if role is not None:
                # Istio: a lone destination takes everything; otherwise no weight is 0.
                out[role] += int(dest.get("weight", 100 if len(destinations) == 1 else 0))
        return out

    # ------------------------------------------------------------------ writing

    def apply(self, target: TrafficTarget) -> None:
        before: list[tuple[str, Obj, dict[str, Any]]] = []
        after: list[tuple[str, Obj, dict[str, Any]]] = []
        rule_patch = self._rule_patch(target)
        if rule_patch is not None:
            dr, patch, changed = rule_patch
            current = self.weights() or {STABLE: 100, CANARY: 0}
            # A subset that carries weight now keeps its pods until the VirtualService
            # has moved that weight; one without weight gets its new pods first.
            carrying = any(current[role] > 0 for role in changed)
            (after if carrying else before).append(("dr", dr, patch))
        for kind, obj, patch in before:
            self._send(kind, obj, patch)
        for ref in self.virtual_services:
            vs = self._vs(ref.name)
            if vs is None:
                continue
            http = self.desired_http(vs, ref, target)
            if http is not None and http != (vs.get("spec", {}).get("http") or []):
                self._send("vs", vs, {"spec": {"http": http}})
        for kind, obj, patch in after:
            self._send(kind, obj, patch)

    def _send(self, kind: str, obj: Obj, patch: dict[str, Any]) -> None:
        name, version = obj["metadata"]["name"], obj["metadata"]["resourceVersion"]
        if kind == "dr":
            self.kube.patch_destinationrule(self.namespace, name, patch, resource_version=version)
        else:
            self.kube.patch_virtualservice(self.namespace, name, patch, resource_version=version)

    def _rule_patch(self, target: TrafficTarget) -> tuple[Obj, dict[str, Any], list[str]] | None:
        """The DestinationRule patch (its subsets), with the roles whose label changes."""
        rule, dr = self.destination_rule, self._dr()
        if rule is None or dr is None:
            return None
        canary = target.canary if target.canary is not None else target.stable
        wanted = {rule.stable_subset_name: target.stable, rule.canary_subset_name: canary}
        roles = {rule.stable_subset_name: STABLE, rule.canary_subset_name: CANARY}
        subsets = copy.deepcopy(dr.get("spec", {}).get("subsets") or [])
        changed = []
        for subset in subsets:
            revision = wanted.get(subset.get("name"))
            labels = subset.setdefault("labels", {})
            if revision is not None and labels.get(REVISION_LABEL) != revision:
                labels[REVISION_LABEL] = revision
                changed.append(roles[subset["name"]])
        if not changed:
            return None
        return dr, {"spec": {"subsets": subsets}}, changed

    def desired_http(
        self, vs: Obj, ref: IstioVirtualService, target: TrafficTarget
    ) -> list[Any] | None:
        """All the VirtualService's http routes as they should be; None when the routes
        to weight cannot be found (reported by problems())."""
        http = copy.deepcopy(vs.get("spec", {}).get("http") or [])
        selected = self._selected(vs, ref)
        if isinstance(selected, str):
            return None
        by_role = baseline_split(target)
        for i in selected:
            self._set_baseline_destination(http[i], wanted=target.baseline)
            for dest in http[i].get("route") or []:
                role = self._role(dest)
                if role is None and self._names(
                    dest.get("destination") or {}, self.baseline_service
                ):
                    role = BASELINE
                if role is not None:
                    dest["weight"] = by_role[role]
        first = http[selected[0]]
        own = [route for route in http if route.get("name") not in self.managed]
        managed: dict[str, Obj] = {}
        for header in target.header_routes:
            managed[header.route.name] = self._header_route(first, header.route)
        for mirror in target.mirror_routes:
            managed[mirror.route.name] = self._mirror_route(first, mirror.route)
        return [managed[name] for name in self.managed if name in managed] + own

    def _set_baseline_destination(self, route: Obj, *, wanted: bool) -> None:
        """Add the baseline destination beside the canary's (host-level only), or drop
        it when no baseline is wanted."""
        if self.destination_rule is not None:
            return
        kept = [
            d
            for d in route.get("route") or []
            if not self._names(d.get("destination") or {}, self.baseline_service)
        ]
        if wanted and any(self._role(d) == CANARY for d in kept):
            destination = {**self._canary_destination({"route": kept})}
            destination["host"] = self.baseline_service
            kept.append({"destination": destination})
        if "route" in route:
            route["route"] = kept

    def _canary_destination(self, weighted: Obj) -> Obj:
        dest = next(d for d in weighted["route"] if self._role(d) == CANARY)
        return copy.deepcopy(dest["destination"])

    def _header_route(self, weighted: Obj, route: SetHeaderRoute) -> Obj:
        return {
            "name": route.name,
            "match": [
                {"headers": {m.header_name: _string_match(m.header_value)}} for m in route.match
            ],
            "route": [{"destination": self._canary_destination(weighted), "weight": 100}],
        }

    def _mirror_route(self, weighted: Obj, route: SetMirrorRoute) -> Obj:
        return {
            "name": route.name,
            "match": [_route_match(m) for m in route.match],
            "route": copy.deepcopy(weighted["route"]),
            "mirror": self._canary_destination(weighted),
            "mirrorPercentage": {"value": 100 if route.percentage is None else route.percentage},
        }


def _string_match(value: StringMatch) -> Obj:
    return value.model_dump(exclude_none=True)


def _route_match(match: RouteMatch) -> Obj:
    out: Obj = {}
    if match.method is not None:
        out["method"] = _string_match(match.method)
    if match.path is not None:
        out["uri"] = _string_match(match.path)
    if match.headers:
        out["headers"] = {k: _string_match(v) for k, v in sorted(match.headers.items())}
    return out
