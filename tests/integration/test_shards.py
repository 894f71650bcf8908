"""Active-active shards on the sandbox: three controller processes share 30 Rollouts.

Each replica owns about a third of the shards and writes only its Rollouts; a 4th
replica joining takes a quarter, and hands it back at once when stopped (SIGTERM); a
replica SIGKILLed mid-canary has its Rollouts carried on by the others once its Leases
run out, from their status. Every status write records its writer
(``status.controller``); a watch on the apiserver records every write, and no Rollout
is written by two replicas in overlapping windows: within each phase, once another
replica has written a Rollout, the earlier writer never writes it again.
"""

from __future__ import annotations

import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from controller.commands.common import Session, controller_state
from controller.kube import Kube
from controller.sharding import shard_of
from controller.shards import shard_lease_name
from sandbox.faultproxy import FaultProxy, Faults
from tests.integration.harness import GROUP, VERSION, Cluster, demo_rollout
from tests.integration.podwatch import Recorder
from tests.waiting import wait_until

SHARDS = 12
ROLLOUTS = 30
LEASE = 8
LEASE_NAME = "ctl"


class WriteLog:
    """Every status write of every Rollout, in etcd order, from the apiserver's watch."""

    def __init__(self, cluster: Cluster) -> None:
        custom: Any = k8s.CustomObjectsApi(cluster.api)
        self.custom = custom
        self.namespace = cluster.namespace
        self.recorder = Recorder(cluster.api, cluster.namespace)
        self.recorder.kinds = {
            "rollout": lambda **kw: custom.list_namespaced_custom_object(
                GROUP, VERSION, cluster.namespace, "rollouts", **kw
            )
        }

    def now(self) -> int:
        """The cluster's resourceVersion now: a phase boundary in the order of writes."""
        listed = self.custom.list_namespaced_custom_object(
            GROUP, VERSION, self.namespace, "rollouts", limit=1
        )
        return int(listed["metadata"]["resourceVersion"])

    def writes(self, start: int = 0, end: int | None = None) -> list[tuple[int, str, str]]:
        """(resourceVersion, Rollout, writer) of the writes in [start, end)."""
        with self.recorder._lock:
            changes = sorted(self.recorder.changes, key=lambda c: c.rv)
        return [
            (c.rv, c.obj["metadata"]["name"], str(c.obj["status"]["controller"]))
            for c in changes
            if c.type == "MODIFIED"
            and (c.obj.get("status") or {}).get("controller")
            and start <= c.rv
            and (end is None or c.rv < end)
        ]


def audit(log: WriteLog, start: int, end: int | None, phase: str) -> None:
    """No writer of a Rollout writes it again once another has (within one phase)."""
    assert not log.recorder.errors, log.recorder.errors
    runs: dict[str, list[str]] = {}
    for _rv, name, writer in log.writes(start, end):
        seq = runs.setdefault(name, [])
        if not seq or seq[-1] != writer:
            seq.append(writer)
    overlapping = {name: seq for name, seq in runs.items() if len(seq) != len(set(seq))}
    assert not overlapping, f"{phase}: written by two replicas in turn: {overlapping}"


@pytest.fixture
def write_log(cluster: Cluster) -> Iterator[WriteLog]:
    log = WriteLog(cluster)
    with log.recorder:
        yield log


def canary(name: str, version: str) -> dict[str, Any]:
    return demo_rollout(
        name,
        version=version,
        replicas=1,
        progress_deadline=600,
        strategy={
            "canary": {
                # Long enough for all 30 to be in it at once on a loaded machine.
                "steps": [{"setWeight": 50}, {"pause": {"duration": "90s"}}],
                "scaleDownDelaySeconds": 0,
            }
        },
    )


def holders(cluster: Cluster) -> dict[int, str]:
    coordination = k8s.CoordinationV1Api(cluster.api)
    found: dict[int, str] = {}
    for lease in coordination.list_namespaced_lease(cluster.namespace).items:
        for shard in range(SHARDS):
            if lease.metadata and lease.metadata.name == shard_lease_name(LEASE_NAME, shard):
                found[shard] = (lease.spec.holder_identity if lease.spec else "") or ""
    return found


def split(cluster: Cluster) -> Counter[str]:
    return Counter(h for h in holders(cluster).values() if h)


def split_is(cluster: Cluster, expected: dict[str, int], *, timeout: float, what: str) -> None:
    wait_until(lambda: dict(split(cluster)), ok=lambda s: s == expected, timeout=timeout, what=what)


def metric(url: str, name: str) -> float:
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        text = response.read().decode()
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics")


def sharded(cluster: Cluster, identity: str) -> list[str]:
    return [
        "--lease-namespace",
        cluster.namespace,
        "--lease-name",
        LEASE_NAME,
        "--shards",
        str(SHARDS),
        "--identity",
        identity,
        "--lease-duration",
        str(LEASE),
        "--renew-deadline",
        "6",
        "--retry-period",
        "1",
        "--workers",
        "2",
    ]


