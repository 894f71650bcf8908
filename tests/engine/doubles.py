"""Doubles at the reconciler's own seams (``controller/cache.py``), nothing deeper.

- ``DictCache``: a ``Cache`` over a dict, as an informer's cache would answer (copies
  out, label selection).
- ``RecordingKube``: a ``KubeWrites`` that records every request as a short tuple and
  answers with what the apiserver would echo; ``fail`` makes one call raise. It has no
  other methods, so a pass that calls anything else fails with AttributeError, and a
  test compares the whole list, so any call it did not expect fails it.
- ``ScriptedMeasurer``: a ``Measurer`` answering each PromQL query from a table.

They stand in for our adapter, never for the Kubernetes or PromQL API: the real ones
are exercised against the sandbox in ``tests/operator`` and ``tests/integration``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

from controller.analysis.values import QueryOutcome, QueryResult, Sample
from controller.names import REVISION_LABEL

Obj = dict[str, Any]
Call = tuple[Any, ...]


class DictCache:
    """``Cache`` over ``{(namespace, name): object}``."""

    def __init__(self, *objects: Mapping[str, Any]) -> None:
        self.objects: dict[tuple[str | None, str], Obj] = {}
        for obj in objects:
            self.put(obj)

    def put(self, obj: Mapping[str, Any]) -> None:
        meta = obj["metadata"]
        self.objects[(meta.get("namespace"), meta["name"])] = copy.deepcopy(dict(obj))

    def get(self, namespace: str | None, name: str) -> Obj | None:
        found = self.objects.get((namespace, name))
        return copy.deepcopy(found) if found is not None else None

    def list(
        self, namespace: str | None = None, *, labels: Mapping[str, str] | None = None
    ) -> list[Obj]:
        out = []
        for (ns, _name), obj in sorted(self.objects.items(), key=lambda kv: str(kv[0])):
            if namespace is not None and ns != namespace:
                continue
            have = obj.get("metadata", {}).get("labels") or {}
            if labels and any(have.get(k) != v for k, v in labels.items()):
                continue
            out.append(copy.deepcopy(obj))
        return out


class RecordingKube:
    """Records the writes of a pass, in order (see the module docstring).

    ``calls`` holds one tuple per call:

    - ``("create", replicaset, replicas)``, ``("scale", replicaset, replicas)``,
      ``("delete", replicaset, uid)``;
    - ``("select", service, revision)``: the revision a Service's selector now names;
    - ``("create-service", service, revision)`` (the body in ``services_created``),
      ``("delete-service", service, uid)``: the baseline's Service behind a router;
    - ``("scale-deployment", deployment, replicas)``: a ``workloadRef`` Deployment's scale;
    - the traffic routers' writes (sent only when something changes: the routers
      decide that from the cached object, as with the real adapter):
      ``("weights", route, {service: weight})`` for an HTTPRoute with one rule,
      ``("rules", route, ((rule name, {service: weight}, mirror), ...))`` with more;
      ``("vs", virtualservice, ((route name, {host or subset: weight}, mirror), ...))``;
      ``("subsets", destinationrule, {subset: revision})``;
      ``("create-ingress", ingress, weight)``, ``("ingress", ingress, {annotation: value})``;
    - ``("status", rollout)``, the merge patch itself in ``status_patches``;
    - ``("event", type, reason)``, the message in ``messages``.
    """

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.status_patches: list[Obj] = []
        self.messages: list[str] = []
        self.resource_versions: list[str | None] = []
        self.router_writes: list[tuple[str, str, Obj]] = []
        self.services_created: list[Obj] = []
        self._failures: dict[str, Exception] = {}

    def fail(self, method: str, error: Exception) -> None:
        """Make the next call of ``method`` raise ``error`` (after recording it)."""
        self._failures[method] = error

    def _record(self, method: str, call: Call) -> None:
        self.calls.append(call)
        error = self._failures.pop(method, None)
        if error is not None:
            raise error

    # The signatures take what the reconciler passes; the options it does not pass are
    # accepted as ``**_`` (see ``controller.cache.KubeWrites`` for the whole shape).

    def create_replicaset(self, namespace: str, body: Mapping[str, Any], **_: Any) -> Obj:
        call = ("create", body["metadata"]["name"], body["spec"]["replicas"])
        self._record("create_replicaset", call)
        return copy.deepcopy(dict(body))

    def scale_replicaset(self, namespace: str, name: str, replicas: int, **_: Any) -> Obj:
        self._record("scale_replicaset", ("scale", name, replicas))
        return {"metadata": {"name": name, "namespace": namespace}, "spec": {"replicas": replicas}}

    def delete_replicaset(
        self, namespace: str, name: str, *, uid: str | None = None, **_: Any
    ) -> bool:
        self._record("delete_replicaset", ("delete", name, uid))
        return True

    def patch_service_selector(
        self, namespace: str, name: str, selector: Mapping[str, str | None], **_: Any
    ) -> Obj:
        self._record("patch_service_selector", ("select", name, selector.get(REVISION_LABEL)))
        return {"metadata": {"name": name}, "spec": {"selector": dict(selector)}}

    def create_service(
        self, namespace: str, body: Mapping[str, Any], *, owner: Mapping[str, Any]
    ) -> Obj | None:
        created = copy.deepcopy(dict(body))
        created["metadata"]["namespace"] = namespace
        created["metadata"]["ownerReferences"] = [
            {"kind": "Rollout", "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"]}
        ]
        self.services_created.append(created)
        revision = body["spec"]["selector"].get(REVISION_LABEL)
        self._record("create_service", ("create-service", body["metadata"]["name"], revision))
        return created

    def delete_service(self, namespace: str, name: str, *, uid: str | None = None) -> bool:
        self._record("delete_service", ("delete-service", name, uid))
        return True

    def scale_deployment(self, namespace: str, name: str, replicas: int) -> Obj:
        self._record("scale_deployment", ("scale-deployment", name, replicas))
        return {"metadata": {"name": name, "namespace": namespace}, "spec": {"replicas": replicas}}

    def patch_statefulset_partition(
        self, namespace: str, name: str, partition: int, *, resource_version: str | None = None
    ) -> Obj:
        self._record("patch_statefulset_partition", ("partition", name, partition))
        return {"metadata": {"name": name, "namespace": namespace}}

    def patch_statefulset_template(
        self, current: Mapping[str, Any], template: Mapping[str, Any], *, partition: int | None
    ) -> Obj:
        name = current["metadata"]["name"]
        self._record("patch_statefulset_template", ("statefulset-template", name, partition))
        return dict(current)

    def get_statefulset_template(self, namespace: str, revision: str) -> Obj:
        return {"metadata": {"labels": {}}, "spec": {"containers": []}}

    def delete_pod(self, namespace: str, name: str, *, uid: str) -> bool:
        self._record("delete_pod", ("delete-pod", name, uid))
        return True

    def patch_daemonset_update_strategy(
        self,
        namespace: str,
        name: str,
        strategy: Mapping[str, Any],
        *,
        resource_version: str | None = None,
        annotations: Mapping[str, str | None] | None = None,
    ) -> Obj:
        self._record("patch_daemonset_update_strategy", ("strategy", name, strategy["type"]))
        return {"metadata": {"name": name, "namespace": namespace}}

    def patch_daemonset_template(
        self,
        current: Mapping[str, Any],
        template: Mapping[str, Any],
        *,
        hold: Mapping[str, str] | None = None,
    ) -> Obj:
        self._record(
            "patch_daemonset_template", ("daemonset-template", current["metadata"]["name"])
        )
        return dict(current)

    # The traffic routers' writes: summarised, and kept in ``router_writes`` (kind, name,
    # patch or body) for ``Fixture.settle`` to apply to its caches.

    def patch_httproute(
        self, namespace: str, name: str, patch: Mapping[str, Any], *, resource_version: str
    ) -> Obj:
        rules = patch["spec"]["rules"]
        weights = {
            ref["name"]: ref.get("weight", 1)
            for rule in rules
            if "name" not in rule
            for ref in rule.get("backendRefs") or []
        }
        if len(rules) == 1:
            call: Call = ("weights", name, weights)
        else:
            call = ("rules", name, tuple(_rule_summary(rule) for rule in rules))
        self.router_writes.append(("HTTPRoute", name, copy.deepcopy(dict(patch))))
        self._record("patch_httproute", call)
        return {}

    def patch_virtualservice(
        self, namespace: str, name: str, patch: Mapping[str, Any], *, resource_version: str
    ) -> Obj:
        summary = tuple(_vs_route_summary(route) for route in patch["spec"]["http"])
        self.router_writes.append(("VirtualService", name, copy.deepcopy(dict(patch))))
        self._record("patch_virtualservice", ("vs", name, summary))
        return {}

    def patch_destinationrule(
        self, namespace: str, name: str, patch: Mapping[str, Any], *, resource_version: str
    ) -> Obj:
        subsets = {
            s["name"]: (s.get("labels") or {}).get(REVISION_LABEL) for s in patch["spec"]["subsets"]
        }
        self.router_writes.append(("DestinationRule", name, copy.deepcopy(dict(patch))))
        self._record("patch_destinationrule", ("subsets", name, subsets))
        return {}

    def create_ingress(
        self, namespace: str, body: Mapping[str, Any], *, owner: Mapping[str, Any]
    ) -> Obj | None:
        annotations = body["metadata"]["annotations"]
        weight = next(v for k, v in annotations.items() if k.endswith("/canary-weight"))
        created = copy.deepcopy(dict(body))
        created["metadata"]["ownerReferences"] = [
            {"kind": "Rollout", "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"]}
        ]
        self.router_writes.append(("Ingress+", body["metadata"]["name"], created))
        self._record("create_ingress", ("create-ingress", body["metadata"]["name"], weight))
        return created

    def patch_ingress(
        self, namespace: str, name: str, patch: Mapping[str, Any], *, resource_version: str
    ) -> Obj:
        annotations = dict(patch.get("metadata", {}).get("annotations") or {})
        changed = {k.rsplit("/", 1)[-1]: v for k, v in sorted(annotations.items())}
        self.router_writes.append(("Ingress", name, copy.deepcopy(dict(patch))))
        self._record("patch_ingress", ("ingress", name, changed))
        return {}

    def patch_rollout_status(
        self,
        namespace: str,
        name: str,
        status: Mapping[str, Any],
        *,
        resource_version: str | None = None,
    ) -> Obj:
        self.status_patches.append(copy.deepcopy(dict(status)))
        self.resource_versions.append(resource_version)
        self._record("patch_rollout_status", ("status", name))
        return {"metadata": {"name": name, "namespace": namespace}, "status": dict(status)}

    def record_event(
        self, involved: Mapping[str, Any], *, reason: str, message: str, type: str = "Normal"
    ) -> Obj:
        self.messages.append(message)
        self._record("record_event", ("event", type, reason))
        return {}


def _rule_summary(rule: Mapping[str, Any]) -> tuple[Any, ...]:
    weights = {ref["name"]: ref.get("weight", 1) for ref in rule.get("backendRefs") or []}
    mirror = next(
        (
            (f["requestMirror"]["backendRef"]["name"], f["requestMirror"].get("percent"))
            for f in rule.get("filters") or []
            if f.get("type") == "RequestMirror"
        ),
        None,
    )
    return (rule.get("name"), weights, mirror)


def _vs_route_summary(route: Mapping[str, Any]) -> tuple[Any, ...]:
    def key(dest: Mapping[str, Any]) -> str:
        return str(dest.get("subset") or dest.get("host"))

    weights = {key(d["destination"]): d.get("weight") for d in route.get("route") or []}
    mirror = route.get("mirror")
    percent = (route.get("mirrorPercentage") or {}).get("value")
    return (route.get("name"), weights, (key(mirror), percent) if mirror else None)


def apply_merge_patch(target: Obj, patch: Mapping[str, Any]) -> Obj:
    """``target`` with an RFC 7386 merge patch applied (what the apiserver stores)."""
    out = copy.deepcopy(target)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = apply_merge_patch(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def sample(value: float) -> QueryResult:
    return QueryResult(query="", samples=(Sample(labels={}, value=value),))


class ScriptedMeasurer:
    """Answers every query with ``answer(promql)``; remembers what was asked."""

    def __init__(self, answer: Callable[[str], QueryOutcome]) -> None:
        self.answer = answer
        self.queries: list[str] = []

    def measure(
        self, promql: str, *, address: str | None, timeout: float, budget: float
    ) -> QueryOutcome:
        self.queries.append(promql)
        return self.answer(promql)
