"""Leader election on a real Lease: one leader, takeover on silence, fast hand-over on release."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from controller.kube import Kube
from controller.kube.errors import Conflict
from controller.leader import LeaderElector
from sandbox.faultproxy import FaultProxy, Faults
from tests.waiting import wait_until

LEASE = 2.0
RENEW_DEADLINE = 1.5
RETRY = 0.2


class Leadership:
    """Who leads, as the callbacks tell it; records any moment with two leaders."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.leaders: set[str] = set()
        self.overlaps: list[set[str]] = []
        self.started: dict[str, float] = {}
        self.stopped: dict[str, float] = {}

    def callbacks(self, identity: str) -> tuple[Callable[[], None], Callable[[], None]]:
        def on_started() -> None:
            with self._lock:
                self.leaders.add(identity)
                self.started[identity] = time.monotonic()
                if len(self.leaders) > 1:
                    self.overlaps.append(set(self.leaders))

        def on_stopped() -> None:
            with self._lock:
                self.leaders.discard(identity)
                self.stopped[identity] = time.monotonic()

        return on_started, on_stopped

    def current(self) -> set[str]:
        with self._lock:
            return set(self.leaders)


@pytest.fixture
def leadership() -> Leadership:
    return Leadership()


@pytest.fixture
def electors() -> Iterator[list[LeaderElector]]:
    running: list[LeaderElector] = []
    yield running
    for elector in running:
        elector.stop(timeout=5)


def make(kube: Kube, namespace: str, identity: str, leadership: Leadership) -> LeaderElector:
    on_started, on_stopped = leadership.callbacks(identity)
    return LeaderElector(
        kube,
        namespace=namespace,
        name="deployctl-controller",
        identity=identity,
        lease_duration=LEASE,
        renew_deadline=RENEW_DEADLINE,
        retry_period=RETRY,
        on_started_leading=on_started,
        on_stopped_leading=on_stopped,
    )


def test_only_one_of_two_leads_and_the_lease_says_who(
    control_plane: Any, namespace: str, leadership: Leadership, electors: list[LeaderElector]
) -> None:
    a = make(Kube(control_plane.api_client()), namespace, "a", leadership)
    b = make(Kube(control_plane.api_client()), namespace, "b", leadership)
    electors.extend([a.start(), b.start()])
    wait_until(lambda: len(leadership.current()) == 1, timeout=10, what="a leader")
    # Several renewals later there is still exactly one leader.
    leader = a if a.is_leader else b
    lease = Kube(control_plane.api_client()).get_lease(namespace, "deployctl-controller")
    first_renew = lease["spec"]["renewTime"]
    wait_until(
        lambda: (
            Kube(control_plane.api_client()).get_lease(namespace, "deployctl-controller")["spec"][
                "renewTime"
            ]
            != first_renew
        ),
        timeout=5,
        what="a renewal",
    )
    assert leadership.current() == {leader.identity}
    assert leadership.overlaps == []
    assert a.is_leader != b.is_leader
    spec = Kube(control_plane.api_client()).get_lease(namespace, "deployctl-controller")["spec"]
    assert spec["holderIdentity"] == leader.identity
    assert spec["leaseDurationSeconds"] == 2
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", spec["renewTime"])
    wait_until(lambda: a.healthy() and b.healthy(), timeout=5, what="both electors healthy")
    standby = b if leader is a else a
    wait_until(
        lambda: standby.leader_identity == leader.identity,
        timeout=5,
        what="the standby to observe the leader",
    )


def test_standby_takes_over_when_the_leader_stops_renewing(
    control_plane: Any,
    fault_proxy: FaultProxy,
    namespace: str,
    leadership: Leadership,
    electors: list[LeaderElector],
) -> None:
    # The first candidate talks through the fault proxy, so we can cut it off.
    a = make(Kube(fault_proxy.api_client()), namespace, "a", leadership)
    electors.append(a.start())
    wait_until(lambda: a.is_leader, timeout=10, what="a to lead")
    b = make(Kube(control_plane.api_client()), namespace, "b", leadership)
    electors.append(b.start())
    wait_until(lambda: b.leader_identity == "a", timeout=5, what="b to observe a")
    assert not b.is_leader

    fault_proxy.set_faults(Faults(error_rate_500=1.0))  # a can no longer renew
    partitioned = time.monotonic()
    # The callback that records the start runs just after is_leader turns true.
    wait_until(
        lambda: b.is_leader and "b" in leadership.started,
        timeout=LEASE + RENEW_DEADLINE + 3,
        what="b to take over",
    )
    took = leadership.started["b"] - partitioned
    # The lease runs out LEASE after a's last renewal, plus b's retry period and jitter.
    assert took <= LEASE + 3 * RETRY + 0.5, f"takeover took {took:.2f} s"
    # a stepped down (renew deadline) before b could start: never two leaders.
    assert leadership.stopped["a"] <= leadership.started["b"]
    assert leadership.overlaps == []
    assert not a.is_leader
    lease = Kube(control_plane.api_client()).get_lease(namespace, "deployctl-controller")
    assert lease["spec"]["holderIdentity"] == "b"
    assert lease["spec"]["leaseTransitions"] == 1

    fault_proxy.set_faults(Faults())  # a comes back as a standby, not a second leader
    wait_until(lambda: a.healthy(), timeout=5, what="a to reach the apiserver again")
    assert leadership.current() == {"b"}


