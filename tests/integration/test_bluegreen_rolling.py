"""Blue-green and rolling end to end, side by side in one controller.

Blue-green: a healthy v2 is switched to and v1 scaled down after the delay; a broken v3
passes no post-promotion analysis and the active Service is switched straight back to v2
(still up), phase RolledBack. Rolling: a broken v2 stops at its 50% analysis gate and is
rolled back to v1 at full scale.
"""

from __future__ import annotations

from typing import Any

from controller.names import REVISION_LABEL
from tests.integration.harness import Cluster, demo_rollout, error_rate_template, settled
from tests.waiting import wait_until


def bluegreen(version: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    return demo_rollout(
        "pay",
        version=version,
        env=env,
        replicas=2,
        strategy={
            "blueGreen": {
                "activeService": "pay",
                "previewService": "pay-preview",
                "autoPromotionEnabled": True,
                "postPromotionAnalysis": {"templates": [{"name": "errors"}]},
                "scaleDownDelaySeconds": 2,
            }
        },
    )


def rolling(version: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    return demo_rollout(
        "cat",
        version=version,
        env=env,
        replicas=4,
        strategy={
            "rolling": {
                "maxSurge": 1,
                "maxUnavailable": 0,
                "gates": [{"atPercent": 50, "analysis": {"templates": [{"name": "errors"}]}}],
            }
        },
    )


def replicas_of(cluster: Cluster, rollout: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for rs in cluster.apps.list_namespaced_replica_set(cluster.namespace).items:
        labels = rs.metadata.labels or {}
        if labels.get("deployctl.io/rollout") == rollout:
            out[labels[REVISION_LABEL]] = rs.spec.replicas or 0
    return out


def test_bluegreen_switches_and_switches_back_and_rolling_stops_at_its_gate(
    cluster: Cluster, start_controller: Any, traffic: Any
) -> None:
    for service in ("pay", "pay-preview"):
        cluster.create_service(service, {"app": "pay"}, rollout="pay")
    cluster.create_service("cat", {"app": "cat"}, rollout="cat")
    cluster.create_template(error_rate_template("errors", interval="1s", count=3))
    controller = start_controller()

    cluster.apply_rollout(bluegreen("v1"))
    cluster.apply_rollout(rolling("v1"))
    pay_v1 = settled(cluster, "pay")["stableRevision"]
    cat_v1 = settled(cluster, "cat")["stableRevision"]
    assert cluster.service_selector("pay")[REVISION_LABEL] == pay_v1
    traffic(cluster.namespace, service="pay", rate_per_second=30)
    traffic(cluster.namespace, service="cat", rate_per_second=30)

    # Blue-green v2 (healthy) and rolling v2 (half its requests fail) at once.
    cluster.apply_rollout(bluegreen("v2"))
    cluster.apply_rollout(rolling("v2", {"DEMO_ERROR_RATE": "0.5"}))

    pay = settled(cluster, "pay")
    pay_v2 = pay["stableRevision"]
    assert pay["phase"] == "Healthy" and pay_v2 != pay_v1
    assert cluster.service_selector("pay")[REVISION_LABEL] == pay_v2
    post = [r for r in pay["analysisRuns"] if r["revision"] == pay_v2]
    assert post and post[-1]["phase"] == "Successful"
    wait_until(
        lambda: replicas_of(cluster, "pay"),
        ok=lambda r: r.get(pay_v1, 0) == 0 and r.get(pay_v2) == 2,
        timeout=30,
        what="blue v1 scaled down after scaleDownDelaySeconds",
    )

    cat = settled(cluster, "cat")
    assert cat["phase"] == "Degraded" and cat["reason"] == "AnalysisFailed", cat
    assert cat["stableRevision"] == cat_v1
    cat_v2 = cat["canaryRevision"]
    wait_until(
        lambda: replicas_of(cluster, "cat"),
        ok=lambda r: r.get(cat_v1) == 4 and r.get(cat_v2, 0) == 0,
        timeout=30,
        what="rolling v2 rolled back to v1 at full scale",
    )
    gate_runs = [r for r in cat["analysisRuns"] if r["revision"] == cat_v2]
    assert gate_runs and gate_runs[-1]["phase"] == "Failed"

    # Blue-green v3 (broken) is switched to, fails post-promotion, is switched back.
    cluster.apply_rollout(bluegreen("v3", {"DEMO_ERROR_RATE": "0.5"}))
    pay = settled(cluster, "pay")
    # Switched back at once, the old revision still being up: RolledBack, not just Degraded.
    assert pay["phase"] == "RolledBack" and pay["reason"] == "AnalysisFailed", pay
    assert pay["stableRevision"] == pay_v2
    assert cluster.service_selector("pay")[REVISION_LABEL] == pay_v2
    switched = [
        e.message
        for e in cluster.events_when(
            lambda events: len(events) >= 2, reason="ServiceSwitched", what="two switches"
        )
    ]
    assert len(switched) == 2, switched  # to v2, then to v3 ...
    back = [
        e.message for e in cluster.events_when(bool, reason="RolledBack", what="a RolledBack Event")
    ]
    assert f"switched back to {pay_v2}" in back[0]  # ... and straight back
    assert controller.process.poll() is None
