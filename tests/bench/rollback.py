"""Time to rollback: from the first request a broken canary serves to the moment no Ready
canary pod is behind the Service, and where that time goes.

A canary Rollout (4 replicas, stable v1) under 50 requests/s gets a v2 whose pods answer
30% of requests with 500; steps ``setWeight 25`` then an analysis (errorRate preset, max
5%, 10 s window, 2 s interval, failureLimit 0), Prometheus scraping every second: the
anchors' shape. Beside the total, a watcher thread notes when each stage was first seen
(the canary's first series in Prometheus, the analysis run started, its first verdict,
the abort in status), so the report can say which stage the time is spent in.
"""

from __future__ import annotations

import statistics
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client as k8s

from sandbox.prometheus import PrometheusServer
from sandbox.traffic import TrafficGenerator
from tests.bench.process import say
from tests.bench.stats import percentile
from tests.bench.workload import Cluster, error_rate_template, rollout
from tests.waiting import wait_until

STEPS: list[dict[str, Any]] = [
    {"setWeight": 25},
    {"analysis": {"templates": [{"name": "errors"}]}},
]


@dataclass
class RollbackRun:
    seconds: float
    failed_requests: int
    canary_requests: int
    reason: str
    # Seconds after the first canary request each stage was first seen (None: not seen).
    stages: dict[str, float | None] = field(default_factory=dict)


@dataclass
class RollbackResult:
    runs: list[RollbackRun] = field(default_factory=list)

    def seconds(self) -> list[float]:
        return [r.seconds for r in self.runs]

    def percentile(self, q: float) -> float:
        return percentile(self.seconds(), q)

    def stage_medians(self) -> dict[str, float]:
        names = [name for run in self.runs for name in run.stages]
        out: dict[str, float] = {}
        for name in dict.fromkeys(names):
            values = [v for run in self.runs if (v := run.stages.get(name)) is not None]
            if values:
                out[name] = statistics.median(values)
        return out


def bench_rollback(
    cluster: Cluster, api: k8s.ApiClient, prometheus: PrometheusServer, *, runs: int
) -> RollbackResult:
    result = RollbackResult()
    for run in range(runs):
        outcome = rollback_run(cluster, api, prometheus, run)
        result.runs.append(outcome)
        stages = ", ".join(f"{k} {v:.2f}" for k, v in outcome.stages.items() if v is not None)
        say(
            f"rollback run {run + 1}/{runs}: {outcome.seconds:.2f} s from first canary request "
            f"to 0% canary; {outcome.failed_requests} of {outcome.canary_requests} canary "
            f"requests failed; reason {outcome.reason}; stages: {stages}"
        )
    return result


class _Stages(threading.Thread):
    """Notes when each stage of one rollback was first seen, polling status and Prometheus."""

    def __init__(self, cluster: Cluster, prometheus: PrometheusServer, ns: str) -> None:
        super().__init__(daemon=True)
        self.cluster = cluster
        self.prometheus = prometheus
        self.ns = ns
        self.canary: str | None = None
        self.seen: dict[str, float] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.03):
            try:
                self._look()
            except Exception:  # a slow apiserver or Prometheus: look again
                continue

    def _look(self) -> None:
        now = time.monotonic()
        canary = self.canary
        if canary and "first series" not in self.seen:
            query = f'http_requests_total{{namespace="{self.ns}",revision="{canary}"}}'
            if self.prometheus.query(query):
                self.seen["first series"] = now
        if "aborted" in self.seen:
            return
        status = self.cluster.status(self.ns, "shop")
        for run in status.get("analysisRuns") or []:
            if canary and run.get("revision") != canary:
                continue
            self.seen.setdefault("analysis started", now)
            measured = [m for metric in run.get("metrics") or [] for m in metric["measurements"]]
            if any(m.get("phase") != "Inconclusive" for m in measured):
                self.seen.setdefault("first verdict", now)
        if status.get("aborted"):
            self.seen["aborted"] = now


def rollback_run(
    cluster: Cluster, api: k8s.ApiClient, prometheus: PrometheusServer, run: int
) -> RollbackRun:
    ns = cluster.namespace(f"bench-rollback-{run}")
    cluster.create(ns, "analysistemplates", error_rate_template())
    cluster.service(ns, "shop", "shop")
    cluster.create(
        ns, "rollouts", rollout("shop", "v1", replicas=4, steps=STEPS, scaleDownDelaySeconds=0)
    )
    wait_until(
        lambda: cluster.status(ns, "shop").get("phase") == "Healthy",
        timeout=120,
        what="v1 healthy",
        interval=0.2,
    )
    stable = cluster.status(ns, "shop")["stableRevision"]
    traffic = TrafficGenerator(
        api, namespace=ns, service="shop", rate_per_second=50, refresh_interval=0.1
    ).start()
    stages = _Stages(cluster, prometheus, ns)
    try:
        wait_until(lambda: traffic.stats().total > 50, timeout=60, what="traffic")
        broken = rollout("shop", "v2", replicas=4, steps=STEPS, env={"DEMO_ERROR_RATE": "0.3"})
        cluster.replace_template(ns, "shop", broken)
        stages.start()

        def canary_served() -> float | None:
            by_revision = traffic.stats().by_revision()
            served = any(r != stable and n > 0 for r, n in by_revision.items())
            return time.monotonic() if served else None

        first = wait_until(
            canary_served, timeout=120, what="the canary's first request", interval=0.02
        )
        canary = next(r for r in traffic.stats().by_revision() if r != stable)
        stages.canary = canary

        def canary_gone() -> float | None:
            view = traffic.refresh()
            left = [e for b in view.backends for e in b.endpoints if e.revision == canary]
            return time.monotonic() if not left else None

        gone = wait_until(canary_gone, timeout=180, what="no canary traffic", interval=0.02)
        codes = traffic.stats().by_code(canary)
        bad = sum(n for code, n in codes.items() if not code.isdigit() or code.startswith("5"))
        status = cluster.status(ns, "shop")
        return RollbackRun(
            seconds=gone - first,
            failed_requests=bad,
            canary_requests=sum(codes.values()),
            reason=str(status.get("reason")),
            stages={
                name: (stages.seen[name] - first if name in stages.seen else None)
                for name in ("first series", "analysis started", "first verdict", "aborted")
            },
        )
    finally:
        stages.stop.set()
        traffic.stop()
