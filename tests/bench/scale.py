"""Many Rollouts on one controller: first deploys, then a canary step each, then idle.

The shape of the anchors' comparison with Argo Rollouts: every Rollout has 1 replica and
steps ``setWeight 50`` → ``pause 1s``; all are created at once, and once all are Healthy
all get v2 at once. Pods are simulated by the node agent (no processes). Figures per
phase: wall time, the controller's CPU seconds per Rollout, API requests per Rollout;
over both: peak RSS, reconcile and queue latency, and the API requests of an idle window.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.bench.process import Controller, Progress, load_average, say
from tests.bench.profiling import Recording, Summary
from tests.bench.workload import Cluster, in_parallel, rollout
from tests.waiting import wait_until

STEPS: list[dict[str, Any]] = [{"setWeight": 50}, {"pause": {"duration": "1s"}}]


@dataclass
class Phase:
    seconds: float = 0.0
    cpu: float = 0.0
    requests: float = 0.0
    passes: float = 0.0
    echoes: float = 0.0
    load: float = 0.0
    # API requests of the phase by "verb resource" (their sum is ``requests``).
    requests_by_kind: dict[str, float] = field(default_factory=dict)
    # Of those, the ones not answered 2xx, by "verb resource code" (conflicts, errors).
    requests_not_ok: dict[str, float] = field(default_factory=dict)


@dataclass
class ScaleResult:
    rollouts: int
    first_deploy: Phase = field(default_factory=Phase)
    canary: Phase = field(default_factory=Phase)
    peak_rss_mib: float = 0.0
    reconcile: tuple[float, float, int] = (0.0, 0.0, 0)
    queue_wait: tuple[float, float, int] = (0.0, 0.0, 0)
    idle_window_s: float = 0.0
    idle_requests: dict[str, float] = field(default_factory=dict)
    profile: Summary | None = None

    @property
    def cpu_per_rollout(self) -> float:
        return (self.first_deploy.cpu + self.canary.cpu) / self.rollouts

    @property
    def requests_per_rollout(self) -> float:
        return (self.first_deploy.requests + self.canary.requests) / self.rollouts


def bench_scale(
    cluster: Cluster,
    controller: Controller,
    *,
    count: int,
    namespace: str,
    idle_seconds: float,
    profile: Path | None = None,
    progress_deadline_seconds: int | None = None,
) -> ScaleResult:
    ns = cluster.namespace(namespace)
    result = ScaleResult(rollouts=count)
    names = [f"r{i:05d}" for i in range(count)]
    recording = Recording(controller.pid, profile) if profile is not None else None

    def deadline(body: dict[str, Any]) -> dict[str, Any]:
        if progress_deadline_seconds is not None:
            body["spec"]["progressDeadlineSeconds"] = progress_deadline_seconds
        return body

    def create(name: str) -> None:
        body = rollout(name, "v1", replicas=1, steps=STEPS, scaleDownDelaySeconds=0)
        cluster.create(ns, "rollouts", deadline(body))

    result.first_deploy = _phase(
        controller,
        lambda: in_parallel(create, names),
        done=lambda statuses: _healthy(statuses, count),
        cluster=cluster,
        ns=ns,
        what=f"{count} first deploys",
    )
    say(f"scale: {count} first deploys healthy in {result.first_deploy.seconds:.0f} s")
    v1 = {n: s["stableRevision"] for n, s in cluster.statuses(ns).items()}

    def give_v2(name: str) -> None:
        cluster.replace_template(ns, name, deadline(rollout(name, "v2", replicas=1, steps=STEPS)))

    result.canary = _phase(
        controller,
        lambda: in_parallel(give_v2, names),
        done=lambda statuses: _healthy(statuses, count, not_revisions=v1),
        cluster=cluster,
        ns=ns,
        what=f"{count} canaries promoted",
    )
    say(f"scale: {count} canaries promoted in {result.canary.seconds:.0f} s")
    if recording is not None:
        result.profile = recording.stop()
    result.peak_rss_mib = controller.peak_rss_mib()
    result.reconcile = controller.reconcile_quantiles()
    result.queue_wait = controller.histogram_quantiles("deployctl_workqueue_wait_seconds")
    result.idle_window_s = idle_seconds
    result.idle_requests = idle_requests(cluster, controller, ns, seconds=idle_seconds)
    return result


def _phase(
    controller: Controller,
    start: Callable[[], None],
    *,
    done: Callable[[dict[str, dict[str, Any]]], tuple[bool, str]],
    cluster: Cluster,
    ns: str,
    what: str,
) -> Phase:
    cpu0, api0 = controller.cpu_seconds(), controller.api_requests(by_code=True)
    passes0 = controller.counter("deployctl_reconcile")
    echoes0 = controller.counter("deployctl_rollout_events", handled="echo")
    started = time.monotonic()
    loads: list[float] = []
    progress = Progress(f"scale: {what}")
    start()

    def finished() -> bool:
        complete, text = done(cluster.statuses(ns))
        loads.append(load_average())
        progress.tick(f"{text}, controller CPU {controller.cpu_seconds() - cpu0:.0f} s")
        return complete

    wait_until(finished, timeout=7200, what=what, interval=2)
    seconds, cpu = time.monotonic() - started, controller.cpu_seconds()
    api1 = controller.api_requests(by_code=True)
    by_code = {k: v - api0.get(k, 0.0) for k, v in api1.items() if v != api0.get(k, 0.0)}
    by_kind: dict[str, float] = {}
    for key, n in by_code.items():
        kind = key.rsplit(" ", 1)[0]
        by_kind[kind] = by_kind.get(kind, 0.0) + n
    return Phase(
        seconds=seconds,
        cpu=cpu - cpu0,
        requests=sum(by_kind.values()),
        requests_by_kind=by_kind,
        requests_not_ok={
            k: n for k, n in by_code.items() if not k.rsplit(" ", 1)[1].startswith("2")
        },
        passes=controller.counter("deployctl_reconcile") - passes0,
        echoes=controller.counter("deployctl_rollout_events", handled="echo") - echoes0,
        load=sum(loads) / len(loads) if loads else load_average(),
    )


def _healthy(
    statuses: dict[str, dict[str, Any]], count: int, *, not_revisions: dict[str, str] | None = None
) -> tuple[bool, str]:
    healthy = sum(
        1
        for name, s in statuses.items()
        if s.get("phase") == "Healthy"
        and (not_revisions is None or s.get("stableRevision") != not_revisions.get(name))
    )
    return healthy == count, f"{healthy}/{count} done"


def idle_requests(
    cluster: Cluster, controller: Controller, ns: str, *, seconds: float
) -> dict[str, float]:
    """API requests by verb over ``seconds`` once everything is Healthy and settled."""

    def busy_requests() -> float:
        """Requests other than the lease's renewals and the watches' re-opening."""
        return sum(
            v for k, v in controller.api_requests().items() if "lease" not in k and "watch" not in k
        )

    # Each promotion keeps the old revision for scaleDownDelaySeconds, then writes status
    # once more when it scales it down: idle starts after the last of those.
    wait_until(
        lambda: not any(s.get("scaleDownAt") for s in cluster.statuses(ns).values()),
        timeout=600,
        what="every old revision scaled down",
        interval=2,
    )
    quiet_since = [time.monotonic(), busy_requests()]

    def settled() -> bool:
        total = busy_requests()
        if total != quiet_since[1]:
            quiet_since[:] = [time.monotonic(), total]
        return time.monotonic() - quiet_since[0] > 10

    wait_until(settled, timeout=600, what="the controller to go quiet", interval=1)
    before = controller.api_requests()
    time.sleep(seconds)  # the measurement window itself
    after = controller.api_requests()
    return {
        k: after.get(k, 0) - before.get(k, 0) for k in after if after.get(k, 0) != before.get(k, 0)
    }
