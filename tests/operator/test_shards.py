"""Shard Leases on the real apiserver: an even split, fencing by our own clock, takeover
only after a silent holder's whole lease, minimal moves on a join, release on stop.

Rounds are driven by hand (``tick()``) with a fake clock per replica, so every timing
rule is checked exactly and without sleeping; the Leases are real.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from controller.kube import Kube
from controller.roster import LeaseRoster
from controller.shards import ShardElector, member_lease_name, shard_lease_name
from sandbox.faultproxy import FaultProxy, Faults
from tests.operator.helpers import FakeClock

SHARDS = 6
LEASE = 4.0
RENEW_DEADLINE = 3.0
RETRY = 0.5
NAME = "deployctl-controller"


class Replica:
    def __init__(self, kube: Kube, namespace: str, identity: str) -> None:
        self.clock = FakeClock()
        self.gained: list[frozenset[int]] = []
        self.busy: set[int] = set()
        self.elector = ShardElector(
            kube,
            namespace=namespace,
            name=NAME,
            identity=identity,
            shards=SHARDS,
            roster=LeaseRoster(kube),
            lease_duration=LEASE,
            renew_deadline=RENEW_DEADLINE,
            retry_period=RETRY,
            on_gained=self.gained.append,
            quiescent=lambda shard: shard not in self.busy,
            clock=self.clock,
        )

    def owned(self) -> frozenset[int]:
        return self.elector.owned()


@pytest.fixture
def kube(control_plane: Any) -> Kube:
    return Kube(control_plane.api_client())


@pytest.fixture
def replicas() -> Iterator[list[Replica]]:
    made: list[Replica] = []
    yield made
    for replica in made:
        replica.elector.stop(release=False)


def rounds(replicas: list[Replica], n: int = 4, *, advance: float = RETRY) -> None:
    for _ in range(n):
        for replica in replicas:
            replica.clock.advance(advance)
            replica.elector.tick()


def holders(kube: Kube, namespace: str) -> dict[int, str]:
    found: dict[int, str] = {}
    for lease in kube.list_leases(namespace):
        name = lease["metadata"]["name"]
        for shard in range(SHARDS):
            if name == shard_lease_name(NAME, shard):
                found[shard] = lease["spec"].get("holderIdentity") or ""
    return found


def assert_split(replicas: list[Replica]) -> None:
    owned = [r.owned() for r in replicas]
    assert sorted(s for mine in owned for s in mine) == list(range(SHARDS)), owned
    sizes = [len(mine) for mine in owned]
    assert max(sizes) - min(sizes) <= 1, sizes


def test_three_replicas_split_the_shards_and_the_leases_say_who(
    kube: Kube, namespace: str, replicas: list[Replica]
) -> None:
    replicas.extend(Replica(kube, namespace, name) for name in ("a", "b", "c"))
    rounds(replicas)
    assert_split(replicas)
    on_server = holders(kube, namespace)
    for replica in replicas:
        assert {s for s, h in on_server.items() if h == replica.elector.identity} == set(
            replica.owned()
        )
        assert replica.elector.members() == {"a", "b", "c"}
        assert replica.elector.healthy()
        assert frozenset().union(*replica.gained) >= replica.owned()
    # A Rollout is acted on by exactly one replica.
    for key in (f"team-{i}/app-{i}" for i in range(50)):
        assert sum(r.elector.owns_key(key) for r in replicas) == 1
    member = kube.get_lease(namespace, member_lease_name(NAME, "a"))
    assert member["spec"]["holderIdentity"] == "a"


def test_a_replica_stops_acting_at_its_renew_deadline_on_its_own_clock(
    kube: Kube, fault_proxy: FaultProxy, namespace: str, replicas: list[Replica]
) -> None:
    cut = Replica(Kube(fault_proxy.api_client()), namespace, "cut")
    replicas.append(cut)
    rounds(replicas, 2)
    assert cut.owned() == frozenset(range(SHARDS))
    fault_proxy.set_faults(Faults(error_rate_500=1.0))
    cut.clock.advance(RENEW_DEADLINE - 0.01)
    cut.elector.tick()  # fails: still within the deadline of the last renewal
    assert cut.owned() == frozenset(range(SHARDS))
    cut.clock.advance(0.02)
    # No round needed: the check reads the clock, so a stuck elector stops acting too.
    assert cut.owned() == frozenset()
    cut.elector.tick()
    assert cut.owned() == frozenset()
    fault_proxy.set_faults(Faults())
    cut.gained.clear()
    cut.elector.tick()  # its Leases were not taken: it re-acquires and acts again
    assert cut.owned() == frozenset(range(SHARDS))
    # ... and re-queues their Rollouts: the queue refused their keys in between.
    assert cut.gained == [frozenset(range(SHARDS))]


def test_a_late_renewal_re_queues_the_shards_it_had_stopped_acting_on(
    kube: Kube, namespace: str, replicas: list[Replica]
) -> None:
    # A loaded machine: the elector's round comes after the deadline (no failed request,
    # no round in between). The renewal still succeeds, and must count as a gain.
    late = Replica(kube, namespace, "late")
    replicas.append(late)
    rounds(replicas, 2)
    late.gained.clear()
    late.clock.advance(RENEW_DEADLINE + 0.5)
    assert late.owned() == frozenset()
    late.elector.tick()
    assert late.owned() == frozenset(range(SHARDS))
    assert late.gained == [frozenset(range(SHARDS))]
    rounds(replicas, 1)
    assert late.gained == [frozenset(range(SHARDS))]  # an on-time renewal gains nothing


def test_a_silent_replicas_shards_are_taken_only_after_its_whole_lease(
    kube: Kube, namespace: str, replicas: list[Replica]
) -> None:
    a, b, c = (Replica(kube, namespace, name) for name in ("a", "b", "c"))
    replicas.extend([a, b, c])
    rounds(replicas)
    assert_split(replicas)
    dead = set(c.owned())
    # c stops renewing (SIGKILL): a and b keep going. Up to a lease duration after they
    # last saw c's Leases change, they must not take them; c itself stopped acting at its
    # renew deadline, earlier.
    survivors = [a, b]
    rounds(survivors, int((LEASE - RETRY) / RETRY) - 1)
    assert not (a.owned() | b.owned()) & dead
    assert holders(kube, namespace)[min(dead)] == "c"
    rounds(survivors, 4)
    assert a.owned() | b.owned() == frozenset(range(SHARDS))
    assert not a.owned() & b.owned()
    assert abs(len(a.owned()) - len(b.owned())) <= 1
    assert a.elector.members() == {"a", "b"}
    c.clock.advance(RENEW_DEADLINE)
    assert c.owned() == frozenset()


def test_a_joining_replica_takes_only_its_share_and_a_stopping_one_hands_back_at_once(
    kube: Kube, namespace: str, replicas: list[Replica]
) -> None:
    replicas.extend(Replica(kube, namespace, name) for name in ("a", "b", "c"))
    rounds(replicas)
    before = holders(kube, namespace)
    d = Replica(kube, namespace, "d")
    replicas.append(d)
    rounds(replicas, 6)
    assert_split(replicas)
    after = holders(kube, namespace)
    moved = {s for s in range(SHARDS) if before[s] != after[s]}
    assert moved == set(d.owned()) and len(moved) == SHARDS // 4

    # Graceful stop: d releases its Leases and deletes its membership; the others take
    # its shards at their next round, without waiting out a lease.
    d.elector.stop(release=True)
    replicas.remove(d)
    assert d.owned() == frozenset()
    rounds(replicas, 2)
    assert_split(replicas)
    assert holders(kube, namespace) == before


def test_a_shard_is_handed_back_only_once_its_passes_are_done(
    kube: Kube, namespace: str, replicas: list[Replica]
) -> None:
    a = Replica(kube, namespace, "a")
    replicas.append(a)
    rounds(replicas, 2)
    a.busy = set(range(SHARDS))  # a pass of every shard in flight
    b = Replica(kube, namespace, "b")
    replicas.append(b)
    rounds(replicas, 3)
    # a no longer acts on what b is assigned, but keeps (renews) those Leases meanwhile.
    assert len(a.owned()) == SHARDS // 2
    assert b.owned() == frozenset()
    assert set(holders(kube, namespace).values()) == {"a"}
    a.busy = set()
    rounds(replicas, 2)
    assert_split(replicas)
    assert len(b.owned()) == SHARDS // 2


def test_parameters_are_validated(kube: Kube) -> None:
    with pytest.raises(ValueError, match="lease_duration > renew_deadline"):
        ShardElector(
            kube,
            namespace="n",
            name="l",
            identity="a",
            shards=2,
            roster=LeaseRoster(kube),
            lease_duration=3,
            renew_deadline=4,
        )
    # Many shards list the namespace's Leases; one shard (the single leader) never does.
    with pytest.raises(ValueError, match="needs a roster"):
        ShardElector(kube, namespace="n", name="l", identity="a", shards=2)
    ShardElector(kube, namespace="n", name="l", identity="a", shards=1)
    with pytest.raises(ValueError, match="at least one shard"):
        ShardElector(kube, namespace="n", name="l", identity="a", shards=0)
    assert member_lease_name("ctl", "host_123") != member_lease_name("ctl", "host-123")


def test_an_outage_seen_by_one_replica_fences_it_before_its_shards_move_and_until_it_is_back(
    kube: Kube, fault_proxy: FaultProxy, namespace: str, replicas: list[Replica]
) -> None:
    # An apiserver outage of 20 s (five 4 s leases) seen by one replica only: the others
    # reach the apiserver throughout.
    a, b = Replica(kube, namespace, "a"), Replica(kube, namespace, "b")
    cut = Replica(Kube(fault_proxy.api_client()), namespace, "cut")
    replicas.extend([a, b, cut])
    rounds(replicas)
    assert_split(replicas)
    mine = set(cut.owned())
    assert mine

    def disjoint() -> None:
        owned = [r.owned() for r in replicas]
        assert sum(len(o) for o in owned) == len(frozenset().union(*owned)), owned

    fault_proxy.set_faults(Faults(error_rate_500=1.0))
    elapsed = 0.0
    stopped_at = taken_at = None
    while elapsed < 5 * LEASE:
        rounds(replicas, 1)
        elapsed += RETRY
        disjoint()
        if stopped_at is None and not cut.owned():
            stopped_at = elapsed
        if taken_at is None and (a.owned() | b.owned()) & mine:
            taken_at = elapsed
            # Taken only once the cut replica had stopped acting on them.
            assert stopped_at is not None
    assert stopped_at is not None and stopped_at <= RENEW_DEADLINE
    assert taken_at is not None and taken_at >= LEASE - RETRY
    assert a.owned() | b.owned() == frozenset(range(SHARDS))
    assert cut.owned() == frozenset()

    # Back: it acts again only on what it has re-acquired (its share, moved back).
    fault_proxy.set_faults(Faults())
    cut.gained.clear()
    for _ in range(8):
        rounds(replicas, 1)
        disjoint()
        held = holders(kube, namespace)
        assert all(held[shard] == "cut" for shard in cut.owned())
    assert_split(replicas)
    assert cut.owned() and frozenset().union(*cut.gained) >= cut.owned()
