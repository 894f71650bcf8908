"""The comparison judge's error rates, measured on the sandbox: seeded repetitions of a
canary 20% slower than its baseline and of one identical to it, many at once.

Everything is real except the kubelet: the apiserver, the real Prometheus scraping the
demo app's own ``/metrics`` every second, the ``deployctl controller`` process, demo-app
processes for every pod (started by the node agent) and the sandbox's traffic generator
in front of each Service. Each repetition is one Rollout (3 replicas, ``setWeight 33`` so
1 canary, 1 baseline and 1 stable pod, ``canary.baseline.enabled``) whose v1 and v2 draw
log-normal latencies (median 50 ms, sigma of the log 0.25) from generators seeded per
Rollout (``DEMO_LATENCY_SEED``): repetition ``i``'s stable and baseline pods use seed
``1000 + i``, its canary ``2000 + i`` (identical) or ``3000 + i`` (20% slower). The step's
analysis is the template of ``tests/integration/test_baseline_judge.py``: the mean
latency of one revision's requests over the last 3 s, one sample a scrape, judged
against the baseline (Mann-Whitney, direction increase) at the configured confidence and
tolerance. Repetitions run ``batch`` at a time (half of each kind), each batch in its
own namespace, removed before the next.

A false positive is an identical canary rolled back; a false negative a slower canary
promoted. Not a test: it reports the rates beside what the confidence implies and
asserts nothing.

    BENCH_SECTIONS=judge BENCH_JUDGE_REPETITIONS=30 BENCH_JUDGE_BATCH=20 make bench
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client as k8s

from sandbox.node_agent import NodeAgent
from sandbox.traffic import TrafficGenerator
from tests.bench.process import Controller, Progress, load_average, say
from tests.bench.workload import GROUP, VERSION, Cluster, in_parallel, rollout
from tests.waiting import wait_until

MEDIAN = 0.05  # seconds: the stable's median latency
SPREAD = "0.25"  # sigma of log(latency)
SLOWER = 1.2  # the slow canary's median, times the stable's
REPLICAS = 3
STEPS: list[dict[str, Any]] = [
    {"setWeight": 33},  # round(0.33 x 3) = 1 canary; 1 baseline out of the stable's 2
    {"analysis": {"templates": [{"name": "latency"}]}},
]
RATE_PER_SERVICE = 30.0  # requests/s: about 10 per pod, as in the sandbox test
CONFIDENCE = 0.98
TOLERANCE = 0.1
MIN_SAMPLES = 40
SERIES = '{namespace="{{rollout.namespace}}", revision="{{canary.hash}}"}'
MEAN_LATENCY = (
    f"sum(rate(http_request_duration_seconds_sum{SERIES}[3s])) / "
    f"sum(rate(http_request_duration_seconds_count{SERIES}[3s]))"
)

Sandbox = Callable[..., AbstractContextManager[tuple[Any, Any, k8s.ApiClient]]]


@dataclass
class Repetition:
    name: str
    slower: bool
    seed: int
    outcome: str  # "promoted", "rolled back" or "undecided"
    p_value: float | None = None
    effect: float | None = None
    canary_samples: int | None = None
    baseline_samples: int | None = None


@dataclass
class JudgeResult:
    repetitions: int
    batch: int
    confidence: float = CONFIDENCE
    tolerance: float = TOLERANCE
    min_samples: int = MIN_SAMPLES
    slower: float = SLOWER
    seconds: float = 0.0
    load: float = 0.0
    runs: list[Repetition] = field(default_factory=list)

    def count(self, *, slower: bool, outcome: str) -> int:
        return sum(1 for r in self.runs if r.slower == slower and r.outcome == outcome)


def latency_template() -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "AnalysisTemplate",
        "metadata": {"name": "latency"},
        "spec": {
            "metrics": [
                {
                    "name": "latency",
                    "initialDelay": "5s",
                    "interval": "90s",
                    "count": 1,
                    "provider": {"prometheus": {"query": MEAN_LATENCY}},
                    "compare": {
                        "against": "baseline",
                        "direction": "increase",
                        "confidence": CONFIDENCE,
                        "tolerance": TOLERANCE,
                        "minSamples": MIN_SAMPLES,
                    },
                }
            ]
        },
    }


def _env(median: float, seed: int) -> dict[str, str]:
    return {
        "DEMO_LATENCY_SECONDS": f"{median:g}",
        "DEMO_LATENCY_SPREAD": SPREAD,
        "DEMO_LATENCY_SEED": str(seed),
    }


def bench_judge(
    workdir: Path,
    *,
    repetitions: int,
    batch: int,
    sandbox: Sandbox,
    controller_args: list[str],
) -> JudgeResult:
    workdir.mkdir(parents=True)
    result = JudgeResult(repetitions=repetitions, batch=batch)
    with sandbox(workdir) as (plane, prometheus, api), ExitStack() as stack:
        cluster = Cluster(api)
        cluster.core.create_namespace({"metadata": {"name": "deployctl-system"}})
        agent = NodeAgent(
            api, run_processes=True, file_sd_dir=workdir / "file_sd", log_dir=workdir / "pods"
        )
        agent.start()
        stack.callback(agent.stop)
        controller = Controller(
            plane.kubeconfig,
            prometheus.url,
            workdir / "controller.log",
            [*controller_args, "--scrape-interval", "1"],
        )
        stack.callback(controller.stop)
        # Repetition i of each kind; a batch holds half of each.
        plan = [(i, slower) for i in range(repetitions) for slower in (False, True)]
        began = time.monotonic()
        loads: list[float] = []
        for first in range(0, len(plan), batch):
            chunk = plan[first : first + batch]
            say(f"judge: batch {first // batch + 1}, {len(chunk)} Rollouts")
            result.runs += _batch(cluster, api, f"bench-judge-{first // batch}", chunk, loads)
        result.seconds = time.monotonic() - began
        result.load = sum(loads) / len(loads) if loads else load_average()
    say(
        f"judge: {repetitions} identical canaries, "
        f"{result.count(slower=False, outcome='rolled back')} rolled back (false positives); "
        f"{repetitions} canaries {SLOWER:g}x slower, "
        f"{result.count(slower=True, outcome='promoted')} promoted (false negatives); "
        f"in {result.seconds:.0f} s, load {result.load:.1f}"
    )
    return result


def _batch(
    cluster: Cluster,
    api: k8s.ApiClient,
    ns: str,
    chunk: list[tuple[int, bool]],
    loads: list[float],
) -> list[Repetition]:
    cluster.namespace(ns)
    cluster.create(ns, "analysistemplates", latency_template())
    names = {f"{'slow' if slower else 'same'}-{i:03d}": (i, slower) for i, slower in chunk}

    def create(name: str) -> None:
        i, _ = names[name]
        cluster.service(ns, name, name)
        body = rollout(
            name,
            "v1",
            replicas=REPLICAS,
            steps=STEPS,
            env=_env(MEDIAN, 1000 + i),
            baseline={"enabled": True},
            scaleDownDelaySeconds=0,
        )
        body["spec"]["progressDeadlineSeconds"] = 600
        cluster.create(ns, "rollouts", body)

    in_parallel(create, names)
    progress = Progress(f"judge: {len(names)} first deploys")

    def all_healthy() -> bool:
        statuses = cluster.statuses(ns)
        healthy = sum(1 for s in statuses.values() if s.get("phase") == "Healthy")
        progress.tick(f"{healthy}/{len(names)} healthy")
        return healthy == len(names)

    wait_until(all_healthy, timeout=1800, what=f"{ns}: first deploys", interval=2)
    stable = {n: s["stableRevision"] for n, s in cluster.statuses(ns).items()}
    generators = [
        TrafficGenerator(api, namespace=ns, service=name, rate_per_second=RATE_PER_SERVICE)
        for name in names
    ]
    try:
        for generator in generators:
            generator.start()
        wait_until(
            lambda: all(g.stats().total > 30 for g in generators),
            timeout=300,
            what=f"{ns}: traffic to every Service",
            interval=1,
        )

        def give_v2(name: str) -> None:
            i, slower = names[name]
            env = _env(MEDIAN * SLOWER, 3000 + i) if slower else _env(MEDIAN, 2000 + i)
            body = rollout(
                name,
                "v2",
                replicas=REPLICAS,
                steps=STEPS,
                env=env,
                baseline={"enabled": True},
                scaleDownDelaySeconds=0,
            )
            cluster.replace_template(ns, name, body)

        in_parallel(give_v2, names)
        progress = Progress(f"judge: {len(names)} canaries")

        def decided() -> dict[str, dict[str, Any]] | None:
            statuses = cluster.statuses(ns)
            done = {n for n, s in statuses.items() if _outcome(s, stable[n]) != "undecided"}
            loads.append(load_average())
            progress.tick(f"{len(done)}/{len(names)} decided")
            return statuses if len(done) == len(names) else None

        statuses = wait_until(decided, timeout=1800, what=f"{ns}: canaries decided", interval=3)
    finally:
        for generator in generators:
            generator.stop()
    runs = [
        _repetition(name, slower, i, statuses[name], stable[name])
        for name, (i, slower) in sorted(names.items())
    ]
    _remove(cluster, ns)
    return runs


def _outcome(status: dict[str, Any], stable: str) -> str:
    if status.get("aborted"):
        return "rolled back"
    if status.get("phase") == "Healthy" and status.get("stableRevision") not in (None, stable):
        return "promoted"
    return "undecided"


def _repetition(name: str, slower: bool, i: int, status: dict[str, Any], stable: str) -> Repetition:
    out = Repetition(
        name=name,
        slower=slower,
        seed=(3000 if slower else 2000) + i,
        outcome=_outcome(status, stable),
    )
    evidence = [
        m["comparison"]
        for run in status.get("analysisRuns") or []
        if run.get("revision") != stable
        for metric in run.get("metrics") or []
        for m in metric.get("measurements") or []
        if m.get("comparison")
    ]
    if evidence:
        last = evidence[-1]
        out.p_value = last.get("pValue")
        out.effect = last.get("effect")
        out.canary_samples = last.get("canarySamples")
        out.baseline_samples = last.get("comparisonSamples")
    return out


def _remove(cluster: Cluster, ns: str) -> None:
    """Delete the batch's namespace and wait for its pods (their processes) to go, so
    the next batch has the machine to itself."""
    cluster.core.delete_namespace(ns)
    try:
        wait_until(
            lambda: not cluster.core.list_namespaced_pod(ns).items,
            timeout=600,
            what=f"{ns}: pods gone",
            interval=2,
        )
    except AssertionError as exc:  # the figures are taken: say so and go on
        say(f"judge: {exc}")
