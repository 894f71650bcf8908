"""The release workflow's other checks, end to end: HTTP checks against the canary's
Service, and the Prometheus alert rules that page people used as the rollback gate.

- a web check against the canary's Service passes, and fails on a status code;
- the seed alert rules (HighErrorRate, SlowResponses), read from a ConfigMap and scoped
  to the canary on the parsed PromQL, pass a healthy canary and roll back one with 30%
  errors; a rule that cannot be scoped is an error naming it.
"""

from __future__ import annotations

import re
from typing import Any

from kubernetes import client as k8s

from tests.analysis.test_alertrules import SEED_RULES
from tests.integration.harness import SANDBOX_WEB, Cluster, settled
from tests.integration.release_helpers import canary


def test_web_check_against_the_canary_passes_and_fails_on_a_status_code(
    cluster: Cluster, start_controller: Any
) -> None:
    for service in ("web", "web-canary"):
        cluster.create_service(service, {"app": "web"}, rollout="web")
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
    # The sandbox has no cluster DNS: reach the canary Service through a ready pod's IP,
    # a loopback address here, which the address policy refuses unless allowed.
    start_controller(args=["--no-leader-elect", "--service-address", "pods", *SANDBOX_WEB])
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
    assert re.search(r"-> 500 in \d+ ms \(wanted 200\)", status["message"]), status["message"]
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
                            # Inconclusive until the canary has lived through
                            # the rules' 10 s windows, then judged.
                            "interval": "2s",
                            "count": 12,
                            "inconclusiveLimit": 10,
                            "alertRules": {"configMap": config_map},
                        }
                    ]
                },
            }
        )
    for service in ("api", "api-stable", "api-canary"):
        cluster.create_service(service, {"app": "api"}, rollout="api")
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
