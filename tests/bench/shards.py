"""Active-active shards: three controller replicas share many Rollouts (``--shards``).

The scale run's workload (1 replica, ``setWeight 50`` → ``pause: {}``, pods simulated)
on three ``deployctl controller --shards N`` processes: every Rollout first deployed, then
given a canary. The pause waits for a promotion, so the bench decides when each Rollout
goes on: once every canary is paused, one replica is SIGKILLed and its Rollouts are
promoted (a promote request, written as ``deployctl promote`` writes it), which only the
replicas that take its shards over can act on. Figures: the split of the Rollouts by their
recorded writer (``status.controller``) and each replica's CPU seconds per phase; how long
after the SIGKILL each of the killed replica's shards was first written by another (the
lease duration is the floor) and all its Rollouts were. Then the killed replica comes back,
the other canaries are promoted, and while the replicas carry them on a 4th replica joins
(four live: the time until each holds a quarter of the shards) and is stopped (SIGTERM: the
time until its shards are held by the other three). Every status write is watched from the
apiserver (``WriteAudit``): within each phase (before the SIGKILL, after it, after the
restart, while the 4th is in, after it left) no Rollout may be written by a replica once
another has written it. Not a test: it measures and reports.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client as k8s

from controller.names import REQUEST_ANNOTATION
from controller.requests import new_request
from controller.sharding import shard_of
from controller.shards import shard_lease_name
from tests.bench.process import Controller, Progress, load_average, say
from tests.bench.workload import GROUP, VERSION, Cluster, in_parallel, rollout
from tests.waiting import wait_until

LEASE_NAME = "deployctl-controller"
LEASE_SECONDS = 15
# The pause waits for a promote request: the bench says when each canary goes on.
STEPS: list[dict[str, Any]] = [{"setWeight": 50}, {"pause": {}}]


def promote(cluster: Cluster, ns: str, name: str) -> None:
    """Ask the controller to promote ``name``, as ``deployctl promote`` does: the request
    annotation (a new id), on top of the resourceVersion read, retried on a conflict."""
    body = {"metadata": {"annotations": {REQUEST_ANNOTATION: ""}}}
    for _ in range(20):
        current = cluster.custom.get_namespaced_custom_object(GROUP, VERSION, ns, "rollouts", name)
        request = new_request("promote", by="bench")
        body["metadata"] = {
            "annotations": {REQUEST_ANNOTATION: request.to_annotation()},
            "resourceVersion": current["metadata"]["resourceVersion"],
        }
        try:
            cluster.custom.patch_namespaced_custom_object(
                GROUP, VERSION, ns, "rollouts", name, body
            )
            return
        except k8s.ApiException as exc:
            if exc.status != 409:
                raise
    raise RuntimeError(f"{ns}/{name} kept conflicting")


@dataclass
class ShardsResult:
    rollouts: int
    shards: int
    split: dict[str, int] = field(default_factory=dict)
    """Rollouts per replica, by their recorded writer after the first deploys."""
    first_deploy_s: float = 0.0
    first_deploy_cpu: dict[str, float] = field(default_factory=dict)
    to_pause_s: float = 0.0
    """The canary's start to every canary in its pause."""
    canary_s: float = 0.0
    """The canary's start to every canary promoted (the SIGKILL, join and leave in it)."""
    canary_cpu: dict[str, float] = field(default_factory=dict)
    killed_rollouts: int = 0
    killed_shards: int = 0
    takeover_s: float = 0.0
    """SIGKILL to the last of the killed replica's shards first written by another."""
    takeover_first_s: float = 0.0
    takeover_all_s: float = 0.0
    """SIGKILL to every one of the killed replica's Rollouts written by another."""
    lease_s: float = LEASE_SECONDS
    join_s: float = 0.0
    join_split: dict[str, int] = field(default_factory=dict)
    """Shards held per replica once the 4th had its quarter."""
    leave_s: float = 0.0
    load: float = 0.0
    writes_audited: int = 0
    double_writes: dict[str, int] = field(default_factory=dict)
    """Per phase, the Rollouts written by a replica again after another had written them."""
    audit_errors: list[str] = field(default_factory=list)


