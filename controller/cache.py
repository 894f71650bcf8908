"""What the controller reads cluster state from: an informer's cache, by key or by label.

``controller.informer.Informer`` is the implementation; the reconciler and the analysis
providers (check Jobs, HTTP checks) depend only on this shape, so they never import the
Kubernetes client and never GET per pass.
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
