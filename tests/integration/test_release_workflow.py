"""The release workflow's own checks, run by the operator as real Jobs in the sandbox.

The sandbox's node agent runs a ``sandbox/shell`` pod's command as a local process and
the real Job controller turns its exit code into the Job's outcome, so everything here
goes through kube-apiserver, kube-controller-manager and the operator as in a cluster:

- a preRollout migration that fails stops the rollout before the new revision has a
  single pod, with the migration's own output as the evidence; its onAbort hook runs
  once; a migration that succeeds lets the canary go on;
- a smoke-test Job in a canary step aborts the canary at that step when it fails, and
  passes it when it succeeds;
- a postPromotion smoke test that fails after a blue-green switch switches back;
- a web check against the canary's Service passes, and fails on a status code;
- the seed alert rules (HighErrorRate, SlowResponses), read from a ConfigMap and scoped
  to the canary on the parsed PromQL, pass a healthy canary and roll back one with 30%
  errors; a rule that cannot be scoped is an error naming it.
"""

from __future__ import annotations

from typing import Any

from kubernetes import client as k8s

from tests.analysis.test_alertrules import SEED_RULES
from tests.integration.harness import Cluster, demo_rollout, poll, settled

REVISION = "deployctl.io/revision"
ROLLOUT = "deployctl.io/rollout"


def shell_job(script: str) -> dict[str, Any]:
    return {
        "spec": {
            "activeDeadlineSeconds": 60,
            "template": {
                "spec": {
                    "containers": [
                        {"name": "run", "image": "sandbox/shell", "command": ["sh", "-c", script]}
                    ]
                }
            },
        }
    }


def with_hooks(rollout: dict[str, Any], **hooks: list[dict[str, Any]]) -> dict[str, Any]:
    rollout["spec"]["hooks"] = hooks
    return rollout


def smoke_template(name: str, script: str) -> dict[str, Any]:
    return {
        "apiVersion": "deployctl.io/v1alpha1",
        "kind": "AnalysisTemplate",
        "metadata": {"name": name},
        "spec": {"metrics": [{"name": "smoke", "provider": {"job": shell_job(script)}}]},
    }


def pods_of(cluster: Cluster, revision: str) -> list[Any]:
    return list(
        cluster.core.list_namespaced_pod(
            cluster.namespace, label_selector=f"{REVISION}={revision}"
        ).items
    )


def jobs_of(cluster: Cluster, rollout: str) -> list[Any]:
    batch: Any = k8s.BatchV1Api(cluster.api)
    return list(
        batch.list_namespaced_job(cluster.namespace, label_selector=f"{ROLLOUT}={rollout}").items
    )


def canary(name: str, version: str, steps: list[dict[str, Any]]) -> dict[str, Any]:
    return demo_rollout(
        name,
        version=version,
        replicas=2,
        strategy={
            "canary": {
                "stableService": name,
                "canaryService": f"{name}-canary",
                "scaleDownDelaySeconds": 1,
                "steps": steps,
            }
        },
    )


def test_failed_migration_stops_the_rollout_before_any_pod_and_runs_on_abort_once(
    cluster: Cluster, start_controller: Any
) -> None:
    for service in ("shop", "shop-canary"):
        cluster.create_service(service, {"app": "shop"})
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
    assert cluster.service_selector("shop")[REVISION] == v1

    # The onAbort hook runs, once, and its outcome reaches history and the Events.
    def on_abort_done(s: dict[str, Any]) -> bool:
        runs = [r for r in s.get("analysisRuns", []) if r["key"] == "hook-onAbort"]
        return bool(runs) and runs[0].get("phase") == "Successful"

    final = poll(lambda: cluster.status("shop"), on_abort_done, timeout=60, what="onAbort hook")
    entry = [h for h in final["history"] if h["revision"] == v2][-1]
    assert entry["outcome"] == "Aborted"
    assert any("onAbort hook(s) undo-migration succeeded" in e for e in entry["events"])
    undo_jobs = [
        j
        for j in jobs_of(cluster, "shop")
        if j.metadata.labels.get("deployctl.io/analysis") == "hook-onAbort"
    ]
    assert len(undo_jobs) == 1
    reasons = {e.reason for e in cluster.events()}
    assert {"HookFailed", "HookSucceeded", "PreRolloutHookFailed"} <= reasons
    jobs = jobs_of(cluster, "shop")
    assert all(j.metadata.owner_references[0].kind == "Rollout" for j in jobs)


