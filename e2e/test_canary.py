"""Canary on kind: a good version is promoted, a broken image is rolled back by itself."""

from __future__ import annotations

from e2e.scenarios import (
    APP,
    canary_strategy,
    prepare,
    revision_selector,
    rollout,
    wait_new_revision,
    wait_phase,
)
from tests.integration.harness import Cluster
from tests.waiting import wait_until


def test_canary_promoted(cluster: Cluster) -> None:
    strategy = canary_strategy()
    prepare(cluster, strategy=strategy)
    cluster.apply_rollout(rollout("v1", strategy=strategy))
    v1 = wait_phase(cluster, "Healthy")["stableRevision"]

    cluster.apply_rollout(rollout("v2", strategy=strategy))
    v2 = wait_new_revision(cluster, v1)["canaryRevision"]
    promoted = wait_phase(cluster, "Healthy")

    assert promoted["stableRevision"] == v2
    assert revision_selector(cluster, f"{APP}-stable") == v2
    runs = [r for r in promoted.get("analysisRuns", []) if r.get("phase")]
    assert runs and all(r["phase"] == "Successful" for r in runs), runs
    wait_until(
        cluster.replicas_by_revision,
        ok=lambda r: r.get(v2) == 4 and r.get(v1, 0) == 0,
        timeout=240,
        what="v1 scaled down after the scale-down delay",
    )


def test_broken_canary_rolled_back_automatically(cluster: Cluster) -> None:
    strategy = canary_strategy()
    prepare(cluster, strategy=strategy)
    cluster.apply_rollout(rollout("v1", strategy=strategy))
    v1 = wait_phase(cluster, "Healthy")["stableRevision"]

    cluster.apply_rollout(rollout("broken", strategy=strategy))
    broken = wait_new_revision(cluster, v1)["canaryRevision"]
    aborted = wait_phase(cluster, "Degraded")

    assert aborted["stableRevision"] == v1
    assert aborted.get("reason") == "AnalysisFailed", aborted
    assert "error-rate" in aborted.get("message", "")
    wait_until(
        cluster.replicas_by_revision,
        ok=lambda r: r.get(broken, 0) == 0 and r.get(v1) == 4,
        timeout=120,
        what="broken canary scaled to 0, stable at full size",
    )
    assert revision_selector(cluster, f"{APP}-stable") == v1
    warnings = [e for e in cluster.events("AnalysisFailed") if e.type == "Warning"]
    assert warnings, "no AnalysisFailed Warning event on the Rollout"
