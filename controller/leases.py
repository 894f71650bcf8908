"""The Lease, as every elector in the controller reads and writes it.

A coordination.k8s.io/v1 Lease says who holds something (the controller's shards, the
release controller's leadership) until when. The rules here are client-go's
``leaderelection`` package's, shared by ``controller.shards.ShardElector`` (which holds
one Lease per shard, and so the single leader's one) and its callers:

- expiry is judged on *our* clock from the moment we saw a record change plus its
  duration (``LeaseView``), never from the renewTime another machine wrote, so clock
  skew cannot make two holders;
- a claim or renewal (``claimed_spec``) writes with the resourceVersion it read
  (optimistic concurrency: of two candidates racing for a free Lease, one gets 409);
- a hand-back (``released_spec``) leaves no holder, so a standby takes it at once.

Times in the Lease are MicroTime, written by ``controller.times.micro_timestamp`` with 6
fractional digits (the client library drops a zero fraction, which the apiserver rejects).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from controller.kube import KubeError, Obj


class LeaseWrites(Protocol):
    """The Lease writes both electors (this one and ``controller.shards``) make."""

    def create_lease(
        self,
        namespace: str,
        name: str,
        spec: Mapping[str, Any],
        *,
        annotations: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> Obj: ...

    def update_lease(
        self,
        namespace: str,
        name: str,
        spec: Mapping[str, Any],
        *,
        resource_version: str,
        annotations: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> Obj: ...


class LeaseClient(LeaseWrites, Protocol):
    """What the elector needs of ``controller.kube.Kube``."""

    def get_lease(self, namespace: str, name: str, *, timeout: float | None = None) -> Obj: ...


class Roster(Protocol):
    """What N > 1 shards add to a Lease client: the namespace's Leases in one request
    (membership and shards together), and leaving by deleting our membership Lease.
    ``controller.roster.LeaseRoster`` is the one the controller uses; a one-shard elector
    has none, so a process that only ever runs alone needs no list or delete on Leases."""

    def leases(self, namespace: str, *, timeout: float | None = None) -> list[Obj]: ...

    def leave(
        self, namespace: str, name: str, *, resource_version: str, timeout: float | None = None
    ) -> bool: ...


class LeaseView:
    """One Lease as we last saw it, and when (on our clock) its record last changed.

    Expiry is judged from that moment plus the Lease's duration, never from the
    renewTime another machine wrote, so clock skew cannot make two holders. The leader
    elector keeps one; the shard elector (``controller.shards``) one per shard and member.
    """

    def __init__(self) -> None:
        self.spec: dict[str, Any] | None = None
        self.observed_at = 0.0

    def observe(self, spec: Mapping[str, Any], now: float) -> None:
        if spec != self.spec:
            self.spec = dict(spec)
            self.observed_at = now

    @property
    def holder(self) -> str:
        return str((self.spec or {}).get("holderIdentity") or "")

    def expired(self, now: float, default_duration: float) -> bool:
        duration = float((self.spec or {}).get("leaseDurationSeconds") or default_duration)
        return self.observed_at + duration <= now

    def free_for(self, identity: str, now: float, default_duration: float) -> bool:
        """Whether ``identity`` may write itself in: unheld, its own, or expired."""
        holder = self.holder
        return not holder or holder == identity or self.expired(now, default_duration)


def claimed_spec(
    spec: Mapping[str, Any], *, identity: str, wall: str, lease_duration: float
) -> dict[str, Any]:
    """The spec that renews ``spec`` for ``identity``, or takes it over (a transition)."""
    holder = str(spec.get("holderIdentity") or "")
    transitions = int(spec.get("leaseTransitions") or 0)
    return {
        "holderIdentity": identity,
        "leaseDurationSeconds": max(1, round(lease_duration)),
        "acquireTime": spec.get("acquireTime") if holder == identity else wall,
        "renewTime": wall,
        "leaseTransitions": transitions if holder == identity else transitions + 1,
    }


def released_spec(spec: Mapping[str, Any], *, wall: str) -> dict[str, Any]:
    """The spec that hands a Lease back: no holder, and a 1 s duration for old readers."""
    return {
        "holderIdentity": "",
        "leaseDurationSeconds": 1,
        "acquireTime": wall,
        "renewTime": wall,
        "leaseTransitions": int(spec.get("leaseTransitions") or 0),
    }


def answered(exc: KubeError) -> bool:
    """Whether a failed request still shows a working apiserver: a 409 from a lost race
    is the apiserver working normally; 5xx/429 and connection failures are not."""
    return exc.code is not None and exc.code < 500 and exc.code != 429