def test_release_hands_over_at_once(
    control_plane: Any, namespace: str, leadership: Leadership, electors: list[LeaderElector]
) -> None:
    a = make(Kube(control_plane.api_client()), namespace, "a", leadership)
    electors.append(a.start())
    wait_until(lambda: a.is_leader, timeout=10, what="a to lead")
    b = make(Kube(control_plane.api_client()), namespace, "b", leadership)
    electors.append(b.start())
    wait_until(lambda: b.leader_identity == "a", timeout=5, what="b to observe a")

    stopping = time.monotonic()
    a.stop()  # graceful: stop leading, then release
    assert "a" in leadership.stopped
    wait_until(
        lambda: b.is_leader and "b" in leadership.started,
        timeout=LEASE,
        what="b to take over after release",
    )
    assert leadership.started["b"] - stopping < LEASE / 2, "no waiting out the lease"
    assert leadership.overlaps == []


def test_parameters_are_validated(control_plane: Any) -> None:
    kube = Kube(control_plane.api_client())
    with pytest.raises(ValueError):
        LeaderElector(
            kube, namespace="n", name="l", identity="a", lease_duration=5, renew_deadline=6
        )
    with pytest.raises(ValueError):
        LeaderElector(kube, namespace="n", name="l", identity="")


class CountingKube(Kube):
    """The real adapter, counting the Lease reads and writes it sends."""

    def __init__(self, api: Any) -> None:
        super().__init__(api)
        self.gets = 0
        self.updates = 0

    def get_lease(self, namespace: str, name: str, *, timeout: float | None = None) -> Any:
        self.gets += 1
        return super().get_lease(namespace, name, timeout=timeout)

    def update_lease(self, *args: Any, **kwargs: Any) -> Any:
        self.updates += 1
        return super().update_lease(*args, **kwargs)


def test_a_held_lease_is_renewed_without_reading_it_first(
    control_plane: Any, namespace: str, leadership: Leadership, electors: list[LeaderElector]
) -> None:
    kube = CountingKube(control_plane.api_client())
    a = make(kube, namespace, "a", leadership)
    electors.append(a.start())
    wait_until(lambda: a.is_leader, timeout=10, what="a to lead")
    gets = kube.gets
    wait_until(lambda: kube.updates >= 10, timeout=30, what="ten renewals")
    assert kube.gets == gets, "a renewal read the Lease first"
    assert leadership.current() == {"a"}

    # Someone else writes the Lease (its resourceVersion moves on, a still holds it): the
    # next renewal is refused, read again, and a keeps leading without a gap.
    admin = Kube(control_plane.api_client())

    def touch() -> bool:
        # a renews every retry period: a renewal between this read and this write makes
        # the write a 409 too; read again and write again, as any other writer would.
        current = admin.get_lease(namespace, "deployctl-controller")
        try:
            admin.update_lease(
                namespace,
                "deployctl-controller",
                current["spec"],
                resource_version=current["metadata"]["resourceVersion"],
                annotations={"example.com/touched": "yes"},
            )
        except Conflict:
            return False
        return True

    wait_until(touch, ok=bool, timeout=30, what="another writer's update of the Lease")
    wait_until(lambda: kube.gets > gets, timeout=10, what="a to read the Lease after a 409")
    updates = kube.updates
    wait_until(lambda: kube.updates >= updates + 3, timeout=10, what="renewals to go on")
    assert "a" not in leadership.stopped and leadership.current() == {"a"}
    assert admin.get_lease(namespace, "deployctl-controller")["spec"]["holderIdentity"] == "a"
