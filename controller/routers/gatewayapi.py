"""The Gateway API router: an HTTPRoute's backendRef weights, header rules and
RequestMirror rules.

The Rollout names an HTTPRoute with a rule whose backendRefs point at the stable and the
canary Service (the *weighted rule*). The router

- sets those two backendRefs' weights in every rule that has them (stable 100 - w,
  canary w); with baseline pods a third backendRef, a copy of the canary's naming the
  baseline Service, gets the canary's weight (``baseline_split``) and is removed again
  once the target has no baseline;
- writes one rule per header or mirror route in force, named after the route and put
  before the user's rules in ``managedRoutes`` order, and removes the rules of managed
  routes no longer in force. Each copies the weighted rule (its filters, timeouts) and
  extends each of its matches: a header rule adds the route's header to them and sends
  to the canary Service alone; a mirror rule adds method, path and headers, keeps the
  weighted backendRefs and adds a ``RequestMirror`` filter to the canary Service with
  the route's percent.

Gateway API picks among matching rules by how specific they are (a match with more
headers wins over the weighted rule's), not by their order. It matches headers exactly
or by regular expression, so a ``prefix`` is sent as the expression ``^<prefix>.*``, and
methods only exactly (the Rollout's validation says so).
"""

from __future__ import annotations

import copy
import re
from typing import Any

from controller.api import Rollout
from controller.api.rollout import RouteMatch, SetHeaderRoute, SetMirrorRoute, StringMatch
from controller.cache import Obj
from controller.routers.base import (
    BASELINE,
    CANARY,
    STABLE,
    RouterCaches,
    RouterWrites,
    TrafficTarget,
    baseline_service_of,
    baseline_split,
    without_defaults,
)
from controller.validation import Problem

# What the published CRDs fill in when a field is left out: a rule read back with them
# is the rule we wrote.
_DEFAULTS = (("weight", 1), ("group", ""), ("kind", "Service"), ("type", "Exact"))
_BACKEND_KEYS = ("group", "kind", "name", "namespace", "port")


