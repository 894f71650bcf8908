"""Shards owned through Leases: which Rollouts this replica may act on, and when.

``deployctl controller --shards N`` runs one ``ShardElector`` per replica; N = 1 (the
default) is the single active controller of old, as the one-shard case of the same
elector, not a second implementation. The Lease rules are ``controller.leases``'
(``LeaseView``, ``claimed_spec``, ``released_spec``: expiry judged on our own clock from
the moment we saw a record change, optimistic concurrency on every write). All Leases
live in the controller's namespace:

- ``<name>`` (shard 0: the leader Lease's name, so the CLI's check that a controller runs,
  ``deployctl version`` and ``deployctl_leader`` read it unchanged) and ``<name>-shard-<i>``
  for i in [1, N): held by the replica that owns the shard, with the version annotation;
- ``<name>-member-<id>`` (N > 1 only): held by each live replica (holder = its identity),
  renewed every retry period; deleted when the replica stops.

With N > 1, every ``retry_period`` one ``tick`` lists the namespace's Leases (one
request), renews the membership Lease, computes the assignment (``controller.sharding.
assign``: the live members are those whose membership Lease has not expired, this
replica included) and:

- renews the shard Leases it holds and is assigned;
- stops acting on a held shard it is no longer assigned, and releases that Lease once no
  pass of the shard is in flight (``quiescent``), so the new owner takes it at once;
- claims an assigned shard whose Lease is free: missing, released, or expired by our
  clock (a dead holder's Lease is taken only after its whole duration).

With one shard there is nothing to assign: every replica is a candidate for the one
Lease, and a round costs what client-go's leader election costs: the holder renews on top
of the Lease its last write returned (one write; a read only if that write is refused),
a standby reads the Lease (one read) and takes it once free.

Fencing: a replica acts on a shard (``owns``) only while less than ``renew_deadline``
has passed since it *sent* the last successful write of that Lease. Another replica may
take the Lease only ``lease_duration`` after it *saw* that write, which is later; the
gap ``lease_duration - renew_deadline`` is the slack a pass that began in time may use
to finish. ``owns`` reads the clock itself, so a replica that cannot reach the
apiserver (or whose elector thread is stuck) stops acting at its deadline all the same.
A replica that loses a shard this way stays a candidate with warm caches.

``stop()`` (SIGTERM) stops acting on every shard, releases the shard Leases and deletes
the membership Lease, so the others take over at their next round.
"""

from __future__ import annotations

import hashlib
import random
import re
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

import structlog

from controller.kube import Conflict, KubeError, NotFound, Obj
from controller.leases import (
    LeaseClient,
    LeaseView,
    Roster,
    answered,
    claimed_spec,
    released_spec,
)
from controller.metrics import LEADER, SHARD_HELD, SHARDS_OWNED
from controller.names import VERSION_ANNOTATION
from controller.sharding import assign, owned_by, shard_of
from controller.times import micro_timestamp
from controller.version import client_version

log = structlog.stdlib.get_logger(__name__)

_JITTER = 1.2  # as the leader elector: retry after retry_period * U(1, 1.2)


def member_lease_name(name: str, identity: str) -> str:
    """A valid object name for ``identity``'s membership Lease (identities such as
    ``host_pid`` are not names; a short hash keeps two that sanitise alike apart)."""
    cleaned = re.sub(r"[^a-z0-9-]+", "-", identity.lower()).strip("-")[:40] or "member"
    suffix = hashlib.blake2b(identity.encode(), digest_size=4).hexdigest()
    return f"{name}-member-{cleaned}-{suffix}"


def shard_lease_name(name: str, shard: int) -> str:
    """Shard 0's Lease is the leader Lease's name: the CLI's "is a controller running?"
    and ``deployctl version`` read it, whether one leader or many shards run."""
    return name if shard == 0 else f"{name}-shard-{shard}"


def _noop_shards(_shards: frozenset[int]) -> None:
    return None


__all__ = ["ShardElector", "member_lease_name", "shard_lease_name"]