def all_healthy(cluster: Cluster, names: list[str]) -> list[str]:
    """The Rollouts not yet Healthy on their current generation."""
    waiting = []
    for name in names:
        rollout = cluster.rollout(name)
        status = rollout.get("status") or {}
        if status.get("phase") != "Healthy" or status.get("observedGeneration") != rollout[
            "metadata"
        ].get("generation"):
            waiting.append(name)
    return waiting


def test_three_replicas_share_rollouts_rebalance_and_take_over_without_double_writes(
    cluster: Cluster, start_controller: Any, write_log: WriteLog
) -> None:
    def start(identity: str) -> Any:
        return start_controller(sharded(cluster, identity))

    replicas = {name: start(name) for name in ("ctl-a", "ctl-b", "ctl-c")}
    split_is(
        cluster, {"ctl-a": 4, "ctl-b": 4, "ctl-c": 4}, timeout=90, what="a third of the shards each"
    )
    # The CLI's "is a controller running?" finds shard 0's Lease where no leader's is.
    session = Session(Kube(cluster.api), cluster.namespace, "test")
    state = controller_state(session, lease=(cluster.namespace, LEASE_NAME))
    assert state.running and state.detail.startswith("leader ctl-"), state
    names = [f"app-{i}" for i in range(ROLLOUTS)]

    def owner(name: str) -> str:
        return holders(cluster)[shard_of(f"{cluster.namespace}/{name}", SHARDS)]

    # 1. Deploy: each Rollout is written by the owner of its shard, and only by it.
    for name in names:
        cluster.apply_rollout(canary(name, "v1"))

    def healthy_on(generation_of: dict[str, int] | None = None) -> list[str]:
        waiting = []
        for name in names:
            rollout = cluster.rollout(name)
            status = rollout.get("status") or {}
            if status.get("phase") != "Healthy" or status.get("observedGeneration") != rollout[
                "metadata"
            ].get("generation"):
                waiting.append(name)
        return waiting

    wait_until(healthy_on, ok=lambda w: not w, timeout=300, what="every Rollout healthy")
    writers = {name: cluster.status(name)["controller"] for name in names}
    assert all(writers[name] == owner(name) for name in names), writers
    per_replica = Counter(writers.values())
    print(f"split of {ROLLOUTS} Rollouts over 3 replicas: {dict(per_replica)}")
    assert set(per_replica) == {"ctl-a", "ctl-b", "ctl-c"}
    url = replicas["ctl-a"].metrics_url()
    assert metric(url, "deployctl_shards_owned") == 4
    mine = {s for s, h in holders(cluster).items() if h == "ctl-a"}
    assert all(metric(url, f'deployctl_shard_owned{{shard="{s}"}}') == 1 for s in mine)
    assert metric(url, 'deployctl_workqueue_depth{queue="rollouts"}') >= 0

    # 2. A 4th replica joins: a quarter each, and it writes the Rollouts it took.
    joined = time.monotonic()
    join_rv = write_log.now()
    replicas["ctl-d"] = start("ctl-d")
    split_is(
        cluster,
        {"ctl-a": 3, "ctl-b": 3, "ctl-c": 3, "ctl-d": 3},
        timeout=90,
        what="a quarter of the shards each",
    )
    print(f"rebalanced to a quarter each {time.monotonic() - joined:.1f} s after the join")
    moved = [name for name in names if owner(name) == "ctl-d"]
    wait_until(
        lambda: [n for n in moved if cluster.status(n).get("controller") != "ctl-d"],
        ok=lambda w: not w,
        timeout=90,
        what="ctl-d to take over its Rollouts",
    )

    # 3. It stops gracefully: its Leases are released at once and move back.
    leaving = time.monotonic()
    leave_rv = write_log.now()
    assert replicas.pop("ctl-d").terminate(timeout=60) == 0
    split_is(
        cluster,
        {"ctl-a": 4, "ctl-b": 4, "ctl-c": 4},
        timeout=60,
        what="the shards back after a graceful stop",
    )
    handed_back = time.monotonic() - leaving
    print(f"shards back {handed_back:.1f} s after SIGTERM (lease {LEASE} s)")
    wait_until(
        lambda: [n for n in moved if cluster.status(n).get("controller") == "ctl-d"],
        ok=lambda w: not w,
        timeout=90,
        what="the Rollouts ctl-d had to be written by their owners again",
    )

    # 4. A canary for everyone; mid-canary, ctl-c is SIGKILLed.
    update_rv = write_log.now()
    for name in names:
        cluster.apply_rollout(canary(name, "v2"))

    def mid_canary() -> list[str]:
        return [
            name
            for name in names
            if (cluster.status(name).get("currentStepIndex") or 0) < 1
            or not cluster.status(name).get("canaryRevision")
        ]

    wait_until(mid_canary, ok=lambda w: not w, timeout=300, what="every Rollout mid-canary")
    orphans = [name for name in names if owner(name) == "ctl-c"]
    assert orphans
    replicas["ctl-c"].kill()
    killed = time.monotonic()
    kill_rv = write_log.now()

    def not_taken() -> list[str]:
        return [n for n in orphans if cluster.status(n).get("controller") == "ctl-c"]

    wait_until(not_taken, ok=lambda w: not w, timeout=LEASE + 60, what="ctl-c's Rollouts taken")
    print(
        f"ctl-c's {len(orphans)} Rollouts written by others {time.monotonic() - killed:.1f} s "
        f"after SIGKILL (lease {LEASE} s)"
    )
    split_is(cluster, {"ctl-a": 6, "ctl-b": 6}, timeout=60, what="ctl-c's shards divided")
    wait_until(healthy_on, ok=lambda w: not w, timeout=300, what="every canary promoted")
    for name in names:
        status = cluster.status(name)
        assert status["stableRevision"] and status.get("controller") in ("ctl-a", "ctl-b")

    # 5. The audit, from the apiserver's own record of every write.
    audit(write_log, 0, join_rv, "before the join")
    audit(write_log, join_rv, leave_rv, "while ctl-d joined")
    audit(write_log, leave_rv, update_rv, "after ctl-d left")
    audit(write_log, update_rv, None, "across the SIGKILL")
    # A write ctl-c sent just before the SIGKILL may still commit after kill_rv was read
    # (seen once under load); what may never happen is one after another replica's write
    # of the same Rollout, which the audit above checks. So: at most those in flight.
    late = [w for w in write_log.writes(kill_rv) if w[2] == "ctl-c"]
    assert len(late) <= 2, f"more than its 2 workers had in flight: {late}"
    print(f"{len(write_log.writes())} status writes audited")


