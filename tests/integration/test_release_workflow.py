"""The release workflow's hooks and Job checks, run by the operator as real Jobs.

The sandbox's node agent runs a ``sandbox/shell`` pod's command as a local process and
the real Job controller turns its exit code into the Job's outcome, so everything here
goes through kube-apiserver, kube-controller-manager and the operator as in a cluster:

- a preRollout migration that fails stops the rollout before the new revision has a
  single pod, with the migration's own output as the evidence; its onAbort hook runs
  once; a migration that succeeds lets the canary go on;
- a smoke-test Job in a canary step aborts the canary at that step when it fails, and
  passes it when it succeeds;
- a postPromotion smoke test that fails after a blue-green switch switches back.
"""

from __future__ import annotations

from typing import Any

from controller.names import REVISION_LABEL
from tests.integration.harness import Cluster, demo_rollout, settled
from tests.integration.release_helpers import (
    canary,
    jobs_of,
    pods_of,
    shell_job,
    smoke_template,
    with_hooks,
)
from tests.waiting import wait_until


def test_failed_migration_stops_the_rollout_before_any_pod_and_runs_on_abort_once(
    cluster: Cluster, start_controller: Any
) -> None:
    for service in ("shop", "shop-canary"):
        cluster.create_service(service, {"app": "shop"}, rollout="shop")
    start_controller()
    migrate_ok = {"name": "migrate", "job": shell_job("echo migrating; exit 0")}
    undo = {"name": "undo-migration", "job": shell_job("echo undoing")}
    cluster.apply_rollout(
        with_hooks(canary("shop", "v1", [{"setWeight": 50}]), preRollout=[migrate_ok])
    )
    v1 = settled(cluster, "shop", timeout=90)["stableRevision"]

    failing = {
        "name": "migrate",
        "job": shell_job(
            "echo 'ALTER TABLE orders'; echo 'ERROR: column total exists' >&2; exit 4"
        ),
    }
    cluster.apply_rollout(
        with_hooks(canary("shop", "v2", [{"setWeight": 50}]), preRollout=[failing], onAbort=[undo])
    )
    status = settled(cluster, "shop", timeout=90)
    v2 = status["canaryRevision"]
    assert v2 and v2 != v1
    assert status["phase"] == "Degraded" and status["reason"] == "PreRolloutHookFailed", status
    assert "column total exists" in status["message"] and "exited 4" in status["message"]
    assert status["stableRevision"] == v1
    assert pods_of(cluster, v2) == []  # the new revision never got a pod
    assert cluster.replicas_by_revision().get(v2, 0) == 0
    assert cluster.service_selector("shop")[REVISION_LABEL] == v1

    # The onAbort hook runs, once, and its outcome reaches history and the Events.
    def on_abort_done(s: dict[str, Any]) -> bool:
        runs = [r for r in s.get("analysisRuns", []) if r["key"] == "hook-onAbort"]
        return bool(runs) and runs[0].get("phase") == "Successful"

    final = wait_until(
        lambda: cluster.status("shop"), ok=on_abort_done, timeout=60, what="onAbort hook"
    )
    entry = [h for h in final["history"] if h["revision"] == v2][-1]
    assert entry["outcome"] == "Aborted"
    assert any("onAbort hook(s) undo-migration succeeded" in e for e in entry["events"])
    undo_jobs = [
        j
        for j in jobs_of(cluster, "shop")
        if j.metadata.labels.get("deployctl.io/analysis") == "hook-onAbort"
    ]
    assert len(undo_jobs) == 1
    cluster.events_when(
        lambda events: (
            {"HookFailed", "HookSucceeded", "PreRolloutHookFailed"} <= {e.reason for e in events}
        ),
        what="the hooks' Events",
    )
    jobs = jobs_of(cluster, "shop")
    assert all(j.metadata.owner_references[0].kind == "Rollout" for j in jobs)


def test_smoke_test_job_in_a_canary_step_aborts_or_passes_it(
    cluster: Cluster, start_controller: Any
) -> None:
    for service in ("cart", "cart-canary"):
        cluster.create_service(service, {"app": "cart"}, rollout="cart")
    cluster.create_template(smoke_template("smoke-ok", "echo checkout works"))
    cluster.create_template(smoke_template("smoke-bad", "echo 'POST /checkout -> 500'; exit 1"))
    start_controller()
    cluster.apply_rollout(canary("cart", "v1", [{"setWeight": 50}]))
    v1 = settled(cluster, "cart", timeout=90)["stableRevision"]

    def steps(template: str) -> list[dict[str, Any]]:
        return [{"setWeight": 50}, {"analysis": {"templates": [{"name": template}]}}]

    cluster.apply_rollout(canary("cart", "v2", steps("smoke-bad")))
    status = settled(cluster, "cart", timeout=90)
    assert status["phase"] == "Degraded" and status["reason"] == "AnalysisFailed", status
    assert "POST /checkout -> 500" in status["message"]
    assert status["stableRevision"] == v1 and status["currentStepIndex"] == 1
    wait_until(
        cluster.replicas_by_revision,
        ok=lambda r: r.get(status["canaryRevision"], 0) == 0 and r.get(v1) == 2,
        timeout=30,
        what="canary scaled to 0 after the failed smoke test",
    )

    cluster.apply_rollout(canary("cart", "v3", steps("smoke-ok")))
    status = settled(cluster, "cart", timeout=90)
    assert status["phase"] == "Healthy", status
    assert status["stableRevision"] not in (v1, None)
    smoke = [r for r in status["analysisRuns"] if r["key"] == "step-1"]
    assert smoke and smoke[-1]["phase"] == "Successful"
    assert "succeeded" in smoke[-1]["metrics"][0]["message"]


def test_failed_post_promotion_smoke_test_switches_blue_green_back(
    cluster: Cluster, start_controller: Any
) -> None:
    for service in ("pay", "pay-preview"):
        cluster.create_service(service, {"app": "pay"}, rollout="pay")
    start_controller()

    def bluegreen(version: str, smoke: str) -> dict[str, Any]:
        rollout = demo_rollout(
            "pay",
            version=version,
            replicas=2,
            strategy={
                "blueGreen": {
                    "activeService": "pay",
                    "previewService": "pay-preview",
                    "scaleDownDelaySeconds": 30,
                }
            },
        )
        return with_hooks(rollout, postPromotion=[{"name": "smoke", "job": shell_job(smoke)}])

    cluster.apply_rollout(bluegreen("v1", "exit 0"))
    v1 = settled(cluster, "pay", timeout=90)["stableRevision"]
    cluster.apply_rollout(bluegreen("v2", "echo 'GET /pay -> 503'; exit 1"))
    status = settled(cluster, "pay", timeout=90)
    assert status["phase"] == "RolledBack", status
    assert status["reason"] == "PostPromotionHookFailed"
    assert "GET /pay -> 503" in status["message"]
    assert status["stableRevision"] == v1
    assert cluster.service_selector("pay")[REVISION_LABEL] == v1
