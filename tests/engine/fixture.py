"""A reconciler wired to dict caches and a recording ``Kube``, with a frozen clock.

``Fixture`` seeds a Rollout (and its Services, HTTPRoute, templates, policies), runs
one ``Reconciler.reconcile`` with ``run()`` and returns the pass's calls. ``settle()``
then plays what those writes lead to in the caches (the status stored, ReplicaSets
created or scaled with their pods, every one Ready, selectors and weights set), so a
test reaches a later state through the controller's own passes instead of hand-built
status. A revision listed in ``unavailable`` never gets a Ready pod.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from controller.analysis.run import AnalysisEngine
from controller.analysis.values import QueryOutcome
from controller.api import Rollout
from controller.api.revision import replicaset_name, template_hash
from controller.api.rollout import PodTemplateSpec
from controller.names import REVISION_LABEL, ROLLOUT_LABEL
from controller.policy_gate import PolicyGate
from controller.reconciler import Caches, Reconciler, ReconcileResult
from controller.times import timestamp
from tests.engine.doubles import (
    Call,
    DictCache,
    RecordingKube,
    ScriptedMeasurer,
    apply_merge_patch,
    sample,
)

Obj = dict[str, Any]
NS = "shop"
NAME = "checkout"
T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
STABLE_SVC = "checkout"
CANARY_SVC = "checkout-canary"
ROUTE = "checkout-route"


VS = "checkout-vs"
DR = "checkout-dr"
INGRESS = "checkout-ingress"
CANARY_INGRESS = f"{NAME}-{INGRESS}-canary"
ROUTERS: dict[str, Obj] = {
    "gatewayAPI": {"gatewayAPI": {"httpRoute": ROUTE}},
    "istio": {"istio": {"virtualService": {"name": VS}}},
    "istio-subsets": {
        "istio": {
            "virtualService": {"name": VS, "routes": ["primary"]},
            "destinationRule": {
                "name": DR,
                "canarySubsetName": "canary",
                "stableSubsetName": "stable",
            },
        }
    },
    "nginx": {"nginx": {"stableIngress": INGRESS}},
}


def canary_spec(
    steps: list[Obj],
    *,
    routed: bool | str = False,
    managed: tuple[str, ...] = (),
    **extra: Any,
) -> Obj:
    """A canary strategy; ``routed`` True is Gateway API, or names a key of ROUTERS."""
    canary: Obj = {"stableService": STABLE_SVC, "canaryService": CANARY_SVC, "steps": steps}
    if routed:
        routing = dict(ROUTERS["gatewayAPI" if routed is True else str(routed)])
        if managed:
            routing["managedRoutes"] = [{"name": name} for name in managed]
        canary["trafficRouting"] = routing
        if routed == "istio-subsets":
            del canary["stableService"], canary["canaryService"]
    return {"canary": {**canary, **extra}}


def virtualservice_object(*, subsets: bool = False) -> Obj:
    if subsets:
        destinations = [
            {"destination": {"host": STABLE_SVC, "subset": "stable"}, "weight": 100},
            {"destination": {"host": STABLE_SVC, "subset": "canary"}, "weight": 0},
        ]
    else:
        destinations = [
            {"destination": {"host": STABLE_SVC}, "weight": 100},
            {"destination": {"host": CANARY_SVC}, "weight": 0},
        ]
    return {
        "metadata": {
            "name": VS,
            "namespace": NS,
            "resourceVersion": "1",
            "annotations": dict(CONSENT),
        },
        "spec": {"hosts": ["checkout"], "http": [{"name": "primary", "route": destinations}]},
    }


def destinationrule_object() -> Obj:
    return {
        "metadata": {
            "name": DR,
            "namespace": NS,
            "resourceVersion": "1",
            "annotations": dict(CONSENT),
        },
        "spec": {
            "host": STABLE_SVC,
            "subsets": [
                {"name": "stable", "labels": {"app": NAME}},
                {"name": "canary", "labels": {"app": NAME}},
            ],
        },
    }


def ingress_object() -> Obj:
    backend = {"service": {"name": STABLE_SVC, "port": {"number": 80}}}
    return {
        "metadata": {
            "name": INGRESS,
            "namespace": NS,
            "resourceVersion": "1",
            "annotations": dict(CONSENT),
        },
        "spec": {
            "ingressClassName": "nginx",
            "rules": [
                {
                    "host": "shop.example",
                    "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]},
                }
            ],
        },
    }


def rollout_object(
    strategy: Obj, *, image: str = "shop/checkout:1", replicas: int = 4, **spec: Any
) -> Obj:
    return {
        "apiVersion": "deployctl.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {
            "name": NAME,
            "namespace": NS,
            "uid": "rollout-uid",
            "generation": 1,
            "resourceVersion": "1",
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": NAME}},
            "template": {
                "metadata": {"labels": {"app": NAME}},
                "spec": {"containers": [{"name": "app", "image": image}]},
            },
            "strategy": strategy,
            **spec,
        },
    }


# Shared objects consent to the Rollout (controller.tenancy); without it nothing is written.
CONSENT = {"deployctl.io/rollout": NAME}


def service_object(name: str, revision: str | None = None) -> Obj:
    selector = {"app": NAME, **({REVISION_LABEL: revision} if revision else {})}
    return {
        "metadata": {"name": name, "namespace": NS, "annotations": dict(CONSENT)},
        "spec": {"selector": selector},
    }


def route_object(weights: Mapping[str, int] | None = None) -> Obj:
    weights = weights or {STABLE_SVC: 100, CANARY_SVC: 0}
    return {
        "metadata": {
            "name": ROUTE,
            "namespace": NS,
            "resourceVersion": "1",
            "annotations": dict(CONSENT),
        },
        "spec": {
            "rules": [{"backendRefs": [{"name": s, "weight": w} for s, w in weights.items()]}]
        },
    }


def no_data(promql: str) -> QueryOutcome:
    return sample(0.0)


class Fixture:
    """One Rollout and what its controller sees (see the module docstring)."""

    def __init__(
        self,
        rollout: Obj,
        *,
        services: tuple[str, ...] = (STABLE_SVC, CANARY_SVC),
        route: Obj | None = None,
        virtualservices: tuple[Obj, ...] | None = None,
        destinationrules: tuple[Obj, ...] | None = None,
        ingresses: tuple[Obj, ...] = (),
        templates: tuple[Obj, ...] = (),
        policies: tuple[Obj, ...] | None = None,
        deployments: tuple[Obj, ...] = (),
        answer: Any = no_data,
    ) -> None:
        self.now = T0
        self.kube = RecordingKube()
        self.measurer = ScriptedMeasurer(answer)
        self.rollouts = DictCache(rollout)
        self.templates = DictCache(*templates)
        self.replicasets = DictCache()
        self.pods = DictCache()
        self.services = DictCache(*(service_object(s) for s in services))
        self.routes = DictCache(route) if route is not None else None
        self.policies = DictCache(*policies) if policies is not None else None
        self.virtualservices = DictCache(*virtualservices) if virtualservices is not None else None
        self.destinationrules = (
            DictCache(*destinationrules) if destinationrules is not None else None
        )
        self.ingresses = DictCache(*ingresses)
        self.deployments = DictCache(*deployments)
        self.unavailable: set[str] = set()
        self._uids = itertools.count(1)
        self._versions = itertools.count(2)
        self.reconciler = Reconciler(
            self.kube,
            Caches(
                rollouts=self.rollouts,
                templates=self.templates,
                replicasets=self.replicasets,
                pods=self.pods,
                services=self.services,
                routes=self.routes,
                policies=self.policies,
                virtualservices=self.virtualservices,
                destinationrules=self.destinationrules,
                ingresses=self.ingresses,
                deployments=self.deployments,
            ),
            engine=AnalysisEngine(self.measurer),
            clock=lambda: self.now,
            policy=(
                PolicyGate(
                    policies=self.policies, rollouts=self.rollouts, controller_namespace="ops"
                )
                if self.policies is not None
                else None
            ),
        )

    # ------------------------------------------------------------------ reading

    @property
    def rollout(self) -> Obj:
        found = self.rollouts.get(NS, NAME)
        assert found is not None
        return found

    @property
    def status(self) -> Obj:
        return dict(self.rollout.get("status") or {})

    @property
    def revision(self) -> str:
        """The template hash of the Rollout's current spec (or its Deployment's)."""
        spec = self.rollout["spec"]
        if "workloadRef" in spec:
            deployment = self.deployments.get(NS, spec["workloadRef"]["name"])
            assert deployment is not None
            return template_hash(PodTemplateSpec.model_validate(deployment["spec"]["template"]))
        return template_hash(Rollout.model_validate(self.rollout).spec.pod_template)

    def rs_name(self, revision: str) -> str:
        return replicaset_name(NAME, revision)

    # ------------------------------------------------------------------ acting

    def run(self) -> tuple[ReconcileResult, list[Call]]:
        """One pass; the calls it made, in order."""
        self.kube.calls.clear()
        self.kube.status_patches.clear()
        self.kube.messages.clear()
        self.kube.resource_versions.clear()
        self.kube.router_writes.clear()
        self.kube.services_created.clear()
        result = self.reconciler.reconcile(f"{NS}/{NAME}")
        return result, list(self.kube.calls)

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    def edit_spec(self, **changes: Any) -> None:
        """Change the Rollout's spec (a new generation), e.g. ``image=...``."""
        rollout = self.rollout
        if "image" in changes:
            containers = rollout["spec"]["template"]["spec"]["containers"]
            containers[0]["image"] = changes.pop("image")
        rollout["spec"].update(changes)
        rollout["metadata"]["generation"] += 1
        rollout["metadata"]["resourceVersion"] = str(next(self._versions))
        self.rollouts.put(rollout)

    def annotate(self, **annotations: str) -> None:
        rollout = self.rollout
        rollout["metadata"].setdefault("annotations", {}).update(annotations)
        rollout["metadata"]["resourceVersion"] = str(next(self._versions))
        self.rollouts.put(rollout)

    def add_replicaset(self, revision: str, *, replicas: int, created: datetime) -> None:
        """An existing ReplicaSet of this Rollout (all its pods available)."""
        labels = {"app": NAME, ROLLOUT_LABEL: NAME, REVISION_LABEL: revision}
        self.replicasets.put(
            {
                "metadata": {
                    "name": self.rs_name(revision),
                    "namespace": NS,
                    "uid": f"rs-uid-{revision}",
                    "labels": labels,
                    "creationTimestamp": timestamp(created),
                },
                "spec": {"replicas": replicas},
                "status": self._rs_status(revision, replicas),
            }
        )
        self._pods_for(revision, replicas)

    def settle(self) -> None:
        """What the last pass's writes lead to, as the caches would then show it."""
        patches = iter(self.kube.status_patches)
        created_services = list(self.kube.services_created)
        for call in self.kube.calls:
            kind = call[0]
            if kind == "status":
                rollout = self.rollout
                rollout["status"] = apply_merge_patch(rollout.get("status") or {}, next(patches))
                rollout["metadata"]["resourceVersion"] = str(next(self._versions))
                self.rollouts.put(rollout)
            elif kind == "create":
                _, name, replicas = call
                self.add_replicaset(
                    name.removeprefix(f"{NAME}-"), replicas=replicas, created=self.now
                )
            elif kind == "scale":
                _, name, replicas = call
                rs = self.replicasets.get(NS, name)
                assert rs is not None
                rs["spec"]["replicas"] = replicas
                rs["status"] = self._rs_status(name.removeprefix(f"{NAME}-"), replicas)
                self.replicasets.put(rs)
                self._pods_for(name.removeprefix(f"{NAME}-"), replicas)
            elif kind == "delete":
                self.replicasets.objects.pop((NS, call[1]))
                self._pods_for(call[1].removeprefix(f"{NAME}-"), 0)
            elif kind == "scale-deployment":
                _, name, replicas = call
                deployment = self.deployments.get(NS, name)
                assert deployment is not None
                deployment["spec"]["replicas"] = replicas
                deployment["metadata"]["generation"] += 1
                self.deployments.put(deployment)
            elif kind == "create-service":
                created = next(b for b in created_services if b["metadata"]["name"] == call[1])
                uid = f"svc-uid-{next(self._uids)}"
                self.services.put({**created, "metadata": {**created["metadata"], "uid": uid}})
            elif kind == "delete-service":
                self.services.objects.pop((NS, call[1]), None)
            elif kind == "select":
                _, name, revision = call
                service = self.services.get(NS, name)
                assert service is not None
                service["spec"]["selector"][REVISION_LABEL] = revision
                self.services.put(service)
        for kind, name, change in self.kube.router_writes:
            self._settle_router(kind, name, change)

    def _settle_router(self, kind: str, name: str, change: Obj) -> None:
        """A router's write as the caches then show it (merge patch applied, new RV)."""
        caches = {
            "HTTPRoute": self.routes,
            "VirtualService": self.virtualservices,
            "DestinationRule": self.destinationrules,
            "Ingress": self.ingresses,
            "Ingress+": self.ingresses,
        }
        cache = caches[kind]
        assert cache is not None
        if kind == "Ingress+":
            obj = {**change, "metadata": {**change["metadata"], "resourceVersion": "1"}}
        else:
            current = cache.get(NS, name)
            assert current is not None
            obj = apply_merge_patch(current, change)
            obj["metadata"]["resourceVersion"] = str(next(self._versions))
        cache.put(obj)

    def pass_and_settle(self) -> list[Call]:
        """``run()`` then ``settle()``: one pass whose writes take effect."""
        _result, calls = self.run()
        self.settle()
        return calls

    def ready(self, revision: str) -> None:
        """The revision's pods become Ready (it is no longer ``unavailable``)."""
        self.unavailable.discard(revision)
        rs = self.replicasets.get(NS, self.rs_name(revision))
        assert rs is not None
        self._pods_for(revision, int(rs["spec"]["replicas"]))

    def _pods_for(self, revision: str, replicas: int) -> None:
        """The revision's pods as the ReplicaSet controller and the kubelet leave them:
        ``replicas`` of them, Ready unless the revision is ``unavailable`` (the
        controller counts pods, not ReplicaSet status)."""
        prefix = f"{self.rs_name(revision)}-"
        # By label, not name: a baseline's pod names start with its stable's prefix.
        for key in [
            k
            for k, pod in self.pods.objects.items()
            if pod["metadata"]["labels"].get(REVISION_LABEL) == revision
        ]:
            self.pods.objects.pop(key)
        ready = "False" if revision in self.unavailable else "True"
        for index in range(replicas):
            self.pods.put(
                {
                    "metadata": {
                        "name": f"{prefix}{index}",
                        "namespace": NS,
                        "labels": {"app": NAME, ROLLOUT_LABEL: NAME, REVISION_LABEL: revision},
                    },
                    "status": {
                        "phase": "Running",
                        "conditions": [
                            {
                                "type": "Ready",
                                "status": ready,
                                "lastTransitionTime": "2026-03-01T11:00:00Z",
                            }
                        ],
                    },
                }
            )

    def _rs_status(self, revision: str, replicas: int) -> Obj:
        ready = 0 if revision in self.unavailable else replicas
        return {
            "replicas": replicas,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "observedGeneration": 1,
        }
