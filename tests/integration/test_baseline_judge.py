"""The comparison judge against a baseline, end to end: real apiserver, node agent
running demo-app pods (latency a log-normal distribution), real Prometheus, the operator
as a process.

Two Rollouts in one namespace go through the same steps at the same time, each with
``canary.baseline.enabled`` and the same AnalysisTemplate (mean latency per revision,
``compare: {against: baseline}``): one canary's median latency is 20% above its stable's,
the other's is the same. The slower one is failed by the judge with its evidence (sample
sizes, medians, effect, p-value, the shift's interval) in status; the identical one
passes and is promoted. Pods are watched from the apiserver throughout: baseline pods
(``deployctl.io/role=baseline``, the stable's image) appear beside each canary, never
more than the canary's, and are gone once it is promoted or rolled back.
"""

from __future__ import annotations

from typing import Any

# The judge's template is the one the bench's seeded repetitions measure (make bench, judge).
from tests.bench.judge import latency_template
from tests.integration.harness import Cluster, demo_rollout
from tests.integration.podwatch import Recorder, is_terminating
from tests.waiting import wait_until

ROLE = "deployctl.io/role"
REVISION = "deployctl.io/revision"
MEDIAN = 0.05  # seconds, the stable's median latency
SPREAD = "0.25"  # sigma of log(latency)

STEPS = [
    {"setWeight": 25},
    {"analysis": {"templates": [{"name": "latency"}]}},
]


# The mean latency of one revision's requests over the last 3 s, once per scrape (1 s).
def rollout(name: str, version: str, latency: float) -> dict[str, Any]:
    return demo_rollout(
        name,
        version=version,
        env={
            "DEMO_LATENCY_SECONDS": str(latency),
            "DEMO_LATENCY_SPREAD": SPREAD,
        },
        strategy={"canary": {"steps": STEPS, "baseline": {"enabled": True}}},
        progress_deadline=300,
    )


def healthy(cluster: Cluster, name: str) -> dict[str, Any]:
    return dict(
        wait_until(
            lambda: cluster.status(name),
            ok=lambda s: (
                s.get("phase") == "Healthy"
                and s.get("observedGeneration") == cluster.rollout(name)["metadata"]["generation"]
            ),
            timeout=120,
            what=f"{name} Healthy",
        )
    )


def baseline_pods(cluster: Cluster, name: str) -> list[Any]:
    return [
        p
        for p in cluster.core.list_namespaced_pod(
            cluster.namespace, label_selector=f"deployctl.io/rollout={name},{ROLE}=baseline"
        ).items
        if p.metadata.deletion_timestamp is None
    ]


def _baseline_of(cluster: Cluster, name: str) -> Any:
    return lambda: baseline_pods(cluster, name)


def test_a_slower_canary_fails_against_its_baseline_and_an_identical_one_passes(
    cluster: Cluster, start_controller: Any, traffic: Any, kube_api: Any
) -> None:
    for name in ("slow", "same"):
        cluster.create_service(name, {"app": name}, rollout=name)
    cluster.create_template(latency_template())
    # One sample a scrape: the sandbox's Prometheus scrapes every second.
    start_controller(args=["--no-leader-elect", "--scrape-interval", "1"])
    for name in ("slow", "same"):
        cluster.apply_rollout(rollout(name, "v1", MEDIAN))
    stable = {name: healthy(cluster, name)["stableRevision"] for name in ("slow", "same")}
    for name in ("slow", "same"):
        traffic(cluster.namespace, service=name, rate_per_second=40)

    with Recorder(kube_api, cluster.namespace) as recorder:
        cluster.apply_rollout(rollout("slow", "v2", MEDIAN * 1.2))
        cluster.apply_rollout(rollout("same", "v2", MEDIAN))

        # Baseline pods come with each canary: the stable's image, their own revision.
        for name in ("slow", "same"):
            pods = wait_until(
                _baseline_of(cluster, name),
                ok=lambda found: len(found) == 1,
                timeout=90,
                what=f"{name}'s baseline pod",
            )
            (pod,) = pods
            assert pod.metadata.labels[REVISION] == f"{stable[name]}-baseline"
            assert pod.spec.containers[0].image == "deployctl/demo-app:v1"

        failed = wait_until(
            lambda: cluster.status("slow"),
            ok=lambda s: s.get("phase") == "Degraded",
            timeout=240,
            what="the slower canary rolled back by the judge",
        )
        passed = healthy(cluster, "same")
        wait_until(
            lambda: [baseline_pods(cluster, n) for n in ("slow", "same")],
            ok=lambda found: found == [[], []],
            timeout=90,
            what="baseline pods gone after the rollback and the promotion",
        )
        wait_until(recorder.caught_up, ok=bool, timeout=30, what="the pod watch caught up")

    # The evidence, in status.
    assert failed["reason"] == "AnalysisFailed", failed
    assert "latency: increase beyond tolerance 10%" in failed["message"]
    (measurement,) = [
        m
        for run in failed["analysisRuns"]
        if run["key"] == "step-1"
        for metric in run["metrics"]
        for m in metric["measurements"]
        if m["phase"] == "Failed"
    ]
    evidence = measurement["comparison"]
    assert evidence["against"] == "baseline"
    assert evidence["canarySamples"] >= 40 and evidence["comparisonSamples"] >= 40
    assert 0.1 < evidence["effect"] < 0.35, evidence
    assert evidence["pValue"] < 0.02
    assert evidence["shiftLow"] > 0
    assert passed["stableRevision"] not in (stable["same"], None)
    (run,) = [r for r in passed["analysisRuns"] if r["key"] == "step-1"]
    assert run["phase"] == "Successful", run

    # Every state the pods went through: never more baseline pods than canary pods
    # (the canary's come first), and baseline pods only while a canary is in flight.
    most = {"slow": 0, "same": 0}
    for view in recorder.replay():
        for name in ("slow", "same"):
            pods = [
                p
                for p in view.pods.values()
                if p["metadata"]["labels"].get("deployctl.io/rollout") == name
                and not is_terminating(p)
            ]
            baseline = sum(1 for p in pods if p["metadata"]["labels"].get(ROLE) == "baseline")
            canary = sum(
                1
                for p in pods
                if p["metadata"]["labels"].get(REVISION) not in (stable[name], None)
                and p["metadata"]["labels"].get(ROLE) != "baseline"
            )
            most[name] = max(most[name], baseline)
            if baseline > canary:
                raise AssertionError(f"{name}: {baseline} baseline pods beside {canary} canary")
    assert most == {"slow": 1, "same": 1}