class GatewayAPIRouter:
    """Weights, header and mirror rules on one HTTPRoute (see the module docstring)."""

    def __init__(self, rollout: Rollout, *, caches: RouterCaches, kube: RouterWrites) -> None:
        canary = rollout.spec.strategy.canary
        assert canary is not None and canary.traffic_routing is not None
        routing = canary.traffic_routing
        assert routing.gateway_api is not None
        self.namespace = str(rollout.metadata.namespace)
        self.name = routing.gateway_api.http_route
        self.stable_service = str(canary.stable_service)
        self.canary_service = str(canary.canary_service)
        self.baseline_service = baseline_service_of(self.stable_service)
        self.managed = [route.name for route in routing.managed_routes]
        self.cache = caches.httproutes
        self.kube = kube

    # ------------------------------------------------------------------ reading

    def _route(self) -> Obj | None:
        return self.cache.get(self.namespace, self.name) if self.cache is not None else None

    def problems(self) -> list[Problem]:
        path = "spec.strategy.canary.trafficRouting.gatewayAPI.httpRoute"
        if self.cache is None:
            return [
                Problem(
                    path,
                    "the Gateway API HTTPRoute CRD is not installed (or the controller may "
                    "not list httproutes); install the Gateway API CRDs",
                )
            ]
        route = self._route()
        if route is None:
            return [
                Problem(
                    path,
                    f"HTTPRoute {self.name} not found in namespace {self.namespace}: create "
                    f"it with a rule whose backendRefs name {self.stable_service} and "
                    f"{self.canary_service}, or fix the name",
                )
            ]
        if self._weighted_rule(route) is None:
            return [
                Problem(
                    path,
                    f"HTTPRoute {self.name} has no rule with backendRefs to both "
                    f"{self.stable_service} and {self.canary_service}",
                )
            ]
        return []

    def _weighted_rule(self, route: Obj) -> Obj | None:
        for rule in route.get("spec", {}).get("rules") or []:
            if rule.get("name") in self.managed:
                continue
            names = {ref.get("name") for ref in rule.get("backendRefs") or []}
            if {self.stable_service, self.canary_service} <= names:
                return dict(rule)
        return None

    def weights(self) -> dict[str, int] | None:
        route = self._route()
        rule = self._weighted_rule(route) if route is not None else None
        if rule is None:
            return None
        out = {STABLE: 0, CANARY: 0}
        roles = {self.stable_service: STABLE, self.canary_service: CANARY}
        for ref in rule.get("backendRefs") or []:
            role = roles.get(ref.get("name"))
            if role is not None:
                out[role] += int(ref.get("weight", 1))
        return out

    # ------------------------------------------------------------------ writing

    def apply(self, target: TrafficTarget) -> None:
        route = self._route()
        if route is None:
            return  # reported by problems(); nothing to write to
        current = route.get("spec", {}).get("rules") or []
        rules = self.desired_rules(route, target)
        if without_defaults(rules, _DEFAULTS) == without_defaults(current, _DEFAULTS):
            return
        self.kube.patch_httproute(
            self.namespace,
            self.name,
            {"spec": {"rules": rules}},
            resource_version=route["metadata"]["resourceVersion"],
        )

    def desired_rules(self, route: Obj, target: TrafficTarget) -> list[Any]:
        """All the route's rules as they should be (a merge patch replaces the list)."""
        split = baseline_split(target)
        by_service = {
            self.stable_service: split[STABLE],
            self.canary_service: split[CANARY],
            self.baseline_service: split[BASELINE],
        }
        rules = [
            copy.deepcopy(rule)
            for rule in route.get("spec", {}).get("rules") or []
            if rule.get("name") not in self.managed
        ]
        for rule in rules:
            self._set_baseline_ref(rule, wanted=target.baseline)
            for ref in rule.get("backendRefs") or []:
                if ref.get("name") in by_service:
                    ref["weight"] = by_service[ref["name"]]
        weighted = self._weighted_rule({"spec": {"rules": rules}})
        if weighted is None:
            return rules
        managed: dict[str, Obj] = {}
        for header in target.header_routes:
            managed[header.route.name] = self._header_rule(weighted, header.route)
        for mirror in target.mirror_routes:
            managed[mirror.route.name] = self._mirror_rule(weighted, mirror.route)
        return [managed[name] for name in self.managed if name in managed] + rules

    def _set_baseline_ref(self, rule: Obj, *, wanted: bool) -> None:
        """Add the baseline backendRef beside the canary's in a rule that has both the
        stable and the canary Service, or drop it when no baseline is wanted."""
        refs = [r for r in rule.get("backendRefs") or [] if r.get("name") != self.baseline_service]
        names = {r.get("name") for r in refs}
        if wanted and {self.stable_service, self.canary_service} <= names:
            refs.append({**self._canary_ref(rule), "name": self.baseline_service})
        if "backendRefs" in rule:
            rule["backendRefs"] = refs

    def _canary_ref(self, weighted: Obj) -> Obj:
        ref = next(r for r in weighted["backendRefs"] if r.get("name") == self.canary_service)
        return {k: copy.deepcopy(v) for k, v in ref.items() if k in _BACKEND_KEYS}

    def _header_rule(self, weighted: Obj, route: SetHeaderRoute) -> Obj:
        rule = copy.deepcopy(weighted)
        rule["name"] = route.name
        rule["matches"] = [
            {**base, "headers": [*base.get("headers", []), _header(m.header_name, m.header_value)]}
            for m in route.match
            for base in _base_matches(weighted)
        ]
        rule["backendRefs"] = [self._canary_ref(weighted)]
        return rule

    def _mirror_rule(self, weighted: Obj, route: SetMirrorRoute) -> Obj:
        rule = copy.deepcopy(weighted)
        rule["name"] = route.name
        rule["matches"] = [
            _extended(base, match) for match in route.match for base in _base_matches(weighted)
        ]
        mirror = {
            "type": "RequestMirror",
            "requestMirror": {
                "backendRef": self._canary_ref(weighted),
                "percent": 100 if route.percentage is None else route.percentage,
            },
        }
        rule["filters"] = [*rule.get("filters", []), mirror]
        return rule


def _base_matches(weighted: Obj) -> list[Obj]:
    return [copy.deepcopy(m) for m in weighted.get("matches") or [{}]]


def _header(name: str, value: StringMatch) -> Obj:
    if value.exact is not None:
        return {"name": name, "type": "Exact", "value": value.exact}
    return {"name": name, "type": "RegularExpression", "value": _regex(value)}


def _regex(value: StringMatch) -> str:
    if value.regex is not None:
        return value.regex
    return f"^{re.escape(str(value.prefix))}.*"


def _extended(base: Obj, match: RouteMatch) -> Obj:
    out = copy.deepcopy(base)
    if match.method is not None:
        out["method"] = match.method.exact
    if match.path is not None:
        path = match.path
        if path.exact is not None:
            out["path"] = {"type": "Exact", "value": path.exact}
        elif path.prefix is not None:
            out["path"] = {"type": "PathPrefix", "value": path.prefix}
        else:
            out["path"] = {"type": "RegularExpression", "value": path.regex}
    headers = [_header(name, value) for name, value in sorted(match.headers.items())]
    if headers:
        out["headers"] = [*out.get("headers", []), *headers]
    return out
