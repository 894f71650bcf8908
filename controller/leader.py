"""Leader election: one active process among replicas, as the one-shard case of shards.

The release controller (and any process that must run alone) holds one Lease through
``LeaderElector``: the Rollout controller's ``ShardElector`` with a single shard, whose
Lease is ``name``. The algorithm is client-go's ``leaderelection`` (see
``controller.shards`` and ``controller.leases``): a standby reads the Lease every
``retry_period`` (with jitter) and takes it once it is free (missing, released, or
unchanged for its duration on *our* clock); the leader renews on top of its last write;
when renewals keep failing for ``renew_deadline`` (shorter than the duration, so we step
down *before* anyone may take over) or someone else holds it, leadership is lost.

What this adds to the shard elector is the leader's callbacks: ``on_started_leading``
when the Lease is won, ``on_stopped_leading`` when it is lost or on ``stop()``. They run
on the elector's thread (``stop()``'s caller for the last one) and must return promptly
(start/stop threads, do not reconcile there). ``stop()`` (graceful shutdown) calls
``on_stopped_leading`` first (workers drain), then releases the Lease (empty holder) so a
standby takes over at its next retry instead of waiting out the Lease.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

import structlog

from controller.leases import LeaseClient
from controller.shards import ShardElector

log = structlog.stdlib.get_logger(__name__)


def _noop() -> None:
    return None


class LeaderElector:
    """Campaign for, hold, and give up one Lease (a one-shard ``ShardElector``)."""

    def __init__(
        self,
        kube: LeaseClient,
        *,
        namespace: str,
        name: str,
        identity: str,
        lease_duration: float = 15.0,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
        on_started_leading: Callable[[], None] = _noop,
        on_stopped_leading: Callable[[], None] = _noop,
        clock: Callable[[], float] = time.monotonic,
        utcnow: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._on_started = on_started_leading
        self._on_stopped = on_stopped_leading
        self._lock = threading.Lock()
        self._leading = False
        self._shard = ShardElector(
            kube,
            namespace=namespace,
            name=name,
            identity=identity,
            shards=1,
            lease_duration=lease_duration,
            renew_deadline=renew_deadline,
            retry_period=retry_period,
            on_gained=lambda _shards: self._started(),
            on_lost=lambda _shards: self._stopped(),
            clock=clock,
            utcnow=utcnow,
        )
        self.identity = identity
        self._log = log.bind(lease=f"{namespace}/{name}", identity=identity)

    @property
    def is_leader(self) -> bool:
        with self._lock:
            leading = self._leading
        return leading and self._shard.owns(0)

    @property
    def leader_identity(self) -> str:
        """The holder as last observed ('' when unknown or released)."""
        return self._shard.holder(0)

    def healthy(self) -> bool:
        """For /readyz: the elector runs and reached the apiserver within a lease duration."""
        return self._shard.healthy()

    def start(self) -> LeaderElector:
        self._shard.start()
        return self

    def stop(self, *, release: bool = True, timeout: float = 10.0) -> None:
        """Leave the election: stop leading (callbacks run), then release the Lease."""
        self._shard.stop(release=False, timeout=timeout)
        self._stopped()
        if release:
            self._shard.release_all()

    def _started(self) -> None:
        with self._lock:
            if self._leading:
                return
            self._leading = True
        self._log.info("became leader")
        self._on_started()

    def _stopped(self) -> None:
        with self._lock:
            if not self._leading:
                return
            self._leading = False
        self._log.info("stopped leading")
        self._on_stopped()