def test_a_replica_cut_off_from_the_apiserver_stops_before_its_shards_move_and_comes_back(
    cluster: Cluster,
    start_controller: Any,
    write_log: WriteLog,
    fault_proxy: FaultProxy,
    tmp_path: Path,
) -> None:
    # ctl-p talks to the apiserver through the fault proxy; ctl-q directly.
    through_proxy = str(fault_proxy.kubeconfig(tmp_path / "kubeconfig-p"))
    start_controller(sharded(cluster, "ctl-p"), kubeconfig=through_proxy)
    start_controller(sharded(cluster, "ctl-q"))
    split_is(cluster, {"ctl-p": 6, "ctl-q": 6}, timeout=90, what="half the shards each")
    names = [f"web-{i}" for i in range(12)]
    for name in names:
        cluster.apply_rollout(canary(name, "v1"))
    wait_until(lambda: all_healthy(cluster, names), ok=lambda w: not w, timeout=300, what="healthy")
    mine = [n for n in names if cluster.status(n)["controller"] == "ctl-p"]
    assert mine, "ctl-p wrote none of the Rollouts"

    # A 20 s outage seen by ctl-p only: it stops acting at its renew deadline; ctl-q
    # takes its shards once their Leases have expired, and writes its Rollouts.
    outage_rv = write_log.now()
    fault_proxy.set_faults(Faults(error_rate_500=1.0))
    cut = time.monotonic()
    split_is(cluster, {"ctl-q": SHARDS}, timeout=LEASE + 60, what="ctl-q to hold every shard")
    wait_until(
        lambda: [n for n in mine if cluster.status(n).get("controller") != "ctl-q"],
        ok=lambda w: not w,
        timeout=90,
        what="ctl-q to write ctl-p's Rollouts",
    )
    wait_until(lambda: time.monotonic() - cut >= 20, timeout=60, what="20 s of outage")
    assert holders(cluster) == dict.fromkeys(range(SHARDS), "ctl-q")  # no re-acquiring

    # Back: ctl-p rejoins, gets half again once ctl-q hands it over, and acts on it.
    recover_rv = write_log.now()
    fault_proxy.set_faults(Faults())
    split_is(cluster, {"ctl-p": 6, "ctl-q": 6}, timeout=90, what="ctl-p's share back")
    again = [n for n in names if owner_of(cluster, n) == "ctl-p"]
    wait_until(
        lambda: [n for n in again if cluster.status(n).get("controller") != "ctl-p"],
        ok=lambda w: not w,
        timeout=90,
        what="ctl-p to write its Rollouts again",
    )
    audit(write_log, outage_rv, recover_rv, "during the outage")
    audit(write_log, recover_rv, None, "after the outage")


def owner_of(cluster: Cluster, name: str) -> str:
    return holders(cluster)[shard_of(f"{cluster.namespace}/{name}", SHARDS)]