class WriteAudit:
    """Every status write of the namespace's Rollouts, (resourceVersion, name, writer,
    monotonic time seen), from a watch on the apiserver, resumed where it stopped."""

    def __init__(self, api: k8s.ApiClient, namespace: str) -> None:
        self.custom: Any = k8s.CustomObjectsApi(api)
        self.namespace = namespace
        self.writes: list[tuple[int, str, str, float]] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def now(self) -> int:
        """The resourceVersion now: a phase boundary in the order of writes."""
        listed = self.custom.list_namespaced_custom_object(
            GROUP, VERSION, self.namespace, "rollouts", limit=1
        )
        return int(listed["metadata"]["resourceVersion"])

    def start(self) -> WriteAudit:
        self._version = str(self.now())
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=150)

    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                response = self.custom.list_namespaced_custom_object(
                    GROUP,
                    VERSION,
                    self.namespace,
                    "rollouts",
                    watch=True,
                    resource_version=self._version,
                    timeout_seconds=30,
                    allow_watch_bookmarks=True,
                    _preload_content=False,
                    _request_timeout=(5, 60),
                )
                buffer = b""
                for chunk in response.stream(amt=None, decode_content=True):
                    buffer += chunk
                    *lines, buffer = buffer.split(b"\n")
                    for line in lines:
                        if line.strip():
                            self._event(json.loads(line))
            except Exception as exc:  # noqa: BLE001 - resumed from the last version seen
                if not self._stop.is_set():
                    self.errors.append(f"watch: {exc!r}"[:300])

    def _event(self, event: dict[str, Any]) -> None:
        obj = event.get("object") or {}
        if event.get("type") == "ERROR":
            # 410: writes between our version and now are gone; the audit has a gap.
            self.errors.append(f"watch ended: {obj.get('message', obj)}"[:300])
            self._version = str(self.now())
            return
        meta = obj.get("metadata") or {}
        self._version = str(meta.get("resourceVersion", self._version))
        writer = (obj.get("status") or {}).get("controller")
        if event.get("type") == "MODIFIED" and writer:
            self.writes.append(
                (int(self._version), str(meta.get("name")), str(writer), time.monotonic())
            )

    def first_writes_after(
        self, since: float, *, exclude: str, shards: int, ns: str
    ) -> dict[int, float]:
        """Per shard, when a Rollout of it was first written after ``since`` (monotonic)
        by a writer other than ``exclude``."""
        firsts: dict[int, float] = {}
        for _rv, name, writer, seen in list(self.writes):
            if seen >= since and writer != exclude:
                shard = shard_of(f"{ns}/{name}", shards)
                firsts[shard] = min(seen, firsts.get(shard, seen))
        return firsts

    def double_writes(self, start: int, end: int | None) -> int:
        """Rollouts written in [start, end) by a replica once another had written them."""
        runs: dict[str, list[str]] = {}
        for rv, name, writer, _seen in sorted(self.writes):
            if rv < start or (end is not None and rv >= end):
                continue
            seq = runs.setdefault(name, [])
            if not seq or seq[-1] != writer:
                seq.append(writer)
        return sum(1 for seq in runs.values() if len(seq) != len(set(seq)))


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
    audit = WriteAudit(api, ns).start()
    bounds = [0]
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

    def cpu() -> dict[str, float]:
        return {name: c.cpu_seconds() for name, c in replicas.items() if c.process.poll() is None}

    def wait(done: Callable[[], bool], what: str, interval: float = 2) -> None:
        progress = Progress(f"shards: {what}")

        def finished() -> bool:
            loads.append(load_average())
            progress.tick(what)
            return done()

        wait_until(finished, timeout=7200, what=what, interval=interval)

    def healthy() -> bool:
        statuses = cluster.statuses(ns)
        return sum(1 for s in statuses.values() if s.get("phase") == "Healthy") == count

    cpu0 = cpu()
    started = time.monotonic()
    in_parallel(
        lambda n: cluster.create(ns, "rollouts", rollout(n, "v1", replicas=1, steps=STEPS)), names
    )
    wait(healthy, f"{count} first deploys")
    result.first_deploy_s = time.monotonic() - started
    result.first_deploy_cpu = {k: v - cpu0[k] for k, v in cpu().items()}
    statuses = cluster.statuses(ns)
    result.split = dict(Counter(str(s.get("controller")) for s in statuses.values()))
    say(f"shards: split {result.split}, CPU {result.first_deploy_cpu}")
    v1 = {n: s.get("stableRevision") for n, s in statuses.items()}

    # The canary: every Rollout is brought to its (indefinite) pause; ctl-c is SIGKILLed
    # with all of them paused mid-canary, and its Rollouts are promoted at once, so the
    # others must take its shards over to carry them on.
    cpu0 = cpu()
    canary_started = time.monotonic()
    in_parallel(
        lambda n: cluster.replace_template(ns, n, rollout(n, "v2", replicas=1, steps=STEPS)), names
    )

    def paused() -> bool:
        statuses = cluster.statuses(ns)
        return all(
            s.get("canaryRevision") and s.get("currentStepIndex") == 1 for s in statuses.values()
        )

    wait(paused, "every canary in its pause")
    result.to_pause_s = time.monotonic() - canary_started
    theirs = [n for n, s in cluster.statuses(ns).items() if s.get("controller") == "ctl-c"]
    their_shards = {shard_of(f"{ns}/{n}", shards) for n in theirs}
    result.killed_rollouts = len(theirs)
    result.killed_shards = len(their_shards)
    killed_cpu = replicas["ctl-c"].cpu_seconds() - cpu0["ctl-c"]
    bounds.append(audit.now())
    replicas["ctl-c"].process.kill()
    killed = time.monotonic()
    in_parallel(lambda n: promote(cluster, ns, n), theirs)

    def taken_over() -> bool:
        firsts = audit.first_writes_after(killed, exclude="ctl-c", shards=shards, ns=ns)
        return their_shards <= set(firsts)

    wait(taken_over, "ctl-c's shards written by the others", interval=0.5)
    firsts = audit.first_writes_after(killed, exclude="ctl-c", shards=shards, ns=ns)
    result.takeover_s = max(firsts[s] for s in their_shards) - killed
    result.takeover_first_s = min(firsts[s] for s in their_shards) - killed
    say(
        f"shards: each of ctl-c's {len(their_shards)} shards written by another within "
        f"{result.takeover_s:.1f} s of the SIGKILL (first {result.takeover_first_s:.1f} s)"
    )
    wait(
        lambda: not [n for n, s in cluster.statuses(ns).items() if s.get("controller") == "ctl-c"],
        "ctl-c's Rollouts all written by the others",
        interval=0.5,
    )
    result.takeover_all_s = time.monotonic() - killed
    say(f"shards: all {len(theirs)} written by the others {result.takeover_all_s:.1f} s after")

    # ctl-c comes back; the rest of the canaries are promoted, and while the others carry
    # them on a 4th replica joins (four live) and is stopped again (SIGTERM).
    bounds.append(audit.now())
    replicas["ctl-c"] = start("ctl-c")
    wait_until(split, ok=even(3), timeout=600, what="ctl-c back in", interval=0.5)
    rest = [n for n in names if n not in set(theirs)]
    promoting = threading.Thread(target=in_parallel, args=(lambda n: promote(cluster, ns, n), rest))
    promoting.start()
    bounds.append(audit.now())
    joined = time.monotonic()
    replicas["ctl-d"] = start("ctl-d")
    wait_until(split, ok=even(4), timeout=600, what="the 4th replica's quarter", interval=0.5)
    result.join_s = time.monotonic() - joined
    result.join_split = split()
    say(f"shards: a quarter each {result.join_s:.1f} s after the 4th replica started")
    bounds.append(audit.now())
    leaving = time.monotonic()
    replicas["ctl-d"].stop()
    wait_until(split, ok=even(3), timeout=600, what="its shards back", interval=0.2)
    result.leave_s = time.monotonic() - leaving
    say(f"shards: its shards back {result.leave_s:.1f} s after SIGTERM")
    promoting.join()

    def promoted() -> bool:
        """Every Rollout Healthy on a stable revision other than its first one."""
        statuses = cluster.statuses(ns)
        return (
            sum(
                1
                for n, s in statuses.items()
                if s.get("phase") == "Healthy" and s.get("stableRevision") != v1.get(n)
            )
            == count
        )

    wait(promoted, "every canary promoted")
    result.canary_s = time.monotonic() - canary_started
    result.canary_cpu = {k: v - cpu0[k] for k, v in cpu().items() if k in cpu0 and k != "ctl-c"}
    result.canary_cpu["ctl-c (until killed)"] = killed_cpu
    result.load = sum(loads) / len(loads) if loads else load_average()
    for controller in replicas.values():
        controller.stop()
    audit.stop()
    phases = ["before the SIGKILL", "after the SIGKILL", "ctl-c back", "4th in", "4th left"]
    ends: list[int | None] = [*bounds[1:], None]
    result.double_writes = {
        phase: audit.double_writes(start_rv, end_rv)
        for phase, start_rv, end_rv in zip(phases, bounds, ends, strict=True)
    }
    result.writes_audited = len(audit.writes)
    result.audit_errors = audit.errors
    say(
        f"shards: {result.writes_audited} status writes audited, written by two in turn: "
        f"{result.double_writes}, watch errors {len(audit.errors)}"
    )
    return result
