"""The NGINX Ingress router: a canary Ingress cloned from the stable one, annotated.

As with Argo Rollouts, for each stable Ingress the Rollout names the router keeps an
Ingress ``<rollout>-<stable ingress>-canary`` that the Rollout owns (deleted with it):

- its rules are the stable Ingress's rules whose backend is the stable Service, with
  the canary Service as backend; TLS and the ingress class are copied too;
- its annotations (with ``annotationPrefix``, ``nginx.ingress.kubernetes.io`` by
  default) are ``canary: "true"`` and ``canary-weight: "<w>"``, the Rollout's
  ``additionalIngressAnnotations`` (prefixed) and ``canaryIngressAnnotations`` (as
  written), and while a header route is in force ``canary-by-header`` with
  ``canary-by-header-value`` (exact) or ``canary-by-header-pattern`` (regex; a prefix
  becomes ``^<prefix>.*``), which NGINX applies before the weight.

NGINX cannot mirror to a canary, and matches one header (the Rollout's validation says
so). Annotations other writers added to the canary Ingress are kept.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

from controller.api import Rollout
from controller.api.rollout import SetHeaderRoute
from controller.cache import Obj
from controller.names import ROLLOUT_LABEL
from controller.routers.base import (
    CANARY,
    STABLE,
    RouterCaches,
    RouterWrites,
    TrafficTarget,
    canary_weight_of,
)
from controller.validation import Problem

INGRESS_CLASS_ANNOTATION = "kubernetes.io/ingress.class"
_HEADER_KEYS = ("canary-by-header", "canary-by-header-value", "canary-by-header-pattern")
_MAX_NAME = 253
_SUFFIX = "-canary"


def canary_ingress_name(rollout: str, stable_ingress: str) -> str:
    """``<rollout>-<stable>-canary``, the prefix cut so the name stays within 253.

    >>> canary_ingress_name("checkout", "shop")
    'checkout-shop-canary'
    """
    return f"{rollout}-{stable_ingress}"[: _MAX_NAME - len(_SUFFIX)] + _SUFFIX


class NginxRouter:
    """One owned canary Ingress per stable Ingress (see the module docstring)."""

    def __init__(
        self,
        rollout: Rollout,
        *,
        caches: RouterCaches,
        kube: RouterWrites,
        owner: Mapping[str, Any],
    ) -> None:
        canary = rollout.spec.strategy.canary
        assert canary is not None and canary.traffic_routing is not None
        nginx = canary.traffic_routing.nginx
        assert nginx is not None
        self.rollout_name = str(rollout.metadata.name)
        self.rollout_uid = rollout.metadata.uid
        self.namespace = str(rollout.metadata.namespace)
        self.config = nginx
        self.prefix = nginx.annotation_prefix
        self.stable_service = str(canary.stable_service)
        self.canary_service = str(canary.canary_service)
        self.cache = caches.ingresses
        self.kube = kube
        self.owner = owner

    def _get(self, name: str) -> Obj | None:
        return self.cache.get(self.namespace, name) if self.cache is not None else None

    def _owned(self, ingress: Obj) -> bool:
        return any(
            ref.get("kind") == "Rollout"
            and ref.get("name") == self.rollout_name
            and (self.rollout_uid is None or ref.get("uid") == self.rollout_uid)
            for ref in ingress.get("metadata", {}).get("ownerReferences") or []
        )

    # ------------------------------------------------------------------ reading

    def problems(self) -> list[Problem]:
        path = "spec.strategy.canary.trafficRouting.nginx"
        if self.cache is None:
            return [Problem(path, "the controller may not list Ingresses (networking.k8s.io/v1)")]
        problems: list[Problem] = []
        for name in self.config.ingresses:
            stable = self._get(name)
            if stable is None:
                problems.append(
                    Problem(
                        f"{path}.stableIngress",
                        f"Ingress {name} not found in namespace {self.namespace}: create it "
                        f"(with a backend to Service {self.stable_service}), or fix the name",
                    )
                )
                continue
            if not self._canary_rules(stable):
                problems.append(
                    Problem(
                        f"{path}.stableIngress",
                        f"Ingress {name} has no rule with Service {self.stable_service} as "
                        "backend, so there is nothing to split",
                    )
                )
            canary_name = canary_ingress_name(self.rollout_name, name)
            existing = self._get(canary_name)
            if existing is not None and not self._owned(existing):
                problems.append(
                    Problem(
                        path,
                        f"Ingress {canary_name} exists and is not owned by Rollout "
                        f"{self.rollout_name}; deployctl will not take it over: delete or "
                        "rename it",
                    )
                )
        return problems

    def weights(self) -> dict[str, int] | None:
        if not self.config.ingresses or self._get(self.config.ingresses[0]) is None:
            return None
        canary = self._get(canary_ingress_name(self.rollout_name, self.config.ingresses[0]))
        weight = 0
        if canary is not None:
            annotations = canary.get("metadata", {}).get("annotations") or {}
            try:
                weight = int(annotations.get(f"{self.prefix}/canary-weight", "0"))
            except ValueError:
                weight = 0
        return {STABLE: 100 - weight, CANARY: weight}

    # ------------------------------------------------------------------ writing

    def apply(self, target: TrafficTarget) -> None:
        for name in self.config.ingresses:
            stable = self._get(name)
            if stable is None:
                continue
            canary_name = canary_ingress_name(self.rollout_name, name)
            body = self.desired(stable, canary_name, target)
            existing = self._get(canary_name)
            if existing is None:
                self.kube.create_ingress(self.namespace, body, owner=self.owner)
                continue
            patch = self._patch(existing, body)
            if patch:
                self.kube.patch_ingress(
                    self.namespace,
                    canary_name,
                    patch,
                    resource_version=existing["metadata"]["resourceVersion"],
                )

    def _canary_rules(self, stable: Obj) -> list[Obj]:
        rules = []
        for rule in stable.get("spec", {}).get("rules") or []:
            rule = copy.deepcopy(rule)
            found = False
            for path in (rule.get("http") or {}).get("paths") or []:
                service = (path.get("backend") or {}).get("service") or {}
                if service.get("name") == self.stable_service:
                    service["name"] = self.canary_service
                    found = True
            if found:
                rules.append(rule)
        return rules

    def desired(self, stable: Obj, name: str, target: TrafficTarget) -> Obj:
        """The canary Ingress as it should be."""
        spec: Obj = {"rules": self._canary_rules(stable)}
        for key in ("tls", "ingressClassName"):
            if key in stable.get("spec", {}):
                spec[key] = copy.deepcopy(stable["spec"][key])
        stable_annotations = stable.get("metadata", {}).get("annotations") or {}
        annotations: dict[str, str] = {}
        if INGRESS_CLASS_ANNOTATION in stable_annotations:
            annotations[INGRESS_CLASS_ANNOTATION] = stable_annotations[INGRESS_CLASS_ANNOTATION]
        for key, value in self.config.additional_ingress_annotations.items():
            annotations[key if key.startswith(self.prefix) else f"{self.prefix}/{key}"] = value
        annotations.update(self.config.canary_ingress_annotations)
        if target.header_routes:
            annotations.update(self._header_annotations(target.header_routes[0].route))
        annotations[f"{self.prefix}/canary"] = "true"
        annotations[f"{self.prefix}/canary-weight"] = str(canary_weight_of(target))
        return {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {
                "name": name,
                "namespace": self.namespace,
                "labels": {ROLLOUT_LABEL: self.rollout_name},
                "annotations": annotations,
            },
            "spec": spec,
        }

    def _header_annotations(self, route: SetHeaderRoute) -> dict[str, str]:
        match = route.match[0]
        value = match.header_value
        out = {f"{self.prefix}/canary-by-header": match.header_name}
        if value.exact is not None:
            out[f"{self.prefix}/canary-by-header-value"] = value.exact
        else:
            pattern = (
                value.regex if value.regex is not None else f"^{re.escape(str(value.prefix))}.*"
            )
            out[f"{self.prefix}/canary-by-header-pattern"] = pattern
        return out

    def _patch(self, existing: Obj, desired: Obj) -> Obj:
        """The merge patch from the canary Ingress as it is to ``desired``; {} if none.

        Our annotations are set; the header annotations we manage are removed when no
        header route is in force; other annotations are left to whoever wrote them.
        """
        have = existing.get("metadata", {}).get("annotations") or {}
        want = desired["metadata"]["annotations"]
        annotations: dict[str, str | None] = {k: v for k, v in want.items() if have.get(k) != v}
        for key in _HEADER_KEYS:
            full = f"{self.prefix}/{key}"
            if full in have and full not in want:
                annotations[full] = None
        patch: Obj = {}
        if annotations:
            patch["metadata"] = {"annotations": annotations}
        spec = existing.get("spec") or {}
        wanted_spec = desired["spec"]
        if any(spec.get(k) != wanted_spec.get(k) for k in ("rules", "tls", "ingressClassName")):
            patch["spec"] = {k: wanted_spec.get(k) for k in ("rules", "tls", "ingressClassName")}
        return patch
