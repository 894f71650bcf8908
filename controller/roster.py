"""The controller namespace's Leases, as a shard elector of N > 1 shards sees them.

Kept apart from ``controller.shards`` so that only the process that runs many shards
(``controller.operator``) imports it: the release controller, which always runs alone
(one shard), is granted no list or delete on Leases (its RBAC is derived from the code
its process imports).
"""

from __future__ import annotations

from typing import Protocol

from controller.kube import Obj


class RosterClient(Protocol):
    """What the roster needs of ``controller.kube.Kube``."""

    def list_leases(self, namespace: str, *, timeout: float | None = None) -> list[Obj]: ...

    def delete_lease(
        self, namespace: str, name: str, *, resource_version: str, timeout: float | None = None
    ) -> bool: ...


class LeaseRoster:
    """Lists the namespace's Leases in one request; deletes a membership Lease on leaving."""

    def __init__(self, kube: RosterClient) -> None:
        self.kube = kube

    def leases(self, namespace: str, *, timeout: float | None = None) -> list[Obj]:
        return self.kube.list_leases(namespace, timeout=timeout)

    def leave(
        self, namespace: str, name: str, *, resource_version: str, timeout: float | None = None
    ) -> bool:
        return self.kube.delete_lease(
            namespace, name, resource_version=resource_version, timeout=timeout
        )
