"""Active-active shards: three controller replicas share many Rollouts (``--shards``).

The scale run's workload (1 replica, ``setWeight 50`` → ``pause``, pods simulated) on
three ``deployctl controller --shards N`` processes: every Rollout first deployed, then
given a canary whose pause is long enough to SIGKILL one replica in the middle of it.
Figures: the split of the Rollouts by their recorded writer (``status.controller``) and
each replica's CPU seconds per phase; how long after the SIGKILL the last of the killed
replica's Rollouts was written by another (the lease duration is the floor); the time
until a 4th replica holds a quarter of the shards, and until they are back after it is
stopped (SIGTERM). Not a test: it measures and reports.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client as k8s

from controller.shards import shard_lease_name
from tests.bench.process import Controller, Progress, load_average, say
from tests.bench.workload import Cluster, in_parallel, rollout
from tests.waiting import wait_until

LEASE_NAME = "deployctl-controller"
LEASE_SECONDS = 15
PAUSE = "60s"


@dataclass
class ShardsResult:
    rollouts: int
    shards: int
    split: dict[str, int] = field(default_factory=dict)
    """Rollouts per replica, by their recorded writer after the first deploys."""
    first_deploy_s: float = 0.0
    first_deploy_cpu: dict[str, float] = field(default_factory=dict)
    canary_s: float = 0.0
    canary_cpu: dict[str, float] = field(default_factory=dict)
    killed_rollouts: int = 0
    takeover_s: float = 0.0
    """SIGKILL to the last of the killed replica's Rollouts written by another."""
    lease_s: float = LEASE_SECONDS
    join_s: float = 0.0
    leave_s: float = 0.0
    load: float = 0.0


def bench_shards(
    cluster: Cluster,
    api: k8s.ApiClient,
    start: Callable[[str], Controller],
    *,
    count: int,
    shards: int,
    namespace: str,
    lease_namespace: str,
) -> ShardsResult:
    ns = cluster.namespace(namespace)
    result = ShardsResult(rollouts=count, shards=shards)
    coordination: Any = k8s.CoordinationV1Api(api)
    replicas = {name: start(name) for name in ("ctl-a", "ctl-b", "ctl-c")}
    loads: list[float] = []

    lease_names = {shard_lease_name(LEASE_NAME, shard) for shard in range(shards)}

    def split() -> dict[str, int]:
        held = Counter(
            lease.spec.holder_identity
            for lease in coordination.list_namespaced_lease(lease_namespace).items
            if lease.metadata.name in lease_names and lease.spec.holder_identity
        )
        return dict(held)

    def even(members: int) -> Callable[[dict[str, int]], bool]:
        return lambda held: (
            len(held) == members
            and sum(held.values()) == shards
            and max(held.values()) - min(held.values()) <= 1
        )

    wait_until(split, ok=even(3), timeout=300, what="three replicas sharing the shards", interval=1)
    names = [f"r{i:05d}" for i in range(count)]
    steps: list[dict[str, Any]] = [{"setWeight": 50}, {"pause": {"duration": PAUSE}}]

    def cpu() -> dict[str, float]:
        return {name: c.cpu_seconds() for name, c in replicas.items() if c.process.poll() is None}

    def phase(work: Callable[[str], None], done: Callable[[], bool], what: str) -> float:
        started = time.monotonic()
        progress = Progress(f"shards: {what}")
        in_parallel(work, names)

        def finished() -> bool:
            loads.append(load_average())
            progress.tick(what)
            return done()

        wait_until(finished, timeout=7200, what=what, interval=2)
        return time.monotonic() - started

    def healthy() -> bool:
        statuses = cluster.statuses(ns)
        return sum(1 for s in statuses.values() if s.get("phase") == "Healthy") == count

    cpu0 = cpu()
    result.first_deploy_s = phase(
        lambda n: cluster.create(ns, "rollouts", rollout(n, "v1", replicas=1, steps=steps)),
        healthy,
        f"{count} first deploys",
    )
    result.first_deploy_cpu = {k: v - cpu0[k] for k, v in cpu().items()}
    statuses = cluster.statuses(ns)
    result.split = dict(Counter(str(s.get("controller")) for s in statuses.values()))
    say(f"shards: split {result.split}, CPU {result.first_deploy_cpu}")
    v1 = {n: s.get("stableRevision") for n, s in statuses.items()}

    # The canary: mid-pause, ctl-c is SIGKILLed; the others carry its Rollouts on.
    cpu0 = cpu()
    canary_started = time.monotonic()
    in_parallel(
        lambda n: cluster.replace_template(ns, n, rollout(n, "v2", replicas=1, steps=steps)), names
    )

    def paused() -> bool:
        statuses = cluster.statuses(ns)
        return all(
            s.get("canaryRevision") and s.get("currentStepIndex") == 1 for s in statuses.values()
        )

    wait_until(paused, timeout=7200, what="every canary in its pause", interval=2)
    theirs = [n for n, s in cluster.statuses(ns).items() if s.get("controller") == "ctl-c"]
    result.killed_rollouts = len(theirs)
    killed_cpu = replicas["ctl-c"].cpu_seconds() - cpu0["ctl-c"]
    replicas["ctl-c"].process.kill()
    killed = time.monotonic()
    wait_until(
        lambda: not [n for n, s in cluster.statuses(ns).items() if s.get("controller") == "ctl-c"],
        timeout=7200,
        what="ctl-c's Rollouts written by the others",
        interval=0.5,
    )
    result.takeover_s = time.monotonic() - killed
    say(f"shards: {len(theirs)} Rollouts taken over {result.takeover_s:.1f} s after SIGKILL")

    def promoted() -> bool:
        statuses = cluster.statuses(ns)
        return (
            sum(
                1
                for n, s in statuses.items()
                if s.get("phase") == "Healthy" and s.get("stableRevision") != v1.get(n)
            )
            == count
        )

    wait_until(promoted, timeout=7200, what="every canary promoted", interval=2)
    result.canary_s = time.monotonic() - canary_started
    result.canary_cpu = {k: v - cpu0[k] for k, v in cpu().items() if k in cpu0}
    result.canary_cpu["ctl-c (until killed)"] = killed_cpu

    # A 4th replica joins (with ctl-c gone: three live, then back to two).
    joined = time.monotonic()
    replicas["ctl-d"] = start("ctl-d")
    wait_until(split, ok=even(3), timeout=600, what="the 4th replica's share", interval=0.5)
    result.join_s = time.monotonic() - joined
    leaving = time.monotonic()
    replicas["ctl-d"].stop()
    wait_until(split, ok=even(2), timeout=600, what="its shards back", interval=0.2)
    result.leave_s = time.monotonic() - leaving
    result.load = sum(loads) / len(loads) if loads else load_average()
    for controller in replicas.values():
        controller.stop()
    return result
