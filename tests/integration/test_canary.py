"""A canary end to end: real apiserver, node agent running demo-app pods, real Prometheus.

The operator runs as a real process. A healthy version is promoted through its steps; a
version answering 30% of requests with 500 is rolled back automatically by the analysis
step, with the evidence in status and in an Event.
"""

from __future__ import annotations

from typing import Any

from tests.integration.harness import Cluster, demo_rollout, error_rate_template
from tests.waiting import wait_until

STEPS = [
    {"setWeight": 25},
    {"pause": {"duration": "1s"}},
    {"analysis": {"templates": [{"name": "errors"}]}},
    {"setWeight": 50},
    {"pause": {"duration": "1s"}},
]


def canary(version: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    return demo_rollout(
        "shop",
        version=version,
        env=env,
        strategy={
            "canary": {
                "stableService": "shop-stable",
                "canaryService": "shop-canary",
                "steps": STEPS,
            }
        },
    )


def healthy(cluster: Cluster, *, revision_of: str = "stableRevision") -> dict[str, Any]:
    return dict(
        wait_until(
            lambda: cluster.status("shop"),
            ok=lambda s: (
                s.get("phase") == "Healthy"
                and s.get("observedGeneration") == cluster.rollout("shop")["metadata"]["generation"]
            ),
            timeout=90,
            what="rollout Healthy",
        )
    )


def test_canary_is_promoted_then_a_broken_version_is_rolled_back(
    cluster: Cluster, start_controller: Any, traffic: Any
) -> None:
    cluster.create_service("shop", {"app": "shop"}, rollout="shop")
    cluster.create_service("shop-stable", {"app": "shop"}, rollout="shop")
    cluster.create_service("shop-canary", {"app": "shop"}, rollout="shop")
    cluster.create_template(error_rate_template("errors"))
    controller = start_controller()

    # First deploy: straight to 100%, no analysis.
    cluster.apply_rollout(canary("v1"))
    first = healthy(cluster)
    v1 = first["stableRevision"]
    assert cluster.replicas_by_revision() == {v1: 4}
    assert cluster.service_selector("shop-stable")["deployctl.io/revision"] == v1
    generator = traffic(cluster.namespace, service="shop", rate_per_second=40)

    # A healthy v2 walks through every step and becomes stable.
    cluster.apply_rollout(canary("v2"))
    status = wait_until(
        lambda: cluster.status("shop"),
        ok=lambda s: s.get("canaryRevision") not in (None, v1),
        timeout=30,
        what="a canary revision",
    )
    v2 = status["canaryRevision"]
    promoted = healthy(cluster)
    assert promoted["stableRevision"] == v2
    assert cluster.service_selector("shop-stable")["deployctl.io/revision"] == v2
    step_runs = [r for r in promoted.get("analysisRuns", []) if r["key"] == "step-2"]
    assert step_runs and step_runs[0]["phase"] == "Successful"
    wait_until(
        cluster.replicas_by_revision,
        ok=lambda r: r.get(v2) == 4 and r.get(v1, 0) == 0,
        timeout=60,
        what="v1 scaled down after the scale-down delay",
    )

    # A broken v3 (30% errors) is rolled back by the analysis step.
    generator.reset()
    cluster.apply_rollout(canary("v3", {"DEMO_ERROR_RATE": "0.3"}))
    aborted = wait_until(
        lambda: cluster.status("shop"),
        ok=lambda s: s.get("phase") == "Degraded",
        timeout=90,
        what="the broken canary to be rolled back",
    )
    v3 = aborted["canaryRevision"]
    assert aborted["stableRevision"] == v2
    assert aborted["reason"] == "AnalysisFailed"
    assert "error-rate" in aborted["message"] and "> max 0.05" in aborted["message"]
    wait_until(
        cluster.replicas_by_revision,
        ok=lambda r: r.get(v3, 0) == 0 and r.get(v2) == 4,
        timeout=30,
        what="canary scaled to 0, stable full",
    )
    assert cluster.service_selector("shop-stable")["deployctl.io/revision"] == v2
    warnings = cluster.events_when(
        lambda events: [e for e in events if e.type == "Warning"],
        reason="AnalysisFailed",
        what="a Warning Event AnalysisFailed",
    )
    assert "error-rate" in [e for e in warnings if e.type == "Warning"][0].message
    assert controller.process.poll() is None, controller.log_text()[-3000:]
