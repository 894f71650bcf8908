"""The routing a real data path does, as pure functions: which rule a request matches,
which backends it is weighted over, and what is mirrored where.

``sandbox/traffic.py`` reads the routing objects from the cluster and hands them here;
nothing in this module talks to the apiserver. Three readers of three kinds of object:

- ``httproute_rules``: Gateway API. Every (rule, match) pair is a candidate; the most
  specific wins (an Exact path, then the longest path prefix, then a method, then the
  most headers), ties in rule order. Backends are weighted by ``weight`` (default 1);
  a ``RequestMirror`` filter mirrors ``percent`` (or ``fraction``) of the matches.
- ``virtualservice_rules``: Istio. The first http route whose ``match`` (any entry; none
  matches all) matches wins; destinations are weighted (a lone one takes all); a
  ``subset`` adds its DestinationRule's labels to the Service's selector; ``mirror`` with
  ``mirrorPercentage`` (default 100) mirrors.
- ``ingress_rules``: the NGINX Ingress controller's canary. The stable Ingress's backend
  takes what the canary Ingress does not: first ``canary-by-header`` (with ``-value``
  an exact value, with ``-pattern`` a regular expression, alone the value ``always``),
  then ``canary-weight`` percent of the rest.

Regular expressions match the whole value for Istio and Gateway API (as Envoy does) and
anywhere for NGINX's pattern.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Obj = Mapping[str, Any]
NGINX_PREFIX = "nginx.ingress.kubernetes.io"


@dataclass(frozen=True)
class RequestClass:
    """One kind of request the generator sends, and its share of the ticks."""

    name: str = "plain"
    method: str = "GET"
    path: str = "/"
    headers: Mapping[str, str] = field(default_factory=dict)
    weight: int = 1


@dataclass(frozen=True)
class BackendRef:
    """Pods of a Service, narrowed by extra labels (an Istio subset)."""

    service: str
    labels: tuple[tuple[str, str], ...] = ()

    @property
    def key(self) -> str:
        extra = ",".join(f"{k}={v}" for k, v in self.labels)
        return f"{self.service}[{extra}]" if extra else self.service


@dataclass(frozen=True)
class StringCondition:
    kind: str  # exact | prefix | regex | regex-search
    value: str

    def matches(self, actual: str | None) -> bool:
        if actual is None:
            return False
        if self.kind == "exact":
            return actual == self.value
        if self.kind == "prefix":
            return actual.startswith(self.value)
        if self.kind == "regex-search":
            return re.search(self.value, actual) is not None
        return re.fullmatch(self.value, actual) is not None


@dataclass(frozen=True)
class Condition:
    """All of: method, path, each header (names compared without case)."""

    method: StringCondition | None = None
    path: StringCondition | None = None
    headers: tuple[tuple[str, StringCondition], ...] = ()

    def matches(self, request: RequestClass) -> bool:
        if self.method is not None and not self.method.matches(request.method):
            return False
        if self.path is not None and not self.path.matches(request.path):
            return False
        sent = {k.lower(): v for k, v in request.headers.items()}
        return all(cond.matches(sent.get(name.lower())) for name, cond in self.headers)


@dataclass(frozen=True)
class Rule:
    """Where matching requests go: weighted backends, and a mirror."""

    key: str
    conditions: tuple[Condition, ...]
    """Any of these; none matches every request."""
    targets: tuple[tuple[BackendRef, int], ...]
    mirror: tuple[BackendRef, float] | None = None
    """The mirror backend and the percent of matching requests copied to it."""

    def matches(self, request: RequestClass) -> bool:
        return not self.conditions or any(c.matches(request) for c in self.conditions)


def first_match(rules: Sequence[Rule], request: RequestClass) -> Rule | None:
    return next((rule for rule in rules if rule.matches(request)), None)


# ---------------------------------------------------------------------------- Gateway API


def _gateway_string(match: Obj | None, default_type: str) -> StringCondition | None:
    if not match:
        return None
    kind = {"Exact": "exact", "PathPrefix": "prefix", "RegularExpression": "regex"}
    return StringCondition(kind[str(match.get("type", default_type))], str(match.get("value")))


def httproute_rules(route: Obj, *, namespace: str) -> list[Rule]:
    """The candidates of an HTTPRoute, most specific first (see the module docstring)."""
    ranked: list[tuple[tuple[Any, ...], Rule]] = []
    for index, rule in enumerate(route.get("spec", {}).get("rules") or []):
        targets = tuple(
            (BackendRef(str(ref["name"])), int(ref.get("weight", 1)))
            for ref in rule.get("backendRefs") or []
            if ref.get("kind", "Service") == "Service"
            and ref.get("group", "") in ("", "core")
            and ref.get("namespace", namespace) == namespace
        )
        mirror = None
        for flt in rule.get("filters") or []:
            if flt.get("type") == "RequestMirror":
                spec = flt.get("requestMirror") or {}
                percent: float = float(spec.get("percent", 100))
                if "fraction" in spec:
                    fraction = spec["fraction"]
                    percent = 100.0 * fraction["numerator"] / fraction.get("denominator", 100)
                mirror = (BackendRef(str(spec["backendRef"]["name"])), percent)
        for number, match in enumerate(rule.get("matches") or [{}]):
            path = match.get("path") or {"type": "PathPrefix", "value": "/"}
            condition = Condition(
                method=StringCondition("exact", match["method"]) if "method" in match else None,
                path=_gateway_string(path, "PathPrefix"),
                headers=tuple(
                    (str(h["name"]), _gateway_string(h, "Exact"))  # type: ignore[misc]
                    for h in match.get("headers") or []
                ),
            )
            rank = (
                0 if path.get("type") == "Exact" else 1,
                -len(str(path.get("value", "/"))),
                0 if "method" in match else 1,
                -len(condition.headers),
                index,
                number,
            )
            ranked.append(
                (rank, Rule(f"httproute/{index}/{number}", (condition,), targets, mirror))
            )
    return [rule for _, rule in sorted(ranked, key=lambda pair: pair[0])]


# ---------------------------------------------------------------------------- Istio


def _istio_string(match: Obj | None) -> StringCondition | None:
    if not match:
        return None
    for kind in ("exact", "prefix", "regex"):
        if kind in match:
            return StringCondition(kind, str(match[kind]))
    return None


def _istio_backend(
    destination: Obj, *, namespace: str, subsets: Mapping[tuple[str, str], Mapping[str, str]]
) -> BackendRef:
    host = str(destination.get("host", ""))
    name = host.split(".")[0]
    # A short name or one qualified with the namespace is a Service of the namespace.
    local = host in (name, f"{name}.{namespace}") or host.startswith(f"{name}.{namespace}.svc")
    service = name if local else host
    subset = destination.get("subset")
    labels = subsets.get((service, str(subset)), {}) if subset else {}
    return BackendRef(service, tuple(sorted(labels.items())))


def destination_subsets(rules: Iterable[Obj]) -> dict[tuple[str, str], dict[str, str]]:
    """(host's Service, subset name) -> that subset's labels, over DestinationRules."""
    out: dict[tuple[str, str], dict[str, str]] = {}
    for rule in rules:
        host = str(rule.get("spec", {}).get("host", "")).split(".")[0]
        for subset in rule.get("spec", {}).get("subsets") or []:
            out[(host, str(subset.get("name")))] = dict(subset.get("labels") or {})
    return out


def virtualservice_rules(
    vs: Obj, *, namespace: str, destination_rules: Iterable[Obj] = ()
) -> list[Rule]:
    """The http routes of a VirtualService, in order (the first match wins)."""
    subsets = destination_subsets(destination_rules)
    rules = []
    for index, route in enumerate(vs.get("spec", {}).get("http") or []):
        destinations = route.get("route") or []
        targets = tuple(
            (
                _istio_backend(d.get("destination") or {}, namespace=namespace, subsets=subsets),
                int(d.get("weight", 100 if len(destinations) == 1 else 0)),
            )
            for d in destinations
        )
        conditions = tuple(
            Condition(
                method=_istio_string(m.get("method")),
                path=_istio_string(m.get("uri")),
                headers=tuple(
                    (str(name), cond)
                    for name, value in (m.get("headers") or {}).items()
                    if (cond := _istio_string(value)) is not None
                ),
            )
            for m in route.get("match") or []
        )
        mirror = None
        if route.get("mirror"):
            percent = float((route.get("mirrorPercentage") or {}).get("value", 100))
            backend = _istio_backend(route["mirror"], namespace=namespace, subsets=subsets)
            mirror = (backend, percent)
        name = route.get("name") or str(index)
        rules.append(Rule(f"vs/{name}", conditions, targets, mirror))
    return rules


# ---------------------------------------------------------------------------- NGINX


def _ingress_service(ingress: Obj) -> str | None:
    for rule in ingress.get("spec", {}).get("rules") or []:
        for path in (rule.get("http") or {}).get("paths") or []:
            service = (path.get("backend") or {}).get("service") or {}
            if service.get("name"):
                return str(service["name"])
    return None


def _hosts(ingress: Obj) -> set[str]:
    return {str(r.get("host", "")) for r in ingress.get("spec", {}).get("rules") or []}


def ingress_rules(
    stable: Obj, ingresses: Iterable[Obj], *, prefix: str = NGINX_PREFIX
) -> list[Rule]:
    """The stable Ingress and the canary Ingress(es) for its hosts, as NGINX orders them."""
    stable_service = _ingress_service(stable)
    if stable_service is None:
        return []
    name = str(stable.get("metadata", {}).get("name"))
    canary: Obj | None = None
    for ingress in ingresses:
        annotations = ingress.get("metadata", {}).get("annotations") or {}
        if annotations.get(f"{prefix}/canary") == "true" and _hosts(ingress) & _hosts(stable):
            canary = ingress
            break
    stable_ref = BackendRef(stable_service)
    if canary is None:
        return [Rule(f"ingress/{name}", (), ((stable_ref, 1),))]
    canary_service = _ingress_service(canary)
    if canary_service is None:
        return [Rule(f"ingress/{name}", (), ((stable_ref, 1),))]
    canary_ref = BackendRef(canary_service)
    annotations = canary.get("metadata", {}).get("annotations") or {}
    rules = []
    header = annotations.get(f"{prefix}/canary-by-header")
    if header:
        if f"{prefix}/canary-by-header-value" in annotations:
            cond = StringCondition("exact", annotations[f"{prefix}/canary-by-header-value"])
        elif f"{prefix}/canary-by-header-pattern" in annotations:
            cond = StringCondition(
                "regex-search", annotations[f"{prefix}/canary-by-header-pattern"]
            )
        else:
            cond = StringCondition("exact", "always")
        rules.append(
            Rule(
                f"ingress/{name}/header",
                (Condition(headers=((header, cond),)),),
                ((canary_ref, 1),),
            )
        )
    try:
        weight = min(max(int(annotations.get(f"{prefix}/canary-weight", "0")), 0), 100)
    except ValueError:
        weight = 0
    rules.append(Rule(f"ingress/{name}", (), ((stable_ref, 100 - weight), (canary_ref, weight))))
    return rules
