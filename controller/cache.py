"""The seams of a reconcile pass: what it reads cluster state from, and writes through.

- ``Cache``: an informer's cache, by key or by label. ``controller.informer.Informer`` is
  the implementation; the reconciler and the analysis providers (check Jobs, HTTP
  checks) depend only on this shape, so they never import the Kubernetes client and
  never GET per pass.
- ``KubeWrites``: the writes of one pass (ReplicaSets, Service selectors, the traffic
  routers' objects, the status, Events). ``controller.kube.Kube`` is the implementation.

The fast tests of the reconciler (``tests/engine``) put dict-backed caches and a
recording double at these two seams and compare the calls of one pass.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

Obj = dict[str, Any]


class Cache(Protocol):
    def get(self, namespace: str | None, name: str) -> Obj | None: ...
    def list(
        self, namespace: str | None = None, *, labels: Mapping[str, str] | None = None
    ) -> list[Obj]: ...


class RouterWrites(Protocol):
    """The writes traffic routers make (``controller.kube.Kube`` implements them)."""

    def patch_httproute(
        self, namespace: str, name: str, patch: Mapping[str, Any], *, resource_version: str
    ) -> Obj: ...

    def patch_virtualservice(
        self, namespace: str, name: str, patch: Mapping[str, Any], *, resource_version: str
    ) -> Obj: ...

    def patch_destinationrule(
        self, namespace: str, name: str, patch: Mapping[str, Any], *, resource_version: str
    ) -> Obj: ...

    def create_ingress(
        self, namespace: str, body: Mapping[str, Any], *, owner: Mapping[str, Any]
    ) -> Obj | None: ...

    def patch_ingress(
        self, namespace: str, name: str, patch: Mapping[str, Any], *, resource_version: str
    ) -> Obj: ...


class KubeWrites(RouterWrites, Protocol):
    """What a reconcile pass asks of ``controller.kube.Kube``: the routers' writes and
    its own."""

    def create_replicaset(
        self, namespace: str, body: Mapping[str, Any], *, owner: Mapping[str, Any]
    ) -> Obj: ...

    def scale_replicaset(
        self, namespace: str, name: str, replicas: int, *, resource_version: str | None = None
    ) -> Obj: ...

    def delete_replicaset(
        self,
        namespace: str,
        name: str,
        *,
        uid: str | None = None,
        propagation: str = "Background",
    ) -> bool: ...

    def patch_service_selector(
        self,
        namespace: str,
        name: str,
        selector: Mapping[str, str | None],
        *,
        resource_version: str | None = None,
    ) -> Obj: ...

    def create_service(
        self, namespace: str, body: Mapping[str, Any], *, owner: Mapping[str, Any]
    ) -> Obj | None: ...

    def delete_service(self, namespace: str, name: str, *, uid: str | None = None) -> bool: ...

    def scale_deployment(self, namespace: str, name: str, replicas: int) -> Obj: ...

    # A StatefulSet Rollout's writes (``controller.stateful``).

    def patch_statefulset_partition(
        self, namespace: str, name: str, partition: int, *, resource_version: str | None = None
    ) -> Obj: ...

    def patch_statefulset_template(
        self, current: Mapping[str, Any], template: Mapping[str, Any], *, partition: int | None
    ) -> Obj: ...

    def get_statefulset_template(self, namespace: str, revision: str) -> Obj: ...

    def delete_pod(self, namespace: str, name: str, *, uid: str) -> bool: ...

    # A DaemonSet Rollout's writes (``controller.daemon``); its stable template is read
    # from its ControllerRevision as a StatefulSet's is (``get_statefulset_template``).

    def patch_daemonset_update_strategy(
        self,
        namespace: str,
        name: str,
        strategy: Mapping[str, Any],
        *,
        resource_version: str | None = None,
        annotations: Mapping[str, str | None] | None = None,
    ) -> Obj: ...

    def patch_daemonset_template(
        self,
        current: Mapping[str, Any],
        template: Mapping[str, Any],
        *,
        hold: Mapping[str, str] | None = None,
    ) -> Obj: ...

    # The traffic routers' writes (``controller.routers.base.RouterWrites``).

    def patch_rollout_status(
        self,
        namespace: str,
        name: str,
        status: Mapping[str, Any],
        *,
        resource_version: str | None = None,
    ) -> Obj: ...

    def record_event(
        self,
        involved: Mapping[str, Any],
        *,
        reason: str,
        message: str,
        type: str = "Normal",
    ) -> Obj: ...


class UnionCache:
    """Several caches read as one (the same kind watched in two namespaces): ``get``
    answers from the first that has the object, ``list`` concatenates."""

    def __init__(self, *caches: Cache) -> None:
        self.caches = caches

    def get(self, namespace: str | None, name: str) -> Obj | None:
        for cache in self.caches:
            found = cache.get(namespace, name)
            if found is not None:
                return found
        return None

    def list(
        self, namespace: str | None = None, *, labels: Mapping[str, str] | None = None
    ) -> list[Obj]:
        return [obj for cache in self.caches for obj in cache.list(namespace, labels=labels)]