def test_smoke_test_job_in_a_canary_step_aborts_or_passes_it(
    cluster: Cluster, start_controller: Any
) -> None:
    for service in ("cart", "cart-canary"):
        cluster.create_service(service, {"app": "cart"})
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
    poll(
        cluster.replicas_by_revision,
        lambda r: r.get(status["canaryRevision"], 0) == 0 and r.get(v1) == 2,
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
        cluster.create_service(service, {"app": "pay"})
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
    assert cluster.service_selector("pay")[REVISION] == v1


def test_web_check_against_the_canary_passes_and_fails_on_a_status_code(
    cluster: Cluster, start_controller: Any
) -> None:
    for service in ("web", "web-canary"):
        cluster.create_service(service, {"app": "web"})
    probe = {"service": "web-canary", "port": 8080, "path": "/", "successCodes": [200]}
    cluster.create_template(
        {
            "apiVersion": "deployctl.io/v1alpha1",
            "kind": "AnalysisTemplate",
            "metadata": {"name": "canary-root"},
            "spec": {
                "metrics": [
                    {"name": "root", "interval": "1s", "count": 3, "provider": {"web": probe}}
                ]
            },
        }
    )
    # The sandbox has no cluster DNS: reach the canary Service through a ready pod's IP.
    start_controller(args=["--no-leader-elect", "--service-address", "pods"])
    steps: list[dict[str, Any]] = [
        {"setWeight": 50},
        {"analysis": {"templates": [{"name": "canary-root"}]}},
    ]
    cluster.apply_rollout(canary("web", "v1", steps))
    v1 = settled(cluster, "web", timeout=90)["stableRevision"]

    cluster.apply_rollout(canary("web", "v2", steps))
    status = settled(cluster, "web", timeout=90)
    assert status["phase"] == "Healthy" and status["stableRevision"] != v1, status
    v2 = status["stableRevision"]
    run = [r for r in status["analysisRuns"] if r["key"] == "step-1" and r["revision"] == v2]
    assert run and run[-1]["phase"] == "Successful"
    assert "-> 200" in run[-1]["metrics"][0]["message"]

    broken = canary("web", "v3", steps)
    broken["spec"]["template"]["spec"]["containers"][0]["env"].append(
        {"name": "DEMO_ERROR_RATE", "value": "1"}
    )
    cluster.apply_rollout(broken)
    status = settled(cluster, "web", timeout=90)
    assert status["phase"] == "Degraded" and status["reason"] == "AnalysisFailed", status
    assert "-> 500 (wanted 200)" in status["message"]
    assert status["stableRevision"] == v2


def test_the_seed_alert_rules_gate_a_canary_from_a_configmap(
    cluster: Cluster, start_controller: Any, traffic: Any
) -> None:
    # The seed rules file (HighErrorRate, SlowResponses) with windows and `for` short
    # enough for a test; the structure and expressions are the ones that page people.
    rules = (
        SEED_RULES.replace("[1m]", "[10s]")
        .replace("[5m]", "[10s]")
        .replace("for: 2m", "for: 4s")
        .replace("for: 5m", "for: 4s")
    )
    unscopable = "groups: [{name: g, rules: [{alert: AlwaysOn, expr: vector(1) > 0}]}]"
    core: Any = k8s.CoreV1Api(cluster.api)
    for name, text in (("prometheus-alerts", rules), ("odd-alerts", unscopable)):
        core.create_namespaced_config_map(
            cluster.namespace, {"metadata": {"name": name}, "data": {"rules.yaml": text}}
        )
    for name, config_map in (("alert-gate", "prometheus-alerts"), ("odd-gate", "odd-alerts")):
        cluster.create_template(
            {
                "apiVersion": "deployctl.io/v1alpha1",
                "kind": "AnalysisTemplate",
                "metadata": {"name": name},
                "spec": {
                    "metrics": [
                        {
                            "name": "alerts",
                            "interval": "2s",
                            "count": 4,
                            "inconclusiveLimit": 10,
                            "alertRules": {"configMap": config_map},
                        }
                    ]
                },
            }
        )
    for service in ("api", "api-stable", "api-canary"):
        cluster.create_service(service, {"app": "api"})
    start_controller()

    def api(version: str, gate: str, env: dict[str, str] | None = None) -> dict[str, Any]:
        rollout = canary(
            "api", version, [{"setWeight": 50}, {"analysis": {"templates": [{"name": gate}]}}]
        )
        rollout["spec"]["strategy"]["canary"]["stableService"] = "api-stable"
        rollout["spec"]["strategy"]["canary"]["canaryService"] = "api-canary"
        for key, value in (env or {}).items():
            rollout["spec"]["template"]["spec"]["containers"][0]["env"].append(
                {"name": key, "value": value}
            )
        return rollout

    cluster.apply_rollout(api("v1", "alert-gate"))
    v1 = settled(cluster, "api", timeout=90)["stableRevision"]
    traffic(cluster.namespace, service="api", rate_per_second=40)

    cluster.apply_rollout(api("v2", "alert-gate"))
    status = settled(cluster, "api", timeout=120)
    assert status["phase"] == "Healthy" and status["stableRevision"] != v1, status
    v2 = status["stableRevision"]
    gate = [r for r in status["analysisRuns"] if r["key"] == "step-1" and r["revision"] == v2]
    by_rule = {m["name"]: m for m in gate[-1]["metrics"]}
    assert set(by_rule) == {"alerts/HighErrorRate", "alerts/SlowResponses"}
    assert all(m["phase"] == "Successful" for m in by_rule.values())
    assert f'revision="{v2}"' in by_rule["alerts/HighErrorRate"]["query"]

    cluster.apply_rollout(api("v3", "alert-gate", {"DEMO_ERROR_RATE": "0.3"}))
    status = settled(cluster, "api", timeout=120)
    assert status["phase"] == "Degraded" and status["reason"] == "AnalysisFailed", status
    assert "alert HighErrorRate would fire" in status["message"]
    assert status["stableRevision"] == v2

    cluster.apply_rollout(api("v4", "odd-gate"))
    status = settled(cluster, "api", timeout=90)
    assert status["phase"] == "Degraded", status
    assert "rule AlwaysOn" in status["message"] and "no series selector" in status["message"]
    assert status["stableRevision"] == v2