class ShardElector:
    """Hold this replica's share of N shard Leases; say which shards it may act on."""

    def __init__(
        self,
        kube: LeaseClient,
        *,
        namespace: str,
        name: str,
        identity: str,
        shards: int,
        roster: Roster | None = None,
        lease_duration: float = 15.0,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
        on_gained: Callable[[frozenset[int]], None] = _noop_shards,
        on_lost: Callable[[frozenset[int]], None] = _noop_shards,
        quiescent: Callable[[int], bool] = lambda _shard: True,
        clock: Callable[[], float] = time.monotonic,
        utcnow: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if not identity:
            raise ValueError("identity must not be empty")
        if shards < 1:
            raise ValueError(f"need at least one shard (got {shards})")
        if shards > 1 and roster is None:
            raise ValueError("more than one shard needs a roster of the namespace's Leases")
        if not lease_duration > renew_deadline > retry_period * _JITTER > 0:
            raise ValueError(
                "need lease_duration > renew_deadline > 1.2 * retry_period > 0 "
                f"(got {lease_duration}, {renew_deadline}, {retry_period})"
            )
        self.kube = kube
        self.roster = roster
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.shards = shards
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self._on_gained = on_gained
        self._on_lost = on_lost
        self._quiescent = quiescent
        self._clock = clock
        self._utcnow = utcnow
        self._timeout = max(1.0, retry_period)
        self.member_lease = member_lease_name(name, identity)
        self._shard_prefix = f"{name}-shard-"
        self._member_prefix = f"{name}-member-"
        self._lock = threading.Lock()
        # shard -> when (our clock, before sending) its last successful write left.
        self._renewed: dict[int, float] = {}
        # Held shards we are no longer assigned: renewed, never acted on, released
        # once no pass of theirs is in flight.
        self._leaving: set[int] = set()
        self._views: dict[str, LeaseView] = {}
        # One shard: no membership (whoever holds the one Lease acts), and renewals write on
        # top of the Lease our last write returned, without reading it first.
        self._single = shards == 1
        self._written: dict[str, Obj] = {}
        # Shards handed back in the current round (not lost: we let them go).
        self._handed_back: set[int] = set()
        self._members: frozenset[str] = frozenset()
        self._last_contact: float | None = None
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._log = log.bind(lease=f"{namespace}/{name}", identity=identity)
        # Published for `deployctl version`, as the leader does on its Lease.
        self._annotations = {VERSION_ANNOTATION: client_version()}

    # ------------------------------------------------------------------ what we own

    def owns(self, shard: int) -> bool:
        """Whether we may act on ``shard`` now: assigned, held, and within the deadline."""
        with self._lock:
            renewed = self._renewed.get(shard)
            leaving = shard in self._leaving
        return renewed is not None and not leaving and self._clock() - renewed < self.renew_deadline

    def owns_key(self, key: str) -> bool:
        """Whether we may act on the Rollout ``namespace/name``."""
        return self.owns(shard_of(key, self.shards))

    def shard_of(self, key: str) -> int:
        return shard_of(key, self.shards)

    def owned(self) -> frozenset[int]:
        return frozenset(s for s in range(self.shards) if self.owns(s))

    def holder(self, shard: int) -> str:
        """Who holds ``shard``'s Lease as last seen ('' when unknown or released)."""
        with self._lock:
            view = self._views.get(shard_lease_name(self.name, shard))
        return view.holder if view is not None else ""

    def members(self) -> frozenset[str]:
        """The live members as last seen (this replica included)."""
        with self._lock:
            return self._members

    def healthy(self) -> bool:
        """For /readyz: the elector runs and reached the apiserver within a lease duration."""
        if self._thread is not None and not self._thread.is_alive():
            return False
        with self._lock:
            contact = self._last_contact
        return contact is not None and self._clock() - contact <= self.lease_duration

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> ShardElector:
        if self._thread is None:
            self._thread = threading.Thread(target=self.run, name="shard-elector", daemon=True)
            self._thread.start()
        return self

    def stop(self, *, release: bool = True, timeout: float = 10.0) -> None:
        """Stop acting on every shard; with ``release``, hand the Leases back."""
        self._stopped.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        with self._lock:
            self._leaving |= set(self._renewed)
        self._publish()
        if release:
            self.release_all()

    def run(self) -> None:
        while not self._stopped.is_set():
            try:
                self.tick()
            except Exception:  # never let one bad answer end the elector
                self._log.exception("shard election round failed")
            self._stopped.wait(self.retry_period * random.uniform(1.0, _JITTER))

    # ------------------------------------------------------------------ one round

    def tick(self) -> None:
        """One round: read the Leases, renew, release, claim (see the module docstring);
        ``on_lost`` hears of the shards we were acting on and no longer hold."""
        with self._lock:
            acting_before = set(self._renewed) - self._leaving
        self._handed_back = set()
        if self._single:
            self._tick_one()
        else:
            self._tick_many()
        with self._lock:
            acting_after = set(self._renewed) - self._leaving
        lost = acting_before - acting_after - self._handed_back
        if lost:
            self._log.warning("stopped acting on shards", lost=sorted(lost))
            self._on_lost(frozenset(lost))

    def _tick_one(self) -> None:
        """The one-shard round, the single leader's: one request while the Lease is held
        (a renewal on top of our last write; read only if it is refused), one read while
        another holds it."""
        now = self._clock()
        wall = micro_timestamp(self._utcnow())
        name = shard_lease_name(self.name, 0)
        acting = self.owns(0)
        claimed = self._renew_written(name, wall, now)
        if claimed is None:
            try:
                lease: Obj | None = self.kube.get_lease(self.namespace, name, timeout=self._timeout)
            except NotFound:
                lease = None
            except KubeError as exc:
                self._log.debug("reading the lease failed", error=str(exc))
                if answered(exc):
                    self._contact(now)
                lease = None
                claimed = False
            else:
                self._contact(now)
                if lease is not None:
                    self._views.setdefault(name, LeaseView()).observe(lease.get("spec") or {}, now)
            if claimed is None:
                claimed = self._claim(0, lease, wall, now)
        self._expire_overdue()
        self._publish()
        if claimed and not acting:
            self._log.info("acting on shards", gained=[0], owned=sorted(self.owned()))
            self._on_gained(frozenset({0}))

    def _renew_written(self, name: str, wall: str, now: float) -> bool | None:
        """The fast path of a renewal, as client-go takes it: write on top of the Lease
        our last write returned, its resourceVersion the precondition. Safe: if anyone
        wrote the Lease since, the apiserver refuses (409) and a read decides.

        True/False: renewed or not; None: nothing held, or a conflict (read and decide)."""
        written = self._written.pop(name, None)
        with self._lock:
            held = 0 in self._renewed
        if written is None or not held:
            return None
        try:
            if not self._write(name, written, wall, now, conflict_raises=True):
                return False
        except Conflict:
            return None
        with self._lock:
            self._renewed[0] = now
            self._leaving.discard(0)
        return True

    def _tick_many(self) -> None:
        """The round of N > 1 shards: membership, assignment, claims and hand-backs."""
        now = self._clock()
        wall = micro_timestamp(self._utcnow())
        try:
            leases = self._roster().leases(self.namespace, timeout=self._timeout)
        except KubeError as exc:
            self._log.debug("listing the leases failed", error=str(exc))
            if answered(exc):
                self._contact(now)
            self._expire_overdue()
            return
        self._contact(now)
        records = self._observe(leases, now)
        self._renew_membership(records.get(self.member_lease), wall, now)
        members = self._live_members(records, now)
        current: dict[int, str] = {}
        for shard in range(self.shards):
            view = self._views.get(shard_lease_name(self.name, shard))
            if view is not None and view.holder and not view.expired(now, self.lease_duration):
                current[shard] = view.holder
        with self._lock:
            for shard in self._renewed:
                current[shard] = self.identity
            self._members = frozenset(members)
        target = owned_by(assign(self.shards, members, current), self.identity)
        gained: set[int] = set()
        for shard in range(self.shards):
            lease = records.get(shard_lease_name(self.name, shard))
            with self._lock:
                held = shard in self._renewed
            if shard in target:
                # Not acting on it a moment ago (not held, or past its deadline while
                # renewals were late): the queue refused its keys meanwhile, so a renewal
                # now re-queues them like a takeover does.
                acting = self.owns(shard)
                if self._claim(shard, lease, wall, now) and not acting:
                    gained.add(shard)
            elif held:
                self._hand_back(shard, lease, wall, now)
        self._expire_overdue()
        self._publish()
        if gained:
            self._log.info("acting on shards", gained=sorted(gained), owned=sorted(self.owned()))
            self._on_gained(frozenset(gained))

    def _observe(self, leases: list[Obj], now: float) -> dict[str, Obj]:
        records: dict[str, Obj] = {}
        for lease in leases:
            name = str((lease.get("metadata") or {}).get("name") or "")
            if name != self.name and not name.startswith((self._shard_prefix, self._member_prefix)):
                continue
            records[name] = lease
            self._views.setdefault(name, LeaseView()).observe(lease.get("spec") or {}, now)
        for gone in set(self._views) - set(records):
            del self._views[gone]
        return records

    def _live_members(self, records: Mapping[str, Obj], now: float) -> set[str]:
        members = {self.identity}
        for name, view in self._views.items():
            if name.startswith(self._member_prefix) and name in records and view.holder:
                if not view.expired(now, self.lease_duration):
                    members.add(view.holder)
        return members

    def _renew_membership(self, lease: Obj | None, wall: str, now: float) -> None:
        self._write(self.member_lease, lease, wall, now)

    def _claim(self, shard: int, lease: Obj | None, wall: str, now: float) -> bool:
        """Renew or take ``shard``'s Lease; True while we hold it."""
        name = shard_lease_name(self.name, shard)
        view = self._views.get(name)
        if lease is not None and view is not None:
            if not view.free_for(self.identity, now, self.lease_duration):
                self._drop(shard)  # someone else holds it now: stop at once
                return False
        if self._write(name, lease, wall, now):
            with self._lock:
                self._renewed[shard] = now
                self._leaving.discard(shard)
            return True
        if view is not None and view.holder not in ("", self.identity):
            self._drop(shard)  # someone else holds it now: stop at once
        return False

    def _hand_back(self, shard: int, lease: Obj | None, wall: str, now: float) -> None:
        """Stop acting on ``shard``; release it once no pass of it is in flight."""
        self._handed_back.add(shard)
        with self._lock:
            self._leaving.add(shard)
        name = shard_lease_name(self.name, shard)
        view = self._views.get(name)
        if lease is None or view is None or view.holder != self.identity:
            self._drop(shard)
            return
        if not self._quiescent(shard):
            # Keep the Lease (renewed, not acted on) until the in-flight pass ends.
            if self._write(name, lease, wall, now):
                with self._lock:
                    self._renewed[shard] = now
            return
        try:
            self.kube.update_lease(
                self.namespace,
                name,
                released_spec(lease.get("spec") or {}, wall=wall),
                resource_version=str(lease["metadata"]["resourceVersion"]),
                timeout=self._timeout,
            )
        except KubeError as exc:
            self._log.debug("releasing a shard failed", shard=shard, error=str(exc))
        self._drop(shard)
        self._log.info("handed a shard back", shard=shard)

    def _write(
        self, name: str, lease: Obj | None, wall: str, now: float, *, conflict_raises: bool = False
    ) -> bool:
        """Create or renew the Lease ``name`` for us; True on success. A 409 is False
        (another replica wrote first), or raised with ``conflict_raises`` for a caller
        that reads the Lease and decides again."""
        try:
            if lease is None:
                spec = claimed_spec(
                    {}, identity=self.identity, wall=wall, lease_duration=self.lease_duration
                )
                spec["leaseTransitions"] = 0
                written = self.kube.create_lease(
                    self.namespace, name, spec, annotations=self._annotations, timeout=self._timeout
                )
            else:
                written = self.kube.update_lease(
                    self.namespace,
                    name,
                    claimed_spec(
                        lease.get("spec") or {},
                        identity=self.identity,
                        wall=wall,
                        lease_duration=self.lease_duration,
                    ),
                    resource_version=str(lease["metadata"]["resourceVersion"]),
                    annotations=self._annotations,
                    timeout=self._timeout,
                )
        except KubeError as exc:
            if conflict_raises and isinstance(exc, Conflict):
                raise
            # 409: another replica wrote first; we look again at the next tick.
            self._log.debug("writing a lease failed", lease=name, error=str(exc))
            if answered(exc):
                self._contact(now)
            return False
        self._contact(now)
        self._views.setdefault(name, LeaseView()).observe(written.get("spec") or {}, now)
        if self._single:
            self._written[name] = written
        return True

    def _roster(self) -> Roster:
        assert self.roster is not None  # checked in __init__ for N > 1
        return self.roster

    def _drop(self, shard: int) -> None:
        self._written.pop(shard_lease_name(self.name, shard), None)
        with self._lock:
            self._renewed.pop(shard, None)
            self._leaving.discard(shard)

    def _expire_overdue(self) -> None:
        """Forget shards past their renew deadline (``owns`` already says no)."""
        now = self._clock()
        with self._lock:
            overdue = [s for s, at in self._renewed.items() if now - at >= self.renew_deadline]
        for shard in overdue:
            self._log.warning("could not renew a shard in time; stopped acting", shard=shard)
            self._drop(shard)
        if overdue:
            self._publish()

    def release_all(self) -> None:
        """Release every shard Lease we hold and delete our membership Lease."""
        wall = micro_timestamp(self._utcnow())
        self._written.clear()
        try:
            if self._single:  # no membership Lease; one read, as the round makes
                leases = [self.kube.get_lease(self.namespace, self.name, timeout=self._timeout)]
            else:
                leases = self._roster().leases(self.namespace, timeout=self._timeout)
        except NotFound:
            leases = []
        except KubeError as exc:
            self._log.warning("could not release the shards", error=str(exc))
            return
        # The membership goes first: a replica that sees our shards free then no longer
        # counts us, so it takes them at once instead of waiting for us to.
        member_first = sorted(
            leases, key=lambda lease: (lease.get("metadata") or {}).get("name") != self.member_lease
        )
        for lease in member_first:
            meta = lease.get("metadata") or {}
            name = str(meta.get("name") or "")
            spec = lease.get("spec") or {}
            if spec.get("holderIdentity") != self.identity:
                continue
            try:
                if name == self.member_lease:
                    self._roster().leave(
                        self.namespace,
                        name,
                        resource_version=str(meta.get("resourceVersion")),
                        timeout=self._timeout,
                    )
                elif name == self.name or name.startswith(self._shard_prefix):
                    self.kube.update_lease(
                        self.namespace,
                        name,
                        released_spec(spec, wall=wall),
                        resource_version=str(meta.get("resourceVersion")),
                        timeout=self._timeout,
                    )
            except NotFound:
                continue
            except KubeError as exc:
                self._log.warning("could not release a lease", lease=name, error=str(exc))
        with self._lock:
            self._renewed.clear()
            self._leaving.clear()
        self._publish()
        self._log.info("released the shards")

    def _publish(self) -> None:
        owned = self.owned()
        SHARDS_OWNED.set(len(owned))
        # Shard 0's Lease is the leader Lease: its holder is who `deployctl_leader` names.
        LEADER.set(1 if 0 in owned else 0)
        for shard in range(self.shards):
            SHARD_HELD.labels(shard=str(shard)).set(1 if shard in owned else 0)

    def _contact(self, now: float) -> None:
        with self._lock:
            self._last_contact = now
