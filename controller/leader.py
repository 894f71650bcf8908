"""Leader election on a coordination.k8s.io/v1 Lease, so only one controller reconciles.

``deployctl controller`` runs a ``LeaderElector`` next to its informers (a standby keeps
its caches warm, so a takeover starts from a synced cache). ``on_started_leading``
starts the reconcile workers, ``on_stopped_leading`` stops them; both run on the
elector's thread and must return promptly (start/stop threads, do not reconcile there).

The algorithm is client-go's ``leaderelection`` package:

- Candidates GET the Lease every ``retry_period`` (with jitter). A lease is taken when it
  does not exist, has no holder (released), or has not changed for ``leaseDurationSeconds``
  as measured on *our* clock since we last saw it change: renewTime written by another
  machine is never compared with our wall clock, so clock skew cannot cause two leaders.
- Every write is an update with the resourceVersion we read (optimistic concurrency): of
  two candidates racing for a free lease, one gets 409 and stays a candidate.
- The leader renews every ``retry_period``. When renewals keep failing for
  ``renew_deadline`` (shorter than the lease duration, so we step down *before* anyone
  may take over), or the lease turns out to be held by someone else, leadership is lost:
  ``on_stopped_leading`` runs and the elector becomes a candidate again.
- ``stop()`` (graceful shutdown) calls ``on_stopped_leading`` first (workers drain), then
  releases the lease (empty holder, duration 1 s) so a standby takes over at its next
  retry instead of waiting out the lease.

Times in the Lease are MicroTime, written by ``micro_timestamp`` with 6 fractional
digits (the client library drops a zero fraction, which the apiserver rejects).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

import structlog

from controller.kube import Conflict, KubeError, NotFound, Obj
from controller.metrics import LEADER
from controller.names import VERSION_ANNOTATION
from controller.times import micro_timestamp
from controller.version import client_version

log = structlog.stdlib.get_logger(__name__)

_JITTER = 1.2  # candidates retry after retry_period * U(1, 1.2), as client-go does


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


def _noop() -> None:
    return None


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


class LeaderElector:
    """Campaign for, hold, and give up one Lease."""

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
        if not identity:
            raise ValueError("identity must not be empty")
        if not lease_duration > renew_deadline > retry_period * _JITTER > 0:
            raise ValueError(
                "need lease_duration > renew_deadline > 1.2 * retry_period > 0 "
                f"(got {lease_duration}, {renew_deadline}, {retry_period})"
            )
        self.kube = kube
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self._on_started = on_started_leading
        self._on_stopped = on_stopped_leading
        self._clock = clock
        self._utcnow = utcnow
        # A request may not outlive a retry period: a hung renew must not eat the deadline.
        self._timeout = max(1.0, retry_period)
        self._lock = threading.Lock()
        self._leading = False
        self._view = LeaseView()
        # The Lease as our last successful write returned it, while we hold it: renewals
        # write on top of it (its resourceVersion the precondition) without reading first.
        self._held: Obj | None = None
        self._last_contact: float | None = None
        self._stopped = threading.Event()
        self._release_on_stop = True
        self._thread: threading.Thread | None = None
        self._log = log.bind(lease=f"{namespace}/{name}", identity=identity)
        # Published for `deployctl version`: whoever may read the Lease sees the leader's.
        self._annotations = {VERSION_ANNOTATION: client_version()}

    # ------------------------------------------------------------------ state

    @property
    def is_leader(self) -> bool:
        with self._lock:
            return self._leading

    @property
    def leader_identity(self) -> str:
        """The holder as last observed ('' when unknown or released)."""
        with self._lock:
            return self._view.holder

    def healthy(self) -> bool:
        """For /readyz: the elector runs and reached the apiserver within a lease duration."""
        if self._thread is not None and not self._thread.is_alive():
            return False
        with self._lock:
            contact = self._last_contact
        return contact is not None and self._clock() - contact <= self.lease_duration

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> LeaderElector:
        if self._thread is None:
            self._thread = threading.Thread(target=self.run, name="leader-elector", daemon=True)
            self._thread.start()
        return self

    def stop(self, *, release: bool = True, timeout: float = 10.0) -> None:
        """Leave the election: stop leading (callbacks run), then release the lease."""
        self._release_on_stop = release
        self._stopped.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def run(self) -> None:
        """Campaign, lead, repeat; returns after ``stop()``."""
        try:
            while not self._stopped.is_set():
                if not self._try_acquire_or_renew():
                    self._stopped.wait(self.retry_period * random.uniform(1.0, _JITTER))
                    continue
                self._lead()
        finally:
            if self._release_on_stop:
                self.release()

    def _lead(self) -> None:
        with self._lock:
            self._leading = True
        LEADER.set(1)
        self._log.info("became leader")
        try:
            self._on_started()
            last_renew = self._clock()
            while not self._stopped.wait(self.retry_period):
                if self._try_acquire_or_renew():
                    last_renew = self._clock()
                    continue
                if self._held_by_other():
                    self._log.warning(
                        "lease taken by another candidate", holder=self.leader_identity
                    )
                    break
                if self._clock() - last_renew > self.renew_deadline:
                    self._log.warning("could not renew the lease in time; stepping down")
                    break
        finally:
            self._held = None
            with self._lock:
                self._leading = False
            LEADER.set(0)
            self._log.info("stopped leading")
            self._on_stopped()

    def release(self) -> bool:
        """Hand the lease back if we hold it, so a standby need not wait for expiry."""
        self._held = None
        try:
            lease = self.kube.get_lease(self.namespace, self.name, timeout=self._timeout)
        except KubeError:
            return False
        spec = lease.get("spec") or {}
        if spec.get("holderIdentity") != self.identity:
            return False
        released = released_spec(spec, wall=micro_timestamp(self._utcnow()))
        try:
            self.kube.update_lease(
                self.namespace,
                self.name,
                released,
                resource_version=lease["metadata"]["resourceVersion"],
                timeout=self._timeout,
            )
        except KubeError as exc:
            self._log.warning("could not release the lease", error=str(exc))
            return False
        self._log.info("released the lease")
        return True

    # ------------------------------------------------------------------ one attempt

    def _try_acquire_or_renew(self) -> bool:
        now = self._clock()
        wall = micro_timestamp(self._utcnow())
        fast = self._renew_held(wall, now)
        if fast is not None:
            return fast
        try:
            lease = self.kube.get_lease(self.namespace, self.name, timeout=self._timeout)
        except NotFound:
            return self._create(wall, now)
        except KubeError as exc:
            self._log.debug("reading the lease failed", error=str(exc))
            self._contact_if_answered(exc, now)
            return False
        self._contact(now)
        spec: dict[str, Any] = lease.get("spec") or {}
        self._observe(spec, now)
        holder = str(spec.get("holderIdentity") or "")
        if holder and holder != self.identity and not self._expired(spec, now):
            return False
        renewed = claimed_spec(
            spec, identity=self.identity, wall=wall, lease_duration=self.lease_duration
        )
        try:
            updated = self.kube.update_lease(
                self.namespace,
                self.name,
                renewed,
                resource_version=lease["metadata"]["resourceVersion"],
                annotations=self._annotations,
                timeout=self._timeout,
            )
        except KubeError as exc:
            # 409: another candidate wrote first; we re-read at the next retry.
            self._log.debug("writing the lease failed", error=str(exc))
            self._contact_if_answered(exc, now)
            return False
        self._contact(now)
        self._observe(updated.get("spec") or {}, now)
        self._held = updated
        return True

    def _renew_held(self, wall: str, now: float) -> bool | None:
        """The fast path of a renewal, as client-go takes it: write on top of the Lease our
        last write returned, with its resourceVersion as the precondition, and read only
        when that fails. Halves the requests of a held Lease (one write per retry period
        instead of a read and a write). Safe: if anyone else wrote the Lease since, the
        apiserver refuses the write (409) and the read-then-write path decides.

        True/False: renewed or not; None: nothing held, or a conflict (read and decide)."""
        held, self._held = self._held, None
        if held is None or (held.get("spec") or {}).get("holderIdentity") != self.identity:
            return None
        renewed = claimed_spec(
            held.get("spec") or {},
            identity=self.identity,
            wall=wall,
            lease_duration=self.lease_duration,
        )
        try:
            updated = self.kube.update_lease(
                self.namespace,
                self.name,
                renewed,
                resource_version=held["metadata"]["resourceVersion"],
                annotations=self._annotations,
                timeout=self._timeout,
            )
        except Conflict:
            return None
        except KubeError as exc:
            self._log.debug("renewing the lease failed", error=str(exc))
            self._contact_if_answered(exc, now)
            return False
        self._contact(now)
        self._observe(updated.get("spec") or {}, now)
        self._held = updated
        return True

    def _create(self, wall: str, now: float) -> bool:
        spec = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": max(1, round(self.lease_duration)),
            "acquireTime": wall,
            "renewTime": wall,
            "leaseTransitions": 0,
        }
        try:
            created = self.kube.create_lease(
                self.namespace,
                self.name,
                spec,
                annotations=self._annotations,
                timeout=self._timeout,
            )
        except KubeError as exc:
            self._log.debug("creating the lease failed", error=str(exc))
            self._contact_if_answered(exc, now)
            return False
        self._contact(now)
        self._observe(created.get("spec") or {}, now)
        self._held = created
        return True

    def _observe(self, spec: dict[str, Any], now: float) -> None:
        """Remember when (on our clock) the lease record last changed."""
        with self._lock:
            self._view.observe(spec, now)

    def _expired(self, spec: Mapping[str, Any], now: float) -> bool:
        with self._lock:
            return self._view.expired(now, self.lease_duration)

    def _held_by_other(self) -> bool:
        holder = self.leader_identity
        return bool(holder) and holder != self.identity

    def _contact_if_answered(self, exc: KubeError, now: float) -> None:
        if answered(exc):
            self._contact(now)

    def _contact(self, now: float) -> None:
        with self._lock:
            self._last_contact = now
